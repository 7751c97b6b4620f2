"""Reading metric values in tests."""

from __future__ import annotations

from typing import Dict

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def sample(name: str, **labels) -> float:
    """The current value of one sample in this process (0 when never observed)."""
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def parse(text: str) -> Dict[str, float]:
    """An exposition as {'name{a="b"}': value} (label order as prometheus_client writes it)."""
    out: Dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
