"""The machine's CPU time around each load run, per second of the run: busy, stolen, in all.

The bench machine is a 2-core virtual machine, and some of its worst seconds (a p99 of 40 to
240 ms in a run whose event loop was never held as long) had no cause the scorer's own
measures could name.  Two causes outside the scorer would give such seconds: the cores were
saturated (the generator, the scorer, its sidecar, the broker and Redis share two), or the
hypervisor ran something else on them (**steal**: time this machine's vCPUs were ready but
not running).  ``/proc/stat``'s first line says both, summed over every CPU: busy (user,
nice, system, irq, softirq), steal, and the total of all its columns but the guest ones
(already counted in user).  Read by :class:`benchmarks.tcpstat.Sampler` every 0.1 s and put
in the run's seconds like the TCP counters; the kernel counts in ticks (``SC_CLK_TCK``, 100
a second here), so a second's figures are good to 10 ms a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

STAT = Path("/proc/stat")
COUNTERS = ("busy_ms", "steal_ms", "total_ms")
# The first line's columns: user nice system idle iowait irq softirq steal guest guest_nice.
_BUSY = (0, 1, 2, 5, 6)
_STEAL = 7
_COLUMNS = 8  # the guest columns are in user already


def read(path: Path = STAT) -> dict[str, int] | None:
    """CPU time so far, in ms, summed over every CPU; None where the file is missing or not
    in the expected shape (not Linux)."""
    try:
        with path.open() as f:
            first = f.readline().split()
    except OSError:
        return None
    if len(first) < 1 + _COLUMNS or first[0] != "cpu":
        return None
    try:
        ticks = [int(v) for v in first[1 : 1 + _COLUMNS]]
    except ValueError:
        return None
    ms = 1000 / os.sysconf("SC_CLK_TCK")
    return {
        "busy_ms": round(sum(ticks[i] for i in _BUSY) * ms),
        "steal_ms": round(ticks[_STEAL] * ms),
        "total_ms": round(sum(ticks) * ms),
    }


def busy_share(counts: dict[str, int] | None) -> float | None:
    """The busy share (0 to 1) of all CPUs' time in a reading's difference, or None."""
    if not counts or not counts.get("total_ms"):
        return None
    return counts.get("busy_ms", 0) / counts["total_ms"]
