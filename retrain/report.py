"""The ``report`` step: a self-contained HTML page and the same figures as JSON.

Figures are drawn with matplotlib's Agg backend and embedded as base64 PNG, so the page is
one file a reviewer can open anywhere (no server, no network).  ``figures.json`` holds the
numbers behind every plot for dashboards and tests.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
_CURVE_POINTS = 200
_SLICES_SHOWN = 24


def _thin(xs: Floats, ys: Floats) -> tuple[list[float], list[float]]:
    if len(xs) > _CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(xs) - 1, _CURVE_POINTS).astype(int))
        xs, ys = xs[keep], ys[keep]
    return [round(float(x), 6) for x in xs], [round(float(y), 6) for y in ys]


def figures(
    labels: npt.NDArray[np.int8],
    scores: Mapping[str, Floats],
    evaluation: dict[str, Any],
    metric: str,
) -> dict[str, Any]:
    """The data of every figure: score histograms, ROC and PR curves, per-slice metric."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    bins = np.linspace(0.0, 1.0, 41)
    out: dict[str, Any] = {"score_distribution": {"bins": bins.tolist()}, "roc": {}, "pr": {}}
    for model, values in scores.items():
        out["score_distribution"][model] = {
            "fraud": np.histogram(values[labels == 1], bins=bins)[0].tolist(),
            "legit": np.histogram(values[labels == 0], bins=bins)[0].tolist(),
        }
        fpr, tpr, _ = roc_curve(labels, values)
        precision, recall, _ = precision_recall_curve(labels, values)
        out["roc"][model] = dict(zip(("fpr", "tpr"), _thin(fpr, tpr), strict=True))
        out["pr"][model] = dict(zip(("recall", "precision"), _thin(recall, precision), strict=True))
    models = evaluation["models"]
    candidate_slices = models["candidate"]["slices"]
    ranked = sorted(candidate_slices, key=lambda s: -candidate_slices[s]["frauds"])
    out["slices"] = {
        "metric": metric,
        "rows": [
            {
                "slice": name,
                "rows": candidate_slices[name]["rows"],
                "frauds": candidate_slices[name]["frauds"],
                **{m: models[m]["slices"].get(name, {}).get(metric) for m in models},
            }
            for name in ranked[:_SLICES_SHOWN]
        ],
    }
    out["reliability"] = {m: models[m]["reliability"] for m in models}
    return out


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(data: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state

    images: dict[str, str] = {}
    models = list(data["roc"])
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    bins = np.array(data["score_distribution"]["bins"])
    for ax, model in zip(axes, models, strict=True):
        hist = data["score_distribution"][model]
        for label, color in (("legit", "tab:blue"), ("fraud", "tab:red")):
            counts = np.array(hist[label], dtype=float)
            ax.step(
                bins[:-1], counts / max(counts.sum(), 1.0), where="post", color=color, label=label
            )
        ax.set_yscale("log")
        ax.set_title(f"{model}: score distribution")
        ax.legend()
    images["Score distributions"] = _png(fig)
    for key, (x, y), title in (
        ("roc", ("fpr", "tpr"), "ROC curve"),
        ("pr", ("recall", "precision"), "Precision-recall curve"),
    ):
        fig = Figure(figsize=(4.5, 3.6))
        ax = fig.subplots()
        for model in models:
            ax.plot(data[key][model][x], data[key][model][y], label=model)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title)
        ax.legend()
        images[title] = _png(fig)
    rows = data["slices"]["rows"]
    fig = Figure(figsize=(9, 0.25 * len(rows) + 1.2))
    ax = fig.subplots()
    positions = np.arange(len(rows))
    for offset, model in enumerate(models):
        values = [r.get(model) or 0.0 for r in rows]
        ax.barh(positions + offset * 0.4, values, height=0.4, label=model)
    ax.set_yticks(positions + 0.2, [f"{r['slice']} ({r['frauds']:.0f} frauds)" for r in rows])
    ax.set_xlabel(data["slices"]["metric"])
    ax.set_title(f"{data['slices']['metric']} per slice")
    ax.legend()
    images["Per-slice comparison"] = _png(fig)
    fig = Figure(figsize=(4.5, 3.6))
    ax = fig.subplots()
    for model, curve in data["reliability"].items():
        ax.plot(curve["predicted"], curve["observed"], marker="o", label=model)
    top = max([1e-3] + [max(c["predicted"] + c["observed"]) for c in data["reliability"].values()])
    ax.plot([0, top], [0, top], linestyle=":", color="grey", label="perfect")
    ax.set_xlabel("mean predicted probability (10 equal-count bins)")
    ax.set_ylabel("observed fraud rate")
    ax.set_title("Reliability")
    ax.legend()
    images["Reliability curve"] = _png(fig)
    return images


def _slice_table(data: dict[str, Any]) -> str:
    rows = data["slices"]["rows"]
    models = list(data["roc"])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    body = "".join(
        f"<tr><td>{html.escape(r['slice'])}</td><td>{r['rows']:.0f}</td><td>{r['frauds']:.0f}</td>"
        + "".join("<td>-</td>" if r.get(m) is None else f"<td>{r[m]:.4g}</td>" for m in models)
        + "</tr>"
        for r in rows
    )
    metric = html.escape(data["slices"]["metric"])
    return (
        f"<table><tr><th>slice</th><th>rows</th><th>frauds</th>{head}</tr>{body}</table>"
        f"<p>{metric} per slice; slices with the most frauds first.</p>"
    )


def _table(evaluation: dict[str, Any]) -> str:
    models = evaluation["models"]
    keys = [
        "rows",
        "frauds",
        "roc_auc",
        "pr_auc",
        "block_rate",
        "recall",
        "precision",
        "money_saved",
        "money_saved_share",
        "false_decline_rate",
        "brier",
    ]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    body = []
    for key in keys:
        cells = []
        for m in models:
            value = models[m]["overall"].get(key)
            cells.append("<td>-</td>" if value is None else f"<td>{value:.4g}</td>")
        body.append(f"<tr><th>{key}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"


def _verdict(check: Mapping[str, Any]) -> str:
    if not check.get("judged", True):
        return "not judged"
    return "pass" if check["passed"] else "FAIL"


def render_html(
    title: str,
    summary: Mapping[str, str],
    evaluation: dict[str, Any],
    data: dict[str, Any],
    gates: dict[str, Any],
) -> str:
    """The whole report page as one string."""
    facts = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary.items()
    )
    images = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{png}">'
        for name, png in _plots(data).items()
    )
    checks = "".join(
        f"<tr><td>{html.escape(c['scope'])}</td><td>{_verdict(c)}</td>"
        f"<td>{html.escape(c['note'])}</td></tr>"
        for c in gates["checks"]
    )
    verdict = "passed" if gates["passed"] else "FAILED"
    if not gates.get("applied", True):  # a control's: reported, never applied
        verdict = "reported, not applied (a control)"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{facts}</table>"
        f"<h2>Gates: {verdict}</h2><p>{html.escape(gates['reason'])}</p>"
        f"<table><tr><th>scope</th><th>result</th><th>note</th></tr>{checks}</table>"
        f"<h2>Metrics (block rate {evaluation['block_rate']:.4g}, "
        f"{html.escape(evaluation['block_rate_source'])})</h2>{_table(evaluation)}"
        f"<h2>Per slice</h2>{_slice_table(data)}"
        f"{images}</body></html>"
    )
