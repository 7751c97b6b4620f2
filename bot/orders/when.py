"""Chinese date/time expressions ("明早八点", "后天下午三点", "下周五", "12月3号晚上7点") to
datetimes in China time, through JioNLP's time parser (`jionlp.ner.extract_time`).

Why JioNLP: it is maintained (1.5.x, 2025-26), pure Python, fits rasa 3.6's pins (numpy 1.23,
regex 2022) and parses the relative expressions guests type; dateparser 1.1 (the last release
that fits rasa's regex/pytz pins) returned nothing for every such expression in our evaluation
(see docs in `bot/orders/__init__.py`). JioNLP is imported lazily (it takes ~1 s and prints a
banner, which we swallow), never at module import time.

What we add on top, each covered by tests:
- "明早/今早/明晚" spelled out (JioNLP reads "明早八点" as *today* 08:00);
- whether the guest gave a clock time at all ("明天" is a day, "明天8点" a moment), and whether
  they gave a day ("8点" alone means the next 8 o'clock);
- "两点" with no part of day means 14:00, not 02:00 (nobody books a spa at 2 am without saying 凌晨).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import re
import threading
from dataclasses import dataclass
from typing import Optional

from bot.core.time import CHINA_TZ, china_now

log = logging.getLogger(__name__)

_jio = None
_jio_lock = threading.Lock()

# Spelled out before parsing: JioNLP misses these short forms.
_SHORT_FORMS = (
    ("明早", "明天早上"),
    ("明晨", "明天早上"),
    ("今早", "今天早上"),
    ("明儿", "明天"),
    ("后早", "后天早上"),
    ("礼拜天", "周日"),
    ("星期天", "周日"),
)
_HAS_CLOCK = re.compile(r"[点时:：]|\d{1,2}\s*[:：]\s*\d{2}")
_HAS_DAY = re.compile(r"[今明后昨前天日号周月年/\-]|星期|礼拜")
_PART_OF_DAY = re.compile(r"凌晨|早|上午|中午|午|下午|傍晚|晚|夜|半夜")


def _jionlp():
    global _jio
    if _jio is None:
        with _jio_lock:
            if _jio is None:
                with contextlib.redirect_stdout(io.StringIO()):  # it prints a banner on import
                    import jionlp  # noqa: PLC0415
                _jio = jionlp
    return _jio


@dataclass(frozen=True)
class When:
    """A parsed expression. `at` is tz-aware China time: the moment when `has_time`, else the day
    at 00:00. `text` is the span of the guest's message it came from."""

    at: dt.datetime
    has_time: bool
    has_day: bool
    text: str
    end: Optional[dt.datetime] = None  # end of a range ("从昨晚" -> now), when it was one

    @property
    def day(self) -> dt.date:
        return self.at.date()

    def combine(self, day: dt.date) -> "When":
        """A clock time the guest gave alone, put on a day we already know."""
        at = dt.datetime.combine(day, self.at.timetz())
        return When(at=at, has_time=self.has_time, has_day=True, text=self.text)


def _prepare(text: str) -> str:
    for short, full in _SHORT_FORMS:
        text = text.replace(short, full)
    return text


def find_when(text: str, now: dt.datetime | None = None) -> Optional[When]:
    """The first date/time expression in `text` (any sentence), or None."""
    found = find_all(text, now)
    return found[0] if found else None


def find_all(text: str, now: dt.datetime | None = None) -> list[When]:
    if not text or not text.strip():
        return []
    now = (now or china_now()).astimezone(CHINA_TZ)
    prepared = _prepare(text)
    base = now.replace(tzinfo=None)
    try:
        entities = _jionlp().ner.extract_time(prepared, time_base=base, with_parsing=True)
    except Exception:  # a parser bug must never break a conversation
        log.exception("time parsing failed for a %d-character message", len(text or ""))
        return []
    result = []
    for entity in entities:
        detail = entity.get("detail") or {}
        times = detail.get("time")
        if (
            not isinstance(times, list)
            or len(times) != 2
            or not all(isinstance(t, str) for t in times)
        ):
            continue  # durations, periodic times ("每天"): not a moment
        try:
            start = dt.datetime.strptime(times[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_TZ)
            end = dt.datetime.strptime(times[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_TZ)
        except ValueError:
            continue
        span = entity.get("text") or ""
        has_time = bool(_HAS_CLOCK.search(span)) and detail.get("definition") != "blur"
        has_day = bool(_HAS_DAY.search(span))
        if detail.get("type") == "time_span":
            result.append(When(at=start, has_time=has_time, has_day=has_day, text=span, end=end))
            continue
        if has_time and not _PART_OF_DAY.search(span) and 1 <= start.hour <= 6:
            start += dt.timedelta(hours=12)  # "两点" -> 14:00
        if has_time and not has_day and start <= now:
            start += dt.timedelta(days=1)  # "8点" said at 15:00 -> tomorrow 08:00
        if not has_time:
            start = start.replace(hour=0, minute=0, second=0)
        result.append(When(at=start, has_time=has_time, has_day=has_day or not has_time, text=span))
    return result


def month_day(text: str, now: dt.datetime | None = None) -> Optional[str]:
    """A calendar day named in `text` as "MM-DD" (birthdays, anniversaries), or None."""
    found = find_when(text, now)
    if found is None or found.end is not None:
        return None
    return found.at.strftime("%m-%d")


def describe(at: dt.datetime, *, with_time: bool = True, now: dt.datetime | None = None) -> str:
    """ "11月24日（周二）08:00" in China time; "明天" / "今天" where that is clearer."""
    local = at.astimezone(CHINA_TZ)
    now = (now or china_now()).astimezone(CHINA_TZ)
    weekday = "一二三四五六日"[local.weekday()]
    day = f"{local.month}月{local.day}日（周{weekday}）"
    delta = (local.date() - now.date()).days
    if delta == 0:
        day = f"今天{day}"
    elif delta == 1:
        day = f"明天{day}"
    elif delta == 2:
        day = f"后天{day}"
    return f"{day}{local:%H:%M}" if with_time else day
