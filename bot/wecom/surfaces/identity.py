"""Who wrote, for the CRM: each surface's identity rule, and the first-contact guest record.

- 微信客服: the guest is `kf:<external_userid>`, reachable through the open_kfid they wrote to;
- 智能机器人: `wecom:<userid>`; a `wm`/`wo` userid is an external contact (a guest), whose
  external_userid is also their 微信客服 id; any other userid is staff (no identity kept);
- the app: advisors only (no guest record).

`CrmGuests.ensure` records the guest on first contact and, for an external contact, starts the
background link to their booking profile (bot.bookings.autolink); a CRM outage never blocks the
conversation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from bot.wecom.protocol import AibotMessage, KfMessage, SurfaceMessage
from bot.wecom.sender import SenderId

logger = logging.getLogger(__name__)

# (sender id, identity fields) -> the CRM guest (or None): the turn runner's port to the CRM.
EnsureGuest = Callable[[str, Dict[str, Any]], Awaitable[Optional[Any]]]


def identity_of(message: SurfaceMessage) -> Dict[str, str]:
    """The CRM identity fields a message proves (empty for staff)."""
    identity: Dict[str, Optional[str]] = {}
    if isinstance(message, KfMessage):
        identity = {
            "kf_open_kfid": message.open_kfid,
            "kf_external_userid": message.external_userid,
        }
    elif isinstance(message, AibotMessage) and message.sender.is_external_contact:
        identity = {"wecom_external_userid": message.userid}
    return {k: v for k, v in identity.items() if v}


class CrmGuests:
    """The CRM side of first contact, on the WeCom services' database."""

    def __init__(self, services) -> None:
        self.s = services
        self._crm: Optional[Any] = None
        self._autolinker: Optional[Any] = None

    def crm(self):
        if self._crm is None:
            from bot.crm.store import CRMStore

            self._crm = CRMStore(self.s.db.engine)
        return self._crm

    async def ensure(self, sender_id: str, identity: Dict[str, Any]) -> Optional[Any]:
        external_userid = SenderId.parse(sender_id).external_userid
        if external_userid and (
            identity.get("kf_external_userid") or identity.get("wecom_external_userid")
        ):
            self._schedule_link(sender_id, external_userid)
        try:
            store = self.crm()
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: store.get_or_create_guest(sender_id, **identity)
            )
        except Exception as exc:
            logger.warning("CRM guest for %s not recorded: %s", sender_id, exc)
            return None

    def _schedule_link(self, sender_id: str, external_userid: str) -> None:
        """A first-time sender whose WeCom contact data names a booking profile is linked to it
        in the background; the reply never waits for it."""
        if self._autolinker is None:
            from bot.bookings.autolink import AutoLinker
            from bot.bookings.identity import IdentityLinker
            from bot.wecom.externalcontact import get_contact

            self._autolinker = AutoLinker(
                IdentityLinker(self.s.db.engine), lambda ext: get_contact(ext, services=self.s)
            )
        self._autolinker.schedule(sender_id, external_userid)
