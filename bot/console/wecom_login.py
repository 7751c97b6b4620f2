"""WeCom web login for the console (self-built app OAuth, scope `snsapi_privateinfo`).

1. The console redirects the browser to
   `{WECOM_OAUTH_BASE}/connect/oauth2/authorize?appid=CORPID&redirect_uri=...&response_type=code
   &scope=snsapi_privateinfo&agentid=AGENTID&state=STATE#wechat_redirect`;
   WeCom authenticates the member and sends the browser back with `?code=...&state=...`.
2. The console exchanges the code with `GET /cgi-bin/auth/getuserinfo?access_token=&code=`
   (the app's access token, through the project's WeCom client) for the member's `userid`.
   Someone outside the corp gets `openid` instead, and is refused.

Under `make run` WECOM_OAUTH_BASE and WECOM_API_BASE point at the sandbox (bot/sandbox/oauth.py),
whose authorize page lets a developer pick the member to sign in as.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

from bot.wecom.errors import TransportError, WeComAPIError


class LoginFailed(Exception):
    """WeCom did not give us a member of the corp (the message is shown to the person)."""


def authorize_url(
    oauth_base: str, corp_id: str, agent_id: Optional[str], redirect_uri: str, state: str
) -> str:
    query = {
        "appid": corp_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "snsapi_privateinfo",
        "state": state,
    }
    if agent_id:
        query["agentid"] = agent_id
    return f"{oauth_base.rstrip('/')}/connect/oauth2/authorize?{urlencode(query)}#wechat_redirect"


async def userid_for_code(app_client, code: str) -> str:
    """The member's userid for an OAuth code; LoginFailed otherwise."""
    if app_client is None:
        raise LoginFailed("企业微信应用未配置（WECOM_APP_SECRET），无法用企业微信登录")
    if not code or len(code) > 512:
        raise LoginFailed("登录凭证无效，请重新登录")
    try:
        data = await app_client.call(
            "/cgi-bin/auth/getuserinfo", method="GET", params={"code": code}, retries=2
        )
    except WeComAPIError as exc:
        if exc.errcode in (40029, 40163, 42003):  # invalid / used / expired code
            raise LoginFailed("登录凭证已失效，请重新登录") from None
        raise LoginFailed(f"企业微信登录失败（{exc.errcode}）") from None
    except TransportError:
        raise LoginFailed("暂时连不上企业微信，请稍后再试") from None
    userid = data.get("userid") or data.get("UserId")
    if not userid:
        raise LoginFailed("只有本企业成员可以登录员工后台")
    return str(userid)
