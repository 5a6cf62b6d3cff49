"""The evidence report: one self-contained HTML file per analysis (plots as inline SVG).

It shows what the verdict rests on, for a fraud analyst to read: the labeled metrics with their
intervals, how the difference and its interval moved as labels matured (the comparison
recomputed at earlier analysis times, seeing only the labels known then), the two score
distributions, the flip matrix with money, the label-delay curve with the maturity window,
the label-free signals, the control's noise floor, and what was left out.  Nothing is loaded
from elsewhere: the file can be mailed or attached to a change ticket as it is.  Figures are
drawn with matplotlib's Agg backend, without pyplot (no global state).
"""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from registry.evidence import ShadowEvidence
from retrain.evidence.comparison import Comparison, Options, compare
from retrain.evidence.frame import DECISIONS
from retrain.evidence.text import duration, metric_row, number, share

HISTORY_POINTS = 8
HISTORY_REPLICATES = 300


class Point(NamedTuple):
    """The primary difference and its interval as seen at one earlier analysis time ``at``
    (None where no comparison could be made yet)."""

    at: float
    difference: float | None
    low: float | None
    high: float | None


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:66em;color:#1d2330}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em;border-bottom:1px solid #ccd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;text-align:right;
border-bottom:1px solid #e3e6ee}th:first-child,td:first-child{text-align:left}
.verdict{padding:.6em 1em;border-radius:4px;background:#eef4ee}.refused{background:#f8ecec}
.note{color:#556;font-size:.9em}svg{max-width:100%;height:auto}
"""


def _figure(width: float = 6.4, height: float = 3.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def history(result: Comparison, as_of: float, points: int = HISTORY_POINTS) -> list[Point]:
    """The primary metric's difference and interval at earlier analysis times, each seeing
    only the labels known then."""
    rows = result.rows
    if not len(rows):
        return []
    first = float(rows.scored_at.min())
    maturity = result.evidence.maturity
    fixed = maturity.window_s if maturity and maturity.window_from == "setting" else None
    out: list[Point] = []
    for step in range(1, points + 1):
        moment = first + (as_of - first) * step / points
        options = Options(as_of=moment, replicates=HISTORY_REPLICATES, seed=step, window_s=fixed)
        then = compare(
            rows,
            result.sampling,
            version=result.version,
            production_version=result.production_version,
            options=options,
        )
        ci = then.evidence.difference_ci
        out.append(
            Point(
                at=moment,
                difference=then.evidence.difference,
                low=ci.low if ci else None,
                high=ci.high if ci else None,
            )
        )
    return out


def _history_plot(series: list[Point]) -> str:
    known = [p for p in series if p.difference is not None and p.low is not None]
    if not known:
        return "<p class=note>No labeled comparison was possible at any of these times.</p>"
    figure, axes = _figure()
    start = float(series[0].at)
    x = [(p.at - start) / 86_400 for p in known]
    y = np.array([p.difference for p in known], dtype=float)
    low = np.array([p.low for p in known], dtype=float)
    high = np.array([p.high for p in known], dtype=float)
    axes.errorbar(x, y, yerr=[y - low, high - y], fmt="o-", capsize=3)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("analysis time, days after the first compared transaction")
    axes.set_ylabel("challenger - production")
    axes.set_title("Fraud caught at production's block rate: difference, 95% interval")
    return _svg(figure)


def _scores_plot(result: Comparison) -> str:
    rows = result.rows
    if not len(rows):
        return "<p class=note>No compared transactions.</p>"
    figure, axes = _figure()
    bins = np.linspace(0.0, 1.0, 41)
    axes.hist(rows.production_score, bins=bins, histtype="step", label="production")
    axes.hist(rows.challenger_score, bins=bins, histtype="step", label="challenger")
    axes.set_yscale("log")
    axes.set_xlabel("score (probability of fraud)")
    axes.set_ylabel("transactions")
    axes.legend()
    return _svg(figure)


def _curve_plot(evidence: ShadowEvidence) -> str:
    maturity = evidence.maturity
    if maturity is None or not maturity.curve:
        return "<p class=note>Too few fraud labels to draw the label-delay curve.</p>"
    figure, axes = _figure()
    days = [d / 86_400 for d, _ in maturity.curve]
    axes.step(days, [s for _, s in maturity.curve], where="post")
    axes.axvline(maturity.window_s / 86_400, color="grey", linestyle=":", label="window")
    axes.set_xlabel("delay after the score, days")
    axes.set_ylabel("share of eventual fraud labels")
    axes.legend()
    return _svg(figure)


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _flips(evidence: ShadowEvidence) -> str:
    free = evidence.label_free
    if free is None or not free.flips:
        return "<p class=note>No compared transactions.</p>"
    cell = {(f.production, f.challenger): f for f in free.flips}
    rows = []
    for produced in DECISIONS:
        row = [f"production {produced}"]
        for chosen in DECISIONS:
            flip = cell.get((produced, chosen))
            if flip is None:
                row.append("0")
            else:
                money = "" if flip.amount is None else f" ({flip.amount:,.0f})"
                row.append(f"{flip.count}{money}")
        rows.append(row)
    return _table(["", *(f"challenger {d}" for d in DECISIONS)], rows)


def _signals(evidence: ShadowEvidence) -> str:
    free = evidence.label_free
    if free is None:
        return ""
    rows = [
        ["transactions compared / sampled", f"{free.transactions} / {free.sampled}"],
        ["decision agreement", share(free.agreement)],
        ["score rank correlation (Spearman)", number(free.rank_correlation)],
        ["PSI (production's deciles)", number(free.psi)],
        ["KS", number(free.ks)],
        [
            "challenger error / timeout / busy / shed",
            " / ".join(
                share(v)
                for v in (free.error_rate, free.timeout_rate, free.busy_rate, free.shed_rate)
            ),
        ],
    ]
    for who, q in (
        ("challenger", free.challenger_latency_ms),
        ("production", free.production_latency_ms),
    ):
        if q is not None:
            rows.append(
                [f"{who} latency p50 / p95 / p99", f"{q.p50:.2f} / {q.p95:.2f} / {q.p99:.2f} ms"]
            )
    return _table(["signal", "value"], rows)


def render(result: Comparison, as_of: float, violations: list[str] | None = None) -> str:
    """The whole report as one HTML document."""
    evidence = result.evidence
    e = html.escape
    title = f"{result.ref} vs production {evidence.production_version or '-'}"
    when = datetime.fromtimestamp(as_of, UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{e(title)}</h1>",
        f"<p>Source: {e(evidence.source)} shadow records; analysed {e(when)}; "
        f"{evidence.shadow_records} compared transactions.</p>",
    ]
    if violations is not None:
        verdict = "; ".join(violations) if violations else "the approval policy is satisfied"
        cls = "verdict refused" if violations else "verdict"
        parts.append(f"<p class='{cls}'>{e(verdict)}</p>")
    parts.append("<h2>Labeled metrics on matured transactions</h2>")
    if evidence.challenger_value is None:
        parts.append(
            f"<p class='verdict refused'>No labeled comparison yet: {e(evidence.why_undefined)}</p>"
        )
    else:
        parts.append(
            f"<p>{evidence.matured_records} matured transactions, {evidence.matured_frauds} "
            f"labeled frauds, {evidence.explored_records} explored would-be blocks; estimator "
            f"{e(evidence.estimator)}. Values with 95% intervals (paired bootstrap).</p>"
        )
        parts.append(
            _table(
                ["metric", "challenger", "production", "difference"],
                [list(metric_row(m)) for m in evidence.metrics],
            )
        )
        if evidence.decision_low is not None and evidence.decision_level is not None:
            parts.append(
                f"<p>Decision bound (look {evidence.looks}): {number(evidence.decision_low, True)} "
                f"at {evidence.decision_level:.2%} one-sided.</p>"
            )
    parts += ["<h2>The difference as labels matured</h2>", _history_plot(history(result, as_of))]
    if evidence.control is not None:
        parts += ["<h2>Noise floor (control shadow)</h2>", f"<p>{e(evidence.control.verdict)}</p>"]
    parts += [
        "<h2>Label-free signals</h2>",
        _signals(evidence),
        "<h3>Flip matrix</h3>",
        _flips(evidence),
    ]
    parts += ["<h3>Score distributions</h3>", _scores_plot(result)]
    maturity = evidence.maturity
    if maturity is not None:
        parts += [
            "<h2>Label maturity</h2>",
            f"<p>Maturity window {e(duration(maturity.window_s))} ({e(maturity.window_from)}); "
            f"expected share of eventual labels in: {share(maturity.expected_share_all)} "
            f"overall, {share(maturity.expected_share_matured)} on matured transactions; "
            f"{maturity.delays_seen} fraud label delays seen.</p>",
            _curve_plot(evidence),
        ]
    details = [[k, f"{v:g}"] for k, v in sorted(evidence.details.items())]
    parts += ["<h2>Counts</h2>", _table(["what", "count"], details), "</body></html>"]
    return "\n".join(parts)
