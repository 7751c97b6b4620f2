"""Preference tags mirrored to WeCom corp tags (`externalcontact/mark_tag`).

WeCom marks tags by corp tag *id*, as seen by the advisor who owns the external contact. The ids
come from the corp's tag library, so they are configuration: a YAML file (`WECOM_CORP_TAGS_FILE`)
with the owning advisor and `group → name → tag id`. No file, no mirroring. A tag with no id in
the file is skipped and logged (an admin adds it to the tag library and the file).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Dict, Optional, Sequence

import yaml

from bot.preferences.mirror import CorpTag

log = logging.getLogger(__name__)

MarkTag = Callable[..., Awaitable[object]]


@dataclass
class WeComTagMirror:
    owner_userid: str
    tag_ids: Dict[str, Dict[str, str]]  # group label -> tag name -> corp tag id
    mark_tag: Optional[MarkTag] = None

    @classmethod
    def from_file(cls, path: Path | str, mark_tag: Optional[MarkTag] = None) -> "WeComTagMirror":
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        owner = data.get("owner_userid")
        groups = data.get("groups")
        if not owner or not isinstance(groups, dict):
            raise ValueError(f"{path}: needs 'owner_userid' and a 'groups' mapping of tag ids")
        return cls(owner_userid=str(owner),
                   tag_ids={str(g): {str(n): str(i) for n, i in (names or {}).items()}
                            for g, names in groups.items()},
                   mark_tag=mark_tag)

    def _ids(self, tags: Sequence[CorpTag]) -> list[str]:
        ids = []
        for tag in tags:
            tag_id = self.tag_ids.get(tag.group, {}).get(tag.name)
            if tag_id is None:
                log.info("no WeCom corp tag id for %s/%s: not mirrored", tag.group, tag.name)
            else:
                ids.append(tag_id)
        return ids

    def sync(self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]) -> None:
        """Called from a worker thread (the actions' `call`), so it may run its own event loop."""
        add_ids, remove_ids = self._ids(add), self._ids(remove)
        if not add_ids and not remove_ids:
            return
        mark_tag = self.mark_tag
        if mark_tag is None:
            from bot.wecom.externalcontact import mark_tag
        asyncio.run(mark_tag(self.owner_userid, external_userid, add_tag=add_ids,
                             remove_tag=remove_ids))


def mirror_from_env(path: Optional[str]):
    """The configured mirror, or None when mirroring is off (no file configured)."""
    if not path:
        return None
    return WeComTagMirror.from_file(path)
