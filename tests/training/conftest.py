"""Fixtures of the training loop: a migrated CRM, and Rasa's own SQL tracker store on a file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.crm.db import upgrade
from bot.crm.store import CRMStore

HASH_KEY = "test-hash-key"


@pytest.fixture
def crm(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    store = CRMStore(url)
    yield store
    store.close()


class Trackers:
    """Writes conversations through Rasa's SQLTrackerStore, exactly as `rasa run` stores them."""

    def __init__(self, path: Path, event_broker=None, source: str = "tracker"):
        from rasa.core.tracker_store import SQLTrackerStore
        from rasa.shared.core.domain import Domain

        self.path = path
        self.url = f"sqlite:///{path}"
        self.source = source  # "events": read back from the event stream's table
        self.store = SQLTrackerStore(
            Domain.empty(), dialect="sqlite", db=str(path), event_broker=event_broker
        )
        self.clock = 1_764_500_000.0

    def tick(self, seconds: float = 5.0) -> float:
        self.clock += seconds
        return self.clock

    def user(self, text: str, intent: str, confidence: float, ranking=None, after: float = 5.0):
        from rasa.shared.core.events import UserUttered

        ranking = ranking or [(intent, confidence)]
        if intent == "nlu_fallback":
            rest = ranking[1:] if ranking[0][0] == intent else ranking
            ranking = [("nlu_fallback", confidence), *rest]
        parse = {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "entities": [],
            "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        }
        return UserUttered(text, parse["intent"], [], parse_data=parse, timestamp=self.tick(after))

    def bot(self, text: str):
        from rasa.shared.core.events import BotUttered

        return BotUttered(text, timestamp=self.tick(1))

    def action(self, name: str):
        from rasa.shared.core.events import ActionExecuted

        return ActionExecuted(name, timestamp=self.tick(0.5))

    def slot(self, name: str, value):
        from rasa.shared.core.events import SlotSet

        return SlotSet(name, value, timestamp=self.tick(0.1))

    def pause(self):
        from rasa.shared.core.events import ConversationPaused

        return ConversationPaused(timestamp=self.tick(30))

    def save(self, sender: str, events) -> None:
        from rasa.shared.core.trackers import DialogueStateTracker

        async def go():
            tracker = await self.store.retrieve(sender) or DialogueStateTracker(sender, [])
            for ev in events:
                tracker.update(ev)
            await self.store.save(tracker)

        asyncio.run(go())


@pytest.fixture
def trackers(tmp_path):
    return Trackers(tmp_path / "tracker.db")


class EventStreamBroker:
    """A Rasa event broker that hands each published event to bot.events.store, as
    `concierge events consume` does with what RabbitMQ delivers."""

    def __init__(self, engine):
        from bot.events.store import EventStore

        self.events = EventStore(engine)

    def publish(self, event, headers=None) -> None:
        self.events.record(event)

    def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
