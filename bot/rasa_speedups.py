"""Speed-ups applied to the Rasa server process by `bot.rasa_main` (never at import time).

Rasa 3.6 checks every action-server answer with `jsonschema.validate(result, schema)`, which first
validates the constant schema against the JSON-Schema metaschema: ~30 ms of CPU on the event loop
per custom action, half of our per-message cost under load (docs/PERFORMANCE.md). We build the
validator once; the answer is still validated, with the same error type and message.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _action_response_validator():
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def cache_action_response_validator() -> None:
    """Replace `RemoteAction._validate_action_result` with a version using a prebuilt validator."""
    from jsonschema import exceptions
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    def _validate_action_result(self, result):  # Rasa's contract: True, or raise ValidationError
        error = exceptions.best_match(_action_response_validator().iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your response "
                "from the Action endpoint is valid. For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions")
            raise error
        return True

    RemoteAction._validate_action_result = _validate_action_result


def apply_all() -> None:
    cache_action_response_validator()
