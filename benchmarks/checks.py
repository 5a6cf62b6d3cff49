"""Pure judging logic of the bench's newer bounds (issue 12): per-second p99 windows, ratio
targets judged in every repetition, and the history of the 3-shadow bound across runs.

Kept apart from the servers and the load so that tests can check it on made-up numbers.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

# Seconds at the edges of a run are partial (the generator starts and stops inside them):
# a second with fewer completions than this share of the run's median second is not judged.
EDGE_SHARE = 0.25
HISTORY_KEEP = 3
# The control run of each repetition: shadows off a second time.  The 3-shadow ratio and the
# per-second bound applied to two runs of one configuration say how much of a miss the
# machine's own noise can make.
CONTROL = "shadows0_again"


def full_seconds(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seconds of a run's timeline that hold a full second of requests."""
    counts = [s["completed"] for s in timeline if s["completed"] > 0]
    if not counts:
        return []
    floor = EDGE_SHARE * statistics.median(counts)
    return [s for s in timeline if s["completed"] >= floor]


def worst_second(timeline: list[dict[str, Any]], key: str = "p99_ms") -> dict[str, Any] | None:
    """The full second with the highest ``key`` (None for an empty run, or one whose seconds
    lack it)."""
    seconds = [s for s in full_seconds(timeline) if key in s]
    return max(seconds, key=lambda s: s[key]) if seconds else None


def around(timeline: list[dict[str, Any]], at_s: float) -> list[dict[str, Any]]:
    """The second in which something happened at ``at_s`` (seconds into the run) and the
    one after it, as far as the run has them."""
    first = int(at_s)
    return [s for s in timeline if first <= s["second"] <= first + 1]


def second_bound(
    runs: dict[str, list[dict[str, Any]]],
    steady_p99_ms: float,
    factor: float = 2.0,
    key: str = "p99_ms",
) -> dict[str, Any]:
    """Judge "no single second's p99 above ``factor`` x the steady p99" over ``runs``
    (label -> timeline).  Returns the bound in ms, the worst second of each run (label,
    second, p99, ratio to the steady p99), the overall worst and whether every second held.
    ``key`` picks the seconds' p99: ``settled_p99_ms`` leaves out the first requests on
    connections the generator opened during the run."""
    bound_ms = factor * steady_p99_ms
    worst: list[dict[str, Any]] = []
    for label, timeline in runs.items():
        second = worst_second(timeline, key)
        if second is None:
            continue
        p99 = second[key]
        worst.append(
            {
                "run": label,
                "second": second["second"],
                "p99_ms": p99,
                "opened": second.get("opened"),  # connections the generator opened in it
                "ratio": round(p99 / steady_p99_ms, 3) if steady_p99_ms else None,
                "over": p99 > bound_ms,
            }
        )
    top = max(worst, key=lambda w: w["p99_ms"]) if worst else None
    return {
        "bound_ms": round(bound_ms, 3),
        "steady_p99_ms": steady_p99_ms,
        "factor": factor,
        "per_run": worst,
        "worst": top,
        "met": bool(worst) and not any(w["over"] for w in worst),
    }


def every_rep(per_rep: list[float], op: str, bound: float) -> bool:
    """True when each repetition's ratio meets ``op bound`` (and there is at least one)."""
    if not per_rep:
        return False
    return all(x >= bound if op == ">=" else x <= bound for x in per_rep)


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0 (a server that answered nothing)."""
    return a / b if b else float("nan")


def update_history(path: Path, entry: dict[str, Any], keep: int = HISTORY_KEEP) -> list[Any]:
    """Append ``entry`` to the JSON list at ``path``, keep the last ``keep``, write it back
    and return it (a missing or unreadable file starts a new history)."""
    try:
        history = json.loads(path.read_text())
        if not isinstance(history, list):
            history = []
    except (OSError, ValueError):
        history = []
    history = [*history, entry][-keep:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(history, indent=1) + "\n")
    return history


def read_history(path: Path) -> list[Any]:
    """The history at ``path``, or [] when there is none yet."""
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return history if isinstance(history, list) else []
