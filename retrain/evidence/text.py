"""The evidence as text, for the terminal: what ``shadowline analyze`` prints.

Numbers come with what they rest on; every interval is shown as ``value [low, high]``.
"""

from __future__ import annotations

from registry.evidence import Interval, LabelFree, Maturity, MetricEstimate, ShadowEvidence
from retrain.evidence.comparison import Comparison

LABELS = {
    "fraud_caught_at_block_rate": "fraud caught at production's block rate",
    "money_caught_at_block_rate": "fraud money caught at production's block rate",
    "precision_at_block_rate": "precision at production's block rate",
    "false_decline_rate_at_block_rate": "false declines at production's block rate",
    "recall_at_own_threshold": "recall at own block threshold",
    "precision_at_own_threshold": "precision at own block threshold",
    "roc_auc": "ROC-AUC",
}


def duration(seconds: float) -> str:
    """A delay in the unit a person reads it in."""
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def with_interval(value: float | None, low: float | None, high: float | None, signed: bool) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return number(value, signed)
    return f"{number(value, signed)} [{number(low, signed)}, {number(high, signed)}]"


def metric_row(metric: MetricEstimate) -> tuple[str, str, str, str]:
    """(label, challenger, production, difference), each with its interval."""

    def shown(value: float | None, ci: Interval | None, signed: bool = False) -> str:
        if ci is None:
            return with_interval(value, None, None, signed)
        return with_interval(value, ci.low, ci.high, signed)

    return (
        LABELS.get(metric.name, metric.name),
        shown(metric.challenger, metric.challenger_ci),
        shown(metric.production, metric.production_ci),
        shown(metric.difference, metric.difference_ci, signed=True),
    )


def _label_free(free: LabelFree) -> list[str]:
    lines = [
        f"label-free, {free.transactions} compared of {free.sampled} sampled:",
        f"  decisions agree {share(free.agreement)}; rank correlation "
        f"{number(free.rank_correlation)}; PSI {number(free.psi)}; KS {number(free.ks)}",
    ]
    changed = [f for f in free.flips if f.production != f.challenger]
    if changed:
        parts = []
        for flip in sorted(changed, key=lambda f: -f.count):
            money = "" if flip.amount is None else f" ({flip.amount:,.2f})"
            parts.append(f"{flip.production}->{flip.challenger} {flip.count}{money}")
        lines.append("  decisions changed: " + ", ".join(parts))
    latency = ""
    if free.challenger_latency_ms and free.production_latency_ms:
        c, p = free.challenger_latency_ms, free.production_latency_ms
        latency = (
            f"; latency p50/p99 {c.p50:.2f}/{c.p99:.2f} ms (production {p.p50:.2f}/{p.p99:.2f} ms)"
        )
    lines.append(
        f"  challenger errors {share(free.error_rate)}, timeouts {share(free.timeout_rate)}, "
        f"busy {share(free.busy_rate)}, shed {share(free.shed_rate)}{latency}"
    )
    return lines


def _maturity(maturity: Maturity) -> str:
    source = (
        f"the delay by which {maturity.quantile:.0%} of fraud labels arrive, from "
        f"{maturity.delays_seen} seen"
        if maturity.window_from == "curve"
        else "a setting"
    )
    return (
        f"labels: maturity window {duration(maturity.window_s)} ({source}); expected share of "
        f"eventual labels in: {share(maturity.expected_share_all)} overall, "
        f"{share(maturity.expected_share_matured)} on matured transactions"
    )


def _labeled(evidence: ShadowEvidence) -> list[str]:
    lines = [
        f"matured: {evidence.matured_records} transactions, {evidence.matured_frauds} labeled "
        f"frauds, {evidence.explored_records} explored would-be blocks "
        f"(estimator: {evidence.estimator})"
    ]
    rows = [("metric", "challenger", "production", "difference")]
    rows += [metric_row(m) for m in evidence.metrics]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    if evidence.decision_low is not None and evidence.decision_level is not None:
        lines.append(
            f"  decision bound: {number(evidence.decision_low, True)} at "
            f"{evidence.decision_level:.2%} one-sided (look {evidence.looks})"
        )
    return lines


def as_text(result: Comparison, violations: list[str]) -> str:
    """The whole analysis as lines for a terminal."""
    evidence = result.evidence
    window = (
        f"{evidence.window_start:%Y-%m-%d %H:%M:%S} .. {evidence.window_end:%Y-%m-%d %H:%M:%S} UTC"
        if evidence.window_start and evidence.window_end
        else "no compared records"
    )
    lines = [
        f"{result.ref} vs production {evidence.production_version or '-'} "
        f"({evidence.source}), {window}"
    ]
    if evidence.label_free is not None:
        lines += _label_free(evidence.label_free)
    if evidence.maturity is not None:
        lines.append(_maturity(evidence.maturity))
    if evidence.challenger_value is None:
        lines.append(f"no labeled comparison yet: {evidence.why_undefined}")
    else:
        lines += _labeled(evidence)
    if evidence.control is not None:
        lines.append(f"noise floor: {evidence.control.verdict}")
    d = evidence.details
    lines += [
        f"left out: {sum(v for k, v in d.items() if k.startswith('shadow_errors_')):.0f} "
        f"shadow errors, {d.get('other_production_records', 0):.0f} answered by another "
        f"production version, {d.get('duplicate_score_records', 0):.0f} repeated score records",
        f"labels: {d.get('labels_read', 0):.0f} read, {d.get('labels_superseded', 0):.0f} "
        f"superseded by a later one, {d.get('labels_without_score', 0):.0f} for transactions "
        f"never scored, {len(result.labels_after)} dated after now, "
        f"{d.get('labels_before_score', 0):.0f} dated before their score (refused)",
        "approval policy: " + ("; ".join(violations) if violations else "satisfied"),
    ]
    return "\n".join(lines)
