"""The regression gate: may a model version replace the deployed one?

A candidate is held back when, on the held-out set (simplified, and traditional when both have
it), compared with the deployed version:
- macro-F1 or out-of-scope recall is lower by more than `margin`,
- the false-fallback rate is higher by more than `margin`,
- any intent's recall is lower by more than `intent_margin` (small intents are noisy),
- complain recall is lower at all (a missed complaint is the costliest mistake).
Only an explicit override, with its reason audited, deploys it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

EPS = 1e-9
VARIANTS = ("simplified", "traditional")


@dataclass(frozen=True)
class GatePolicy:
    margin: float = 0.02
    intent_margin: float = 0.10


def key_figures(summary: dict) -> dict:
    """What the registry keeps of a bot.nlu.evaluate summary.json (the figures make eval prints)."""
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        fig = summary.get(variant)
        if not fig:
            continue
        out[variant] = {
            "n": fig.get("n"),
            "accuracy": fig.get("accuracy"),
            "macro_f1": fig.get("macro_f1"),
            "complain_recall": fig.get("complain_recall"),
            "oos_recall": fig.get("oos_recall"),
            "false_fallback_rate": fig.get("false_fallback_rate"),
            "entity_f1": fig.get("entity_f1"),
            "per_intent_recall": {
                k: v.get("recall") for k, v in (fig.get("per_intent") or {}).items()
            },
        }
    return out


def _lower(
    name: str, cand: Optional[float], dep: Optional[float], margin: float, where: str
) -> list[str]:
    if cand is None or dep is None or cand >= dep - margin - EPS:
        return []
    allowed = f" (allowed {margin:.3f})" if margin else " (may not drop at all)"
    return [f"{where}{name} {cand:.3f} < deployed {dep:.3f}{allowed}"]


def regressions(
    candidate: Optional[dict], deployed: Optional[dict], policy: GatePolicy = GatePolicy()
) -> list[str]:
    """Why `candidate` may not replace `deployed` (empty: it may). Figures as key_figures()."""
    if not candidate or not candidate.get("simplified"):
        return ["the candidate has no held-out evaluation"]
    if not deployed or not deployed.get("simplified"):
        return ["the deployed model has no held-out evaluation to compare with"]
    found: list[str] = []
    for variant in VARIANTS:
        c, d = candidate.get(variant), deployed.get(variant)
        if not c or not d:
            continue
        where = "" if variant == "simplified" else "traditional: "
        found += _lower("macro-F1", c.get("macro_f1"), d.get("macro_f1"), policy.margin, where)
        found += _lower(
            "out-of-scope recall", c.get("oos_recall"), d.get("oos_recall"), policy.margin, where
        )
        found += _lower(
            "complain recall", c.get("complain_recall"), d.get("complain_recall"), 0.0, where
        )
        cf, df = c.get("false_fallback_rate"), d.get("false_fallback_rate")
        if cf is not None and df is not None and cf > df + policy.margin + EPS:
            found.append(
                f"{where}false-fallback {cf:.3f} > deployed {df:.3f} "
                f"(allowed +{policy.margin:.3f})"
            )
        drecall = d.get("per_intent_recall") or {}
        for intent, crec in sorted((c.get("per_intent_recall") or {}).items()):
            if intent == "complain":
                continue  # judged above without a margin
            found += _lower(
                f"{intent} recall", crec, drecall.get(intent), policy.intent_margin, where
            )
    return found
