"""The scorer's stall dumps in the bench: what held its event loop, when it was held long.

The bench runs the scorer with ``SHADOWLINE_LAG_PROBE_STALL_DUMP_MS`` (:data:`LIMIT_MS`): when
its event loop goes that long without waking the lag probe, faulthandler writes every thread's
Python stack to the scorer's standard error, which is its log file here
(:mod:`service.lagprobe`).  Each scenario run takes the dumps its run added to the log
(:func:`read_new`), so that a stall is placed in its scenario and repetition, and the report
writes them all to ``bench/stalls.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LIMIT_MS = 25
_START = "Timeout ("


def size(log: Path) -> int:
    """The log's size now (0 when it does not exist yet): where the next run's output starts."""
    try:
        return log.stat().st_size
    except OSError:
        return 0


def read_new(log: Path, start: int) -> list[str]:
    """The stall dumps written to ``log`` from byte ``start`` on."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return dumps(text)


def dumps(text: str) -> list[str]:
    """Each faulthandler dump in ``text``: its "Timeout (...)!" line and the thread stacks
    after it (lines starting "Thread", "Current thread" or indented, and blank lines between
    threads), up to the first other line."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(_START):
            current = [line]
            found.append(current)
        elif current is not None and (
            line.startswith(("Thread ", "Current thread ", " ")) or not line.strip()
        ):
            current.append(line)
        else:
            current = None
    return ["\n".join(lines).rstrip() for lines in found]


def write(results: dict[str, Any], path: Path) -> int:
    """Write every scenario run's dumps to ``path`` under a heading naming the run (or say
    there were none); returns how many."""
    parts = []
    for i, rep in enumerate(results.get("reps", [])):
        for key, run in rep.items():
            for dump in run.get("stalls", []) if isinstance(run, dict) else []:
                parts.append(f"== {key} rep {i + 1} ==\n{dump}\n")
    header = (
        f"Stall dumps of the scorer's event loop (held {LIMIT_MS} ms or more without waking the "
        "lag probe), by scenario run; written by make bench.\n\n"
    )
    path.write_text(header + ("\n".join(parts) if parts else "None in this run.\n"))
    return len(parts)
