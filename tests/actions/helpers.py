"""Trackers built from events, the way rasa-sdk's own tests build them."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker


def tracker_for(
    sender_id: str,
    text: str,
    intent: str,
    *,
    entities: list[dict] | None = None,
    slots: dict[str, Any] | None = None,
    events: list[dict] | None = None,
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.98},
        "entities": entities or [],
    }
    history = list(events or []) + [{"event": "user", "text": text, "parse_data": latest}]
    return Tracker(
        sender_id=sender_id,
        slots=dict(slots or {}),
        latest_message=latest,
        events=history,
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def entity(name: str, value: str) -> dict:
    return {"entity": name, "value": value, "start": 0, "end": len(value)}
