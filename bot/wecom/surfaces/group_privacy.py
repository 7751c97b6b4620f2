"""A guest's private matters stay out of customer groups.

Actions mark what belongs to one guest (their itinerary, their orders) as private
(`{"custom": {"private": true, "text": ...}}`, see actions/_common.py `say_private`). In a
group the WeCom channel does not post it: the guest gets it through 微信客服 -- the same person
has the same external_userid there -- and the group a short polite note; when the guest has no
微信客服 chat with us yet, the note invites them to one (WECOM_KF_URL). Notices after the turn
(deadline slips, advisors' replies, resolutions, rating requests) for a group guest go the same
private way (connectors/wecom.py `RoutingOutput`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.settings import PROJECT_ROOT
from bot.wecom.sender import SenderId

TEMPLATES = PROJECT_ROOT / "bot" / "templates" / "group"


def is_private(message: Dict[str, Any]) -> bool:
    custom = message.get("custom")
    return isinstance(custom, dict) and bool(custom.get("private"))


def split_private(
    messages: List[Dict[str, Any]],
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(public messages, private ones as plain {"text": ...} messages)."""
    public, private = [], []
    for message in messages:
        if is_private(message):
            text = str(message["custom"].get("text") or "").strip()
            if text:
                private.append({"text": text})
        else:
            public.append(message)
    return public, private


def external_userid_of(sender_id: str) -> Optional[str]:
    """The WeCom external_userid behind an aibot sender id ("wecom:wm..."), else None."""
    sender = SenderId.parse(sender_id)
    return sender.external_userid if sender.is_external_contact else None


def note(sent_privately: bool, kf_url: Optional[str]) -> str:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    name = "private_sent" if sent_privately else "private_link"
    text = env.get_template(f"{name}.j2").render(kf_url=kf_url or "")
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())
