"""A run's result as JSON, and its latency-over-time plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtest.runner import RunConfig
from loadtest.stats import Recorder, summarize


def build_result(cfg: RunConfig, rec: Recorder, elapsed_s: float) -> dict[str, Any]:
    """The JSON-able result of a run.

    ``latency_ms`` counts from each request's scheduled send time (open loop) or from its send
    (closed loop); ``service_ms`` from the actual socket write; ``generator.lag_ms`` is how far
    behind its timetable the generator dispatched requests; ``generator.cpu_s`` the CPU time
    its processes used (so ``1e6 / cpu_us_per_request`` is what one generator core can drive).
    ``connections``: how many the generator opened after the start (its pool grows when every
    open one is busy) and the answer time of the first request on each, which includes the
    server accepting it; the timeline counts them per second (``opened``).
    ``rate_achieved`` = completed / the load window (``duration_s``); ``elapsed_s`` adds start-up
    and drain.  ``failed`` = no response (``errors``) + responses of an unexpected status class.
    """
    sent = rec.completed + sum(rec.errors.values())
    lag = summarize(rec.lag)
    return {
        "mode": cfg.mode,
        "target": f"http://{cfg.target.authority}",
        "procs": cfg.procs,
        "connections_per_proc": cfg.connections,
        "rate_target": cfg.rate if cfg.mode == "open" else None,
        "duration_s": cfg.duration_s,
        "elapsed_s": round(elapsed_s, 3),
        "requests": sent,
        "completed": rec.completed,
        "failed": rec.failed,
        "rate_achieved": round(rec.completed / cfg.duration_s, 1),
        "by_status": dict(sorted(rec.by_status.items())),
        "by_kind": dict(sorted(rec.by_kind.items())),
        "unexpected_status": rec.unexpected,
        "errors": dict(sorted(rec.errors.items())),
        "latency_ms": summarize(rec.latency),
        "service_ms": summarize(rec.service),
        "generator": {
            "lag_ms": lag,
            "behind_max_ms": lag["max"],
            "cpu_s": round(rec.cpu_s, 3),
            "cpu_us_per_request": round(1e6 * rec.cpu_s / sent, 1) if sent else None,
        },
        "connections": {
            "opened_during_run": rec.opened_total,
            "first_request_ms": summarize(rec.first),
            # The latency of every other request: the run without what opening cost.
            "settled_latency_ms": summarize(rec.settled),
        },
        "timeline": rec.timeline(),
    }


def write_result(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def plot_timelines(
    series: dict[str, list[dict[str, float]]],
    path: Path,
    title: str,
    marks: list[tuple[float, str]] | None = None,
) -> None:
    """Plot p50/p99 latency per second of one or more runs' timelines into a PNG; ``marks``
    are (second, label) events drawn as vertical lines; failed requests are x marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    for label, timeline in series.items():
        xs = [p["second"] for p in timeline]
        line = ax.plot(xs, [p["p99_ms"] for p in timeline], label=f"{label} p99")[0]
        ax.plot(
            xs,
            [p["p50_ms"] for p in timeline],
            linestyle="--",
            color=line.get_color(),
            label=f"{label} p50",
        )
        failed = [p["second"] for p in timeline if p["failed"]]
        if failed:
            ax.scatter(failed, [0] * len(failed), marker="x", color=line.get_color())
    for second, label in marks or []:
        ax.axvline(second, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (second, 1),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
        )
    ax.set_xlabel("second of the run")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
