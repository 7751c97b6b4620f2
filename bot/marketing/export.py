"""What marketing sent a guest, for the PIPL copy (`bot.guest_export`): campaign messages with
their status, and touchpoints with their text."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.marketing.models import Campaign, CampaignRecipient, TouchpointRun


def marketing_messages(engine, guest_id: int) -> dict:
    with Session(engine, future=True) as s:
        campaigns = [
            {
                "campaign": c.name,
                "status": r.status,
                "reason": r.reason,
                "text": r.text,
                "created_at": r.created_at,
            }
            for r, c in s.execute(
                select(CampaignRecipient, Campaign)
                .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
                .where(CampaignRecipient.guest_id == guest_id)
                .order_by(CampaignRecipient.id)
            )
        ]
        touchpoints = [
            {
                "kind": t.kind,
                "status": t.status,
                "channel": t.channel,
                "text": t.text,
                "fired_at": t.fired_at,
                "answered_at": t.answered_at,
            }
            for t in s.execute(
                select(TouchpointRun)
                .where(TouchpointRun.guest_id == guest_id)
                .order_by(TouchpointRun.id)
            ).scalars()
        ]
    return {"campaigns": campaigns, "touchpoints": touchpoints}
