"""The channel as Rasa loads it: credentials.yml with ${ENV} values -> class path ->
`from_credentials` -> `channels.register` (routes under /webhooks/wecom) -> `agent.handle_message`."""

from __future__ import annotations

import uuid

import aiohttp

from bot.settings import get_settings
from bot.wecom import dev_defaults
from tests.wecom.helpers import post_json, stop_sanic

CREDENTIALS_YML = """
rest:
connectors.wecom.WeComInput:
  corp_id: ${WECOM_CORP_ID}
  kf_token: ${WECOM_KF_TOKEN}
  kf_aes_key: ${WECOM_KF_AES_KEY}
  kf_secret: ${WECOM_KF_SECRET}
  aibot_token: ${WECOM_AIBOT_TOKEN}
  aibot_aes_key: ${WECOM_AIBOT_AES_KEY}
  app_token: ${WECOM_APP_TOKEN}
  app_aes_key: ${WECOM_APP_AES_KEY}
  app_secret: ${WECOM_APP_SECRET}
  app_agent_id: ${WECOM_APP_AGENT_ID}
"""


class FakeAgent:
    def __init__(self):
        self.messages = []

    async def handle_message(self, message):
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, "您好，我是礼宾助手。")


async def test_loaded_and_mounted_like_rasa_does(env, monkeypatch, tmp_path):
    import rasa.shared.utils.io
    from rasa.core.channels import channel as rasa_channel
    from rasa.shared.utils.common import class_from_module_path
    from sanic import Sanic

    for name, value in dev_defaults.ENV_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    credentials = tmp_path / "credentials.yml"
    credentials.write_text(CREDENTIALS_YML, encoding="utf-8")
    # what rasa.core.run.create_http_input_channels does (without importing TensorFlow)
    all_credentials = rasa.shared.utils.io.read_config_file(str(credentials))
    cls = class_from_module_path("connectors.wecom.WeComInput")
    wecom = cls.from_credentials(all_credentials["connectors.wecom.WeComInput"])
    assert wecom.config.kf.token == dev_defaults.KF_TOKEN and wecom.config.app_agent_id == "1000002"

    Sanic.test_mode = True
    app = Sanic(f"rasa_like_{uuid.uuid4().hex[:6]}")
    agent = FakeAgent()
    app.ctx.agent = agent
    rasa_channel.register([wecom], app, route="/webhooks/")
    server = await app.create_server(
        host="127.0.0.1", port=env.connector_port, return_asyncio_server=True, access_log=False
    )
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        async with aiohttp.ClientSession() as http:  # closed before the server stops
            async with http.get(f"http://127.0.0.1:{env.connector_port}/webhooks/wecom/") as resp:
                assert (await resp.json())["surfaces"] == {"kf": True, "aibot": True, "app": True}
        await post_json(
            env.http, f"{env.sandbox}/_sandbox/guest/kf", {"external_userid": "wm9", "text": "你好"}
        )
        await wecom.wait_idle()
    finally:
        await stop_sanic(server)
    [message] = agent.messages
    assert (message.sender_id, message.text, message.input_channel) == ("kf:wm9", "你好", "wecom")
    sends = [c for c in await env.calls() if c["path"] == "/cgi-bin/kf/send_msg"]
    assert sends[0]["body"]["text"]["content"] == "您好，我是礼宾助手。"
