"""Reading a data file that people edit: the one place that turns "cannot read" and "not valid
YAML" into the caller's own error class (a `DataError`), so each loader only validates what it
reads. `concierge data check` (bot/datafiles.py) runs every loader and prints `file: what is
wrong`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Type, Union

import yaml

from bot.core.errors import DataError


def read_yaml(path: Union[str, Path], error: Type[Exception] = DataError) -> Any:
    """The parsed file; `error(message)` naming the file when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from exc
