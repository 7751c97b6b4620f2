"""Out of scope with manners (issue 17): a near-domain request (taxi app, food delivery, another
hotel ...) gets "I can't, but ..." and the human offer; anything else the generic answer
(both texts in data/scope/near_domain.yml).
Thin: the category comes from the NLU (bot/nlu/scope_guard.py), the wording from bot.scope."""

from __future__ import annotations

import functools
from typing import Text

from rasa_sdk import Action

from bot.scope import load_near_domain


@functools.lru_cache(maxsize=1)
def near_domain():
    return load_near_domain()


class ActionOutOfScope(Action):
    def name(self) -> Text:
        return "action_out_of_scope"

    async def run(self, dispatcher, tracker, domain):
        category = (tracker.latest_message or {}).get("near_domain")
        dispatcher.utter_message(text=near_domain().reply(category))
        return []
