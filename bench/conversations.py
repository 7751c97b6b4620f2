"""The guest conversations the benchmark replays: multi-turn, from tests/test_stories.yml (the
user lines of its stories) and a few more that exercise the CRM writes: a preference statement,
an add-on order through its form, a complaint through its form, order status.

Each bench guest has one upcoming stay (see bench.stack.GUEST_TEMPLATES), so the pre-trip answers
go the whole way (booking -> knowledge base -> weather -> template) without asking which stay.
A script is replayed as is: the next line goes when the reply to the previous one has arrived
(closed loop), or when an arrival of the open loop picks this guest.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import yaml

from bot.settings import PROJECT_ROOT

STORIES_FILE = PROJECT_ROOT / "tests" / "test_stories.yml"

# Written out in full (rather than only read from tests/test_stories.yml) so a change to the
# stories does not silently change what is measured; `story_lines()` is used to check they agree.
SCRIPTS: Dict[str, List[str]] = {
    "pretrip_weather": [
        "我下周去三亚，天气怎么样？",
        "那要带什么衣服",
        "帮我看下我的行程",
        "几点可以入住",
        "最晚几点退房",
        "谢谢",
    ],
    "amenities": [
        "你好",
        "早餐几点开始",
        "有儿童乐园吗",
        "从机场到酒店怎么走",
        "紧急联系电话是多少",
        "再见",
    ],
    "preference": [
        "这次是来度蜜月的，我们喜欢海景房",
        "我对海鲜过敏，不吃辣",
        "我不抽烟 要无烟房",
        "谢谢",
    ],
    "order": [
        "帮我订个接机",
        "明天下午三点",
        "两个人",
        "CA1234",
        "好的",
        "我的订单怎么样了",
    ],
    "complaint": [
        "空调坏了 热得睡不着",
        "在房间里",
        "从昨晚开始",
        "谢谢",
    ],
}


def story_lines(path: Path = STORIES_FILE) -> List[List[str]]:
    """The literal user lines of each story in tests/test_stories.yml (entity markup removed)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for story in data.get("stories", []):
        lines = [_plain(step["user"]) for step in story.get("steps", []) if "user" in step]
        if lines:
            out.append(lines)
    return out


def _plain(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})", r"\1", text)
    return text.strip()


class Guest:
    """One simulated guest slot: plays the scripts in turn, under sender ids handed out by a
    `SenderPool` (a new conversation takes the next free CRM guest)."""

    def __init__(
        self,
        index: int,
        pool: "SenderPool",
        scripts: Optional[Sequence[str]] = None,
        library: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        self.library = library or SCRIPTS  # script name -> lines (bench.scale: the intent mix)
        names = list(scripts or self.library)
        start = index % len(names)
        self._scripts: Iterator[str] = itertools.cycle(names[start:] + names[:start])
        self.pool = pool
        self.index = index
        self.sender: Optional[str] = None
        self.script: str = ""
        self._lines: List[str] = []
        self._pos = 0
        self.turns = 0

    def next_text(self) -> str:
        if self._pos >= len(self._lines):
            if self.sender is not None:
                self.pool.release(self.sender)
            self.script = next(self._scripts)
            self._lines = self.library[self.script]
            self._pos = 0
            self.sender = self.pool.take()
        text = self._lines[self._pos]
        self._pos += 1
        self.turns += 1
        return text

    def done(self) -> None:
        if self.sender is not None:
            self.pool.release(self.sender)
            self.sender = None
        self._lines, self._pos = [], 0


class SenderPool:
    """Sender ids of the bench guests in the CRM, handed out round robin, one conversation at a
    time each (Rasa would serialise two on one sender anyway). When all are busy it makes up an
    extra sender (a guest without a booking) rather than block."""

    def __init__(self, senders: Sequence[str]) -> None:
        self.senders = list(senders)
        self._free = list(self.senders)
        self._extra = 0

    def take(self) -> str:
        if self._free:
            return self._free.pop(0)
        self._extra += 1
        return f"{self.senders[0]}-x{self._extra}" if self.senders else f"bench-x{self._extra}"

    def release(self, sender: str) -> None:
        if sender in self.senders and sender not in self._free:
            self._free.append(sender)

    @property
    def extra(self) -> int:
        return self._extra


def intent_mix(per_intent: int = 3, script_len: int = 5, seed: int = 18) -> Dict[str, List[str]]:
    """Conversations of `script_len` lines drawn from every intent of data/nlu: `per_intent`
    examples of each (spread over its list), shuffled with a fixed seed."""
    lines: List[str] = []
    for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            if "intent" not in item or not isinstance(item.get("examples"), str):
                continue
            examples = [_plain(e[2:]) for e in item["examples"].splitlines() if e.startswith("- ")]
            step = max(1, len(examples) // per_intent)
            lines += [e for e in examples[::step][:per_intent] if e]
    random.Random(seed).shuffle(lines)
    return {
        f"mix{i // script_len:03d}": lines[i : i + script_len]
        for i in range(0, len(lines), script_len)
    }


def intents_covered() -> int:
    count = 0
    for path in (PROJECT_ROOT / "data" / "nlu").glob("*.yml"):
        count += sum(
            1
            for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []
            if "intent" in item
        )
    return count
