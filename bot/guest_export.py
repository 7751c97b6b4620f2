"""Everything held about one guest, as JSON (PIPL Art. 45: access and copy).

`export_guest` gathers the CRM profile (bookings, orders, tickets, tags with the words they came
from, consents, feedback, SLA cases), the conversation from Rasa's tracker store, and the WeCom
inbox and outbox messages from and to the guest's ids, and what marketing sent them (campaigns,
touchpoints). The read is a staff read like any other:
audited under the staff identity (bot.audit), with the action `guest.export`.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audit import Staff, read_profile
from bot.crm.store import IDENTITY_FIELDS, to_jsonable
from bot.wecom.sender import kf_sender, wecom_sender


def guest_ids(sender_id: str, guest) -> list[str]:
    """The sender id and every id the guest is known by on WeCom (as Rasa and the inbox key
    them)."""
    ids = [sender_id]
    if guest is not None:
        for name in IDENTITY_FIELDS:
            value = getattr(guest, name, None)
            if value and name != "kf_open_kfid":
                ids += [value, kf_sender(value), wecom_sender(value)]
    return list(dict.fromkeys(ids))


def _wecom_messages(engine, ids: list[str]) -> tuple[list[dict], list[dict]]:
    from bot.wecom import models as wm

    with Session(engine, future=True) as s:
        inbox = [
            {
                "id": r.id,
                "surface": r.surface,
                "kind": r.kind,
                "received_at": r.received_at,
                "payload": r.payload,
            }
            for r in s.execute(
                select(wm.InboxMessage)
                .where(wm.InboxMessage.sender_id.in_(ids))
                .order_by(wm.InboxMessage.id)
            ).scalars()
        ]
        outbox = [
            {
                "id": r.id,
                "app": r.app,
                "path": r.path,
                "status": r.status,
                "created_at": r.created_at,
                "body": r.body,
            }
            for r in s.execute(
                select(wm.OutboxMessage)
                .where(wm.OutboxMessage.recipient.in_(ids))
                .order_by(wm.OutboxMessage.id)
            ).scalars()
        ]
    return inbox, outbox


def export_guest(
    crm, sender_id: str, *, staff: Staff, tracker=None, reason: Optional[str] = None
) -> dict:
    """Raises GuestNotFound when the CRM has no such guest."""
    profile = read_profile(crm, staff, sender_id, reason=reason or "PIPL export")
    guest = crm.find_guest(sender_id)
    ids = guest_ids(sender_id, guest)
    # The copy is for the guest: their own phone and document numbers in full.
    if guest is not None:
        profile["guest"].update(
            phone=guest.phone, id_number=guest.id_number, passport_number=guest.passport_number
        )
    inbox, outbox = _wecom_messages(crm.engine, ids)
    from bot.marketing.export import marketing_messages

    marketing = marketing_messages(crm.engine, guest.id) if guest is not None else {}
    return to_jsonable(
        {
            "format": "concierge.guest-export/1",
            "sender_id": sender_id,
            "ids": ids,
            "profile": profile,
            "conversation": tracker.conversation(ids) if tracker is not None else [],
            "wecom_inbox": inbox,
            "wecom_outbox": outbox,
            "marketing": marketing,
        }
    )
