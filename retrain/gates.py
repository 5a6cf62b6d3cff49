"""The ``gates`` step: may this candidate go to shadow, or is it rejected, and why.

A candidate may not be worse than production by more than ``gate_tolerance`` (absolute) on
the business metric (``gate_metric``, fraud caught at production's block rate by default),
overall and in every slice.  A slice is only judged when it has at least
``gate_min_slice_rows`` rows and ``gate_min_slice_frauds`` frauds: below that, one fraud
more or less swings the metric by more than the tolerance and the gate would flap.
Without a production model there is nothing to compare against and the gates pass, saying so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from retrain.settings import RetrainSettings

_SHOWN = 3


@dataclass(frozen=True)
class Check:
    """One comparison: ``scope`` is ``overall`` or a slice name."""

    scope: str
    metric: str
    candidate: float | None
    production: float | None
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    checks: tuple[Check, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
        }


def _compare(
    scope: str, metric: str, cand: dict[str, Any], prod: dict[str, Any], tolerance: float
) -> Check:
    c, p = cand.get(metric), prod.get(metric)
    if p is None:
        return Check(scope, metric, c, p, True, "production has no value")
    if c is None:
        return Check(scope, metric, c, p, False, "candidate has no value")
    passed = c >= p - tolerance
    note = "" if passed else f"{metric} fell {p - c:.3f} below production ({c:.3f} vs {p:.3f})"
    return Check(scope, metric, c, p, passed, note)


def apply_gates(evaluation: dict[str, Any], settings: RetrainSettings) -> GateResult:
    """Judge ``evaluation`` (from the evaluate step) against the settings' gates."""
    candidate = evaluation["models"]["candidate"]
    production = evaluation["models"].get("production")
    if production is None:
        note = evaluation.get("production_note") or "no production model"
        return GateResult(True, f"{note}: candidate evaluated alone, no comparison gate", ())
    metric, tolerance = settings.gate_metric, settings.gate_tolerance
    checks = [_compare("overall", metric, candidate["overall"], production["overall"], tolerance)]
    for name, cand in sorted(candidate["slices"].items()):
        prod = production["slices"].get(name)
        if prod is None:
            continue
        big = (
            cand["rows"] >= settings.gate_min_slice_rows
            and cand["frauds"] >= settings.gate_min_slice_frauds
        )
        if big:
            checks.append(_compare(name, metric, cand, prod, tolerance))
    failed = [c for c in checks if not c.passed]
    if not failed:
        judged = len(checks) - 1
        return GateResult(
            True,
            f"{metric} within {tolerance:g} of production overall and in {judged} slices",
            tuple(checks),
        )
    shown = "; ".join(f"{c.scope}: {c.note}" for c in failed[:_SHOWN])
    more = f"; and {len(failed) - _SHOWN} more" if len(failed) > _SHOWN else ""
    return GateResult(False, f"gate failed (tolerance {tolerance:g}): {shown}{more}", tuple(checks))
