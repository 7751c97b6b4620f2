"""Fixed development secrets shared by the connector and the local WeCom sandbox.

They are public (they are in this file), so they are used only when the WeCom API base points at
this machine (the sandbox): `bot.wecom.config` refuses them for the real qyapi.weixin.qq.com.
`.env.example` and the Makefile use the same values; set the real ones in production.
"""

from __future__ import annotations

CORP_ID = "ww_sandbox_corp"  # the same default as bot.settings (WECOM_CORP_ID)

KF_TOKEN = "SandboxKfToken"
KF_AES_KEY = "Bt0SFBaMYmG9vxNwn6GSMrnus3dUOpqMBt0SFBaMYmG"
KF_SECRET = "sandbox-kf-secret"

AIBOT_TOKEN = "SandboxAibotToken"
AIBOT_AES_KEY = "rRsqkKrYZDSxQTTvulif92Mw8jDi04pArRsqkKrYZDS"

APP_TOKEN = "SandboxAppToken"
APP_AES_KEY = "bq1II39t8fteMYxaSkcev4beHMhUFPHwbq1II39t8ft"
APP_SECRET = "sandbox-app-secret"
APP_AGENT_ID = "1000002"

# Not secrets, but the sandbox and the tests need to agree on them.
SANDBOX_PORT = 8800
SANDBOX_OPEN_KFID = "wk_sandbox_concierge"
SANDBOX_AIBOT_ID = "aib_sandbox_concierge"
SANDBOX_AIBOT_NAME = "礼宾助手"
SANDBOX_ROBOT_KEY = "sandbox-robot-key"
SANDBOX_API_BASE = f"http://127.0.0.1:{SANDBOX_PORT}"

# The environment names (bot.settings reads WECOM_<NAME>) mapped to their dev values.
ENV_DEFAULTS = {
    "WECOM_CORP_ID": CORP_ID,
    "WECOM_KF_TOKEN": KF_TOKEN,
    "WECOM_KF_AES_KEY": KF_AES_KEY,
    "WECOM_KF_SECRET": KF_SECRET,
    "WECOM_AIBOT_TOKEN": AIBOT_TOKEN,
    "WECOM_AIBOT_AES_KEY": AIBOT_AES_KEY,
    "WECOM_APP_TOKEN": APP_TOKEN,
    "WECOM_APP_AES_KEY": APP_AES_KEY,
    "WECOM_APP_SECRET": APP_SECRET,
    "WECOM_APP_AGENT_ID": APP_AGENT_ID,
}
