"""Photos and voice messages a 微信客服 guest sends: kept, linked, and put in front of a person.

- A photo is downloaded (`media/get` with the kf token), kept as a file under MEDIA_DIR (named by
  its sha256) and recorded in `guest_media`, linked to the guest's open complaint of the last
  24 h; the guest is told it is attached, the card and the case page show it.
- A voice message is kept the same way and passed to an advisor *as audio* (`media/upload` +
  an app `voice` message) with a note: the one who holds the guest's open case, else whoever is
  on duty. 微信客服's sync_msg gives no transcript of a guest's voice (unlike WeChat official
  accounts' `Recognition`), so there is no speech-to-text to pass on; when a payload carries a
  WeCom transcript (`recognition`), the note quotes it.
Anything that fails (WeCom, disk, CRM) leaves the guest with the usual polite answer
(bot.wecom.messages) and the reason in the log: a guest never hears an error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

TEMPLATES = PROJECT_ROOT / "bot" / "templates" / "media"
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/silk": ".silk",
    "audio/x-speex": ".speex",
}
KINDS = ("image", "voice")


def render(name: str, **context: Any) -> str:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,
        lstrip_blocks=True,
        trim_blocks=True,
    )
    text = env.get_template(f"{name}.j2").render(**context)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


@dataclass
class MediaFiles:
    """Files by content hash under one directory (the same photo sent twice is kept once)."""

    root: Path

    def save(self, data: bytes, content_type: str) -> tuple[str, str]:
        """(relative path, sha256); written atomically."""
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}{EXTENSIONS.get(content_type, '.bin')}"
        path = self.root / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        return rel, sha

    def path(self, rel: str) -> Path:
        """The file of a stored relative path; refuses anything outside the root."""
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"media path outside {self.root}: {rel!r}")
        return path


@dataclass(frozen=True)
class Handled:
    reply: str  # what the guest is told
    media_id: int  # the guest_media row
    ticket_id: Optional[int] = None
    advisor: Optional[str] = None  # who got the voice message


class GuestMediaHandler:
    """Used by the WeCom channel for 微信客服 `image` / `voice` messages."""

    def __init__(
        self,
        services,
        crm,
        *,
        files: MediaFiles,
        max_bytes: int,
        paging=None,
        policy=None,
        clock=lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.services = services
        self.crm = crm
        self.files = files
        self.max_bytes = max_bytes
        self.paging = paging  # bot.paging.store.PagingStore: whose case the guest is
        self.policy = policy  # bot.paging.policy.Policy: who is on duty
        self.clock = clock

    @classmethod
    def from_settings(cls, services, crm) -> "GuestMediaHandler":
        from bot.settings import get_settings

        settings = get_settings()
        paging = policy = None
        try:
            from bot.paging.runtime import get_policy
            from bot.paging.store import PagingStore

            paging, policy = PagingStore(crm.engine), get_policy()
        except Exception as exc:  # no paging policy: photos are still kept and linked
            log.warning("guest media: paging unavailable (%s); voice goes to nobody", exc)
        return cls(
            services,
            crm,
            files=MediaFiles(Path(settings.media_dir)),
            max_bytes=settings.media_max_bytes,
            paging=paging,
            policy=policy,
        )

    async def handle(self, sender_id: str, kind: str, payload: dict) -> Optional[Handled]:
        """Keep the media and act; None when it could not be kept (the caller answers as
        before). Blocking work (disk, database) runs in threads."""
        from bot.wecom.media import download

        raw = payload.get("raw") if isinstance(payload.get("raw"), dict) else {}
        part = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
        media_id = str(part.get("media_id") or "")
        if kind not in KINDS or not media_id:
            return None
        try:
            media = await download(self.services.kf_client, media_id, max_bytes=self.max_bytes)
            rel, sha = await asyncio.to_thread(self.files.save, media.data, media.content_type)
            row = await asyncio.to_thread(
                self.crm.add_guest_media,
                sender_id,
                kind=kind,
                content_type=media.content_type,
                path=rel,
                size=len(media.data),
                sha256=sha,
                wecom_media_id=media_id,
            )
        except Exception as exc:
            log.warning("%s from %s not kept: %s", kind, sender_id, exc)
            return None
        if kind == "image":
            if row.ticket_id is None:
                return Handled("", row.id)  # kept with the guest; the usual answer is right
            return Handled(render("image_linked", ticket_id=row.ticket_id), row.id, row.ticket_id)
        return await self._pass_voice(sender_id, row, media, part)

    async def _pass_voice(self, sender_id: str, row, media, part: dict) -> Handled:
        from bot.wecom.media import upload

        advisor, case_id = await asyncio.to_thread(self._advisor_for, sender_id)
        if advisor is None:
            return Handled("", row.id, row.ticket_id)
        guest = await asyncio.to_thread(self.crm.find_guest, sender_id)
        name = (guest.display_name if guest and guest.display_name else None) or "客人"
        try:
            app_media = await upload(
                self.services.app_client,
                "voice",
                media.data,
                f"voice{EXTENSIONS.get(media.content_type, '.amr')}",
                media.content_type,
            )
            result = await self.services.app.send_voice(
                advisor, app_media, dedupe_key=f"guest-voice:{row.id}"
            )
            if result.status not in ("sent", "duplicate", "deferred", "retry"):
                raise RuntimeError(f"voice message {result.status}")
            note = render("voice_note", guest=name, case_id=case_id)
            if part.get("recognition"):  # a transcript, where WeCom gives one
                note += f"\n语音转文字（仅供参考）：{part['recognition']}"
            await self.services.app.send_text(
                advisor, note, dedupe_key=f"guest-voice-note:{row.id}"
            )
        except Exception as exc:
            log.warning("voice of %s not passed to %s: %s", sender_id, advisor, exc)
            return Handled("", row.id, row.ticket_id)
        person = self.policy.people().get(advisor) if self.policy else None
        return Handled(
            render("voice_passed", advisor=person.name if person else "顾问"),
            row.id,
            row.ticket_id,
            advisor,
        )

    def _advisor_for(self, sender_id: str) -> tuple[Optional[str], Optional[int]]:
        """Who holds the guest's newest open case; else the advisor on duty (least loaded)."""
        if self.paging is None or self.policy is None:
            return None, None
        from bot.paging import clocks as rules
        from bot.paging import roster

        cases = self.paging.clocks(states=rules.OPEN_STATES, sender_id=sender_id)
        cases = sorted(cases, key=lambda c: c.created_at, reverse=True)
        for case in cases:
            if case.holder:
                return case.holder, case.id
        prop = self.policy.property(cases[0].property_id if cases else None)
        advisor = roster.pick_on_duty(self.policy, prop, self.clock(), load=self.paging.load())
        return (advisor.userid if advisor else None), (cases[0].id if cases else None)
