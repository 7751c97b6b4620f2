"""Preference tags mirrored to WeCom corp tags (`externalcontact/mark_tag`).

WeCom marks tags by corp tag *id*, as seen by an advisor who holds the external contact: the same
call by anyone else is refused (84061). So every sync first asks `externalcontact/get` who holds
this guest (`follow_user`) and marks through that advisor: the one the file prefers
(`owner_userid`, optional) when they hold the contact, else the advisor who added the guest
first. A guest nobody holds -- a 微信客服 guest who never added an advisor -- cannot carry corp
tags at all: that is logged and skipped (the CRM keeps the tags). The ids come from the corp's
tag library, so they are configuration: a YAML file (`WECOM_CORP_TAGS_FILE`) with `group → name
→ tag id`. No file, no mirroring. A tag with no id in the file is skipped and logged (an admin
adds it to the tag library and the file).
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
GetContact = Callable[[str], Awaitable[object]]


@dataclass
class WeComTagMirror:
    tag_ids: Dict[str, Dict[str, str]]  # group label -> tag name -> corp tag id
    owner_userid: Optional[str] = None  # preferred when this advisor holds the contact
    mark_tag: Optional[MarkTag] = None
    get_contact: Optional[GetContact] = None

    @classmethod
    def from_file(
        cls,
        path: Path | str,
        mark_tag: Optional[MarkTag] = None,
        get_contact: Optional[GetContact] = None,
    ) -> "WeComTagMirror":
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        groups = data.get("groups")
        if not isinstance(groups, dict):
            raise ValueError(f"{path}: needs a 'groups' mapping of tag ids")
        owner = data.get("owner_userid")
        return cls(
            tag_ids={
                str(g): {str(n): str(i) for n, i in (names or {}).items()}
                for g, names in groups.items()
            },
            owner_userid=str(owner) if owner else None,
            mark_tag=mark_tag,
            get_contact=get_contact,
        )

    def _ids(self, tags: Sequence[CorpTag]) -> list[str]:
        ids = []
        for tag in tags:
            tag_id = self.tag_ids.get(tag.group, {}).get(tag.name)
            if tag_id is None:
                log.info("no WeCom corp tag id for %s/%s: not mirrored", tag.group, tag.name)
            else:
                ids.append(tag_id)
        return ids

    def pick_owner(self, contact) -> Optional[str]:
        """The advisor to mark through: the preferred one if they hold the contact, else the
        one who added the guest first."""
        follow = list(getattr(contact, "follow_user", ()) or ())
        if not follow:
            return None
        if self.owner_userid and any(f.userid == self.owner_userid for f in follow):
            return self.owner_userid
        return min(follow, key=lambda f: (f.createtime or 0, f.userid)).userid

    async def sync_async(
        self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]
    ) -> Optional[str]:
        """Mark the tags through the owning advisor; returns that advisor, or None if skipped."""
        add_ids, remove_ids = self._ids(add), self._ids(remove)
        if not add_ids and not remove_ids:
            return None
        get_contact, mark_tag = self.get_contact, self.mark_tag
        if get_contact is None or mark_tag is None:
            from bot.wecom import externalcontact

            get_contact = get_contact or externalcontact.get_contact
            mark_tag = mark_tag or externalcontact.mark_tag
        contact = await get_contact(external_userid)
        owner = self.pick_owner(contact) if contact is not None else None
        if owner is None:
            log.info(
                "guest %s is no advisor's WeCom contact: corp tags not mirrored (the CRM "
                "has them)",
                external_userid,
            )
            return None
        await mark_tag(owner, external_userid, add_tag=add_ids, remove_tag=remove_ids)
        return owner

    def sync(self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]) -> None:
        """Called from a worker thread (the actions' `call`), so it runs its own event loop."""
        asyncio.run(self._sync_once(external_userid, add, remove))

    async def _sync_once(
        self, external_userid: str, add: Sequence[CorpTag], remove: Sequence[CorpTag]
    ) -> None:
        try:
            await self.sync_async(external_userid, add, remove)
        finally:
            if self.get_contact is None or self.mark_tag is None:
                # the WeCom services this short-lived loop built: close their HTTP sessions
                from bot.wecom.services import get_services, set_services

                await get_services().close()
                set_services(None)


def mirror_from_env(path: Optional[str]):
    """The configured mirror, or None when mirroring is off (no file configured)."""
    if not path:
        return None
    return WeComTagMirror.from_file(path)
