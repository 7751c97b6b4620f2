"""Canned replies per property for advisors (data/canned_replies.yml), loaded on their own so
`concierge data check` can validate them without building the console."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from bot.core.data import read_yaml
from bot.core.errors import DataError


class CannedRepliesError(DataError):
    """The canned-replies file is not valid (the message names the file)."""


def load_canned_replies(path: Union[str, Path]) -> dict[str, list[dict]]:
    """property id -> [{title, text}]; a missing file is no canned replies."""
    path = Path(path)
    if not path.exists():
        return {}
    data = read_yaml(path, CannedRepliesError) or {}
    props = data.get("properties") if isinstance(data, dict) else None
    if not isinstance(props, dict):
        raise CannedRepliesError(f"{path}: expected a `properties:` mapping")
    found = {}
    for prop, items in props.items():
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and i.get("title") and i.get("text") for i in items
        ):
            raise CannedRepliesError(f"{path}: properties.{prop}: a list of {{title, text}}")
        found[str(prop)] = [{"title": str(i["title"]), "text": str(i["text"])} for i in items]
    return found
