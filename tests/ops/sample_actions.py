"""One custom action for the action-server tests (registered by rasa_sdk from this module)."""

from rasa_sdk import Action


class ActionOpsProbe(Action):
    def name(self):
        return "action_ops_probe"

    async def run(self, dispatcher, tracker, domain):
        import logging

        logging.getLogger("tests.ops.sample_actions").info("probe ran for %s", tracker.sender_id)
        dispatcher.utter_message(text="好的")
        return []
