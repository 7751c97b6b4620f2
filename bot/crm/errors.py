"""The errors the CRM raises on purpose, and `guarded`, which maps "the database is not there"
onto `StoreUnavailable` so callers catch one type whatever the backend or driver said."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

T = TypeVar("T")


class CRMError(Exception):
    """Base class of the errors the store raises on purpose."""


class StoreUnavailable(CRMError):
    """The CRM database cannot be used right now (unreachable, locked, or not migrated).

    Callers answer the guest politely and carry on; the original error is `__cause__`.
    """


class NotFound(CRMError, LookupError):
    """No row with that id."""


class GuestNotFound(NotFound):
    """No guest with that sender id."""

    def __init__(self, sender_id: str):
        super().__init__(f"no guest with sender id {sender_id!r}")
        self.sender_id = sender_id


def _describe(exc: Exception) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if "no such table" in text or ('relation "' in text and "does not exist" in text):
        return f"CRM database is not migrated ({text}); run `concierge db upgrade`"
    return f"CRM database unavailable: {text}"


def _is_missing_table(exc: ProgrammingError) -> bool:
    return getattr(getattr(exc, "orig", None), "pgcode", None) == "42P01"  # undefined_table


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Turn 'the database is not there' into StoreUnavailable, leave every other error alone."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (OperationalError, PoolTimeoutError) as exc:
            raise StoreUnavailable(_describe(exc)) from exc
        except ProgrammingError as exc:
            if _is_missing_table(exc):
                raise StoreUnavailable(_describe(exc)) from exc
            raise
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(_describe(exc)) from exc
            raise

    return wrapper
