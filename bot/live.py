"""Data files that take effect without a restart: `Live(load, paths)`.

The knowledge base, the add-on catalogue and the SLA policy are read once and then used for
every message. `Live` holds the loaded value and, at most every `check_every_s`, compares the
files' size and modification time with what it loaded; when they changed it loads them again,
and only if that load validates does the new version replace the running one. A file that fails
validation is logged (with the loader's own message) and the running version stays, so a typo
in a YAML file never takes the bot down; `concierge data check` says what is wrong.

`Live` also stands in for the value (attribute access goes to the current version), so services
that were given a knowledge base or a catalogue keep working unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Generic, Iterable, Optional, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def files_signature(paths: Iterable[Path]) -> tuple:
    """(path, size, mtime) of every file under `paths` (missing paths count as a change)."""
    out = []
    for root in paths:
        root = Path(root)
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for f in files:
            try:
                st = f.stat()
                out.append((str(f), st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append((str(f), None, None))
    return tuple(out)


class Live(Generic[T]):
    def __init__(
        self,
        load: Callable[[], T],
        paths: Iterable[Path | str],
        *,
        name: str,
        check_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        object.__setattr__(
            self,
            "_state",
            {
                "load": load,
                "paths": [Path(p) for p in paths],
                "name": name,
                "every": check_every_s,
                "clock": clock,
                "lock": threading.Lock(),
                "value": None,
                "signature": None,
                "checked": float("-inf"),
                "error": None,
            },
        )
        st = self._state
        st["signature"] = files_signature(st["paths"])
        st["value"] = load()  # the first load must succeed: there is no running version yet
        st["checked"] = clock()

    @property
    def current(self) -> T:
        st = self._state
        now = st["clock"]()
        if now - st["checked"] < st["every"]:
            return st["value"]
        with st["lock"]:
            if now - st["checked"] >= st["every"]:
                st["checked"] = now
                self._reload_if_changed()
            return st["value"]

    def refresh(self) -> Optional[str]:
        """Check the files now (e.g. right after an admin saved one); returns why the newest
        files were refused, or None when the running version is the newest."""
        st = self._state
        with st["lock"]:
            st["checked"] = st["clock"]()
            self._reload_if_changed()
        return st["error"]

    @property
    def last_error(self) -> Optional[str]:
        """Why the newest files were refused (None: the running version is the newest)."""
        return self._state["error"]

    def _reload_if_changed(self) -> None:
        st = self._state
        signature = files_signature(st["paths"])
        if signature == st["signature"]:
            return
        try:
            value = st["load"]()
        except Exception as exc:  # the loaders raise their own validation errors
            if st["error"] != str(exc):
                log.error(
                    "%s: the edited files were refused, the running version stays: %s",
                    st["name"],
                    exc,
                )
            st["error"] = str(exc)
            return  # signature not stored: the files are tried again at the next check
        st["value"], st["signature"], st["error"] = value, signature, None
        log.info("%s: reloaded from %s", st["name"], ", ".join(map(str, st["paths"])))

    def __getattr__(self, attr):
        return getattr(self.current, attr)

    def __repr__(self) -> str:
        return f"Live({self._state['name']}: {self._state['value']!r})"
