"""Mirroring preference tags to WeCom corp tags (`externalcontact/mark_tag`), behind a small
interface so the conversation flow does not depend on the connector.

The WeCom package provides the real implementation (it knows the corp tag ids, the advisor who
"owns" the external contact and the rate limits); until it is wired, `NoTagMirror` does nothing.
Only categories marked `mirror: true` in the vocabulary are ever passed (never allergies or
diet: health data stays encrypted in the CRM), and only for guests who are WeCom external
contacts. A mirror failure is logged and never reaches the guest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpTag:
    group: str  # the corp tag group, e.g. "出行目的" (the vocabulary category label)
    name: str  # the tag, e.g. "蜜月"


class TagMirror(Protocol):
    def sync(self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]) -> None:
        """Add and remove corp tags on one external contact (may block: called in a thread)."""


class NoTagMirror:
    """The default: mirroring off."""

    def sync(self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]) -> None:
        return None


class RecordingTagMirror:
    """Keeps the calls (tests, and the sandbox until the connector lands)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[CorpTag, ...], tuple[CorpTag, ...]]] = []

    def sync(self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]) -> None:
        self.calls.append((external_userid, tuple(add), tuple(remove)))
