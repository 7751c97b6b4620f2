"""The WeCom calls marketing makes, over the self-built app's client (`WeComServices`).

`add_msg_template` is called once, never retried here or by the outbox: if WeCom may have
created the task (a timeout), resending would push the same message twice to the advisor, so the
caller records the task as `unknown` instead (marketing is at-most-once). Reads are retried.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from bot.wecom.errors import TransportError, WeComAPIError

__all__ = ["GroupMsgAPI", "TransportError", "WeComAPIError"]

BASE = "/cgi-bin/externalcontact/"


class GroupMsgAPI:
    def __init__(self, services) -> None:
        self.services = services

    @property
    def _client(self):
        client = self.services.app_client
        if client is None:
            raise WeComAPIError(
                -3, "no WECOM_APP_SECRET: the app cannot call 客户联系", BASE + "add_msg_template"
            )
        return client

    async def add_msg_template(
        self,
        *,
        sender: str,
        chat_type: str,
        text: str,
        external_userid: Optional[List[str]] = None,
        chat_id_list: Optional[List[str]] = None,
        attachments: Optional[List[Dict[str, Any]]] = None,
    ) -> Dict[str, Any]:
        body: Dict[str, Any] = {"chat_type": chat_type, "sender": sender, "text": {"content": text}}
        if external_userid:
            body["external_userid"] = list(external_userid)
        if chat_id_list:
            body["chat_id_list"] = list(chat_id_list)
        if attachments:
            body["attachments"] = attachments
        return await self._client.call(BASE + "add_msg_template", body, retries=1)

    async def _pages(self, path: str, body: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
        rows: List[Dict[str, Any]] = []
        cursor = ""
        while True:
            data = await self._client.call(BASE + path, {**body, "cursor": cursor})
            rows.extend(data.get(key) or [])
            cursor = data.get("next_cursor") or ""
            if not cursor:
                return rows

    async def list_v2(
        self, *, chat_type: str, start_time: int, end_time: int, creator: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        body: Dict[str, Any] = {
            "chat_type": chat_type,
            "start_time": start_time,
            "end_time": end_time,
            "filter_type": 2,
            "limit": 100,
        }
        if creator:
            body["creator"] = creator
        return await self._pages("get_groupmsg_list_v2", body, "group_msg_list")

    async def task(self, msgid: str) -> List[Dict[str, Any]]:
        return await self._pages("get_groupmsg_task", {"msgid": msgid, "limit": 1000}, "task_list")

    async def send_result(self, msgid: str, userid: str) -> List[Dict[str, Any]]:
        return await self._pages(
            "get_groupmsg_send_result",
            {"msgid": msgid, "userid": userid, "limit": 1000},
            "send_list",
        )

    async def cancel(self, msgid: str) -> None:
        await self._client.call(BASE + "cancel_groupmsg_send", {"msgid": msgid}, retries=1)

    async def remind(self, msgid: str) -> None:
        await self._client.call(BASE + "remind_groupmsg_send", {"msgid": msgid}, retries=1)

    async def kf_text(self, open_kfid: str, external_userid: str, text: str, dedupe_key: str):
        """微信客服: only inside the 48-hour window (KfService.send checks state and budget)."""
        return await self.services.kf.send(
            open_kfid,
            external_userid,
            {"msgtype": "text", "text": {"content": text}},
            dedupe_key=dedupe_key,
        )
