"""SQL conditions shared by the CRM store and the modules that query guests' rows themselves
(bot.bookings.facts), kept apart from the store so those modules need not import it."""

from __future__ import annotations

from sqlalchemy import or_, select

from bot.crm import models as m


def guest_is(sender_id: str):
    """SQL condition on `guests`: the profile this sender id belongs to, either as its own
    sender id or as a linked one (the same person on 微信客服 and in a group: GuestIdentity)."""
    linked = select(m.GuestIdentity.guest_id).where(
        m.GuestIdentity.kind == "sender", m.GuestIdentity.value == sender_id
    )
    return or_(m.Guest.sender_id == sender_id, m.Guest.id.in_(linked))
