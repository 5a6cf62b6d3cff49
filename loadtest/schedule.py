"""When each request is due: a constant arrival rate, dealt round-robin across processes.

Open-loop load means requests leave on a timetable fixed before the run, whatever the server
does.  Global request ``g`` is due ``g / rate`` seconds after the start; with ``P`` generator
processes, process ``k`` owns requests ``g = i*P + k``, so together they keep the exact
timetable of one generator.  Latency is measured from these due times, so a stalled server (or
a generator that fell behind) shows up in the percentiles instead of being hidden by requests
that were never sent (coordinated omission).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadtest.errors import LoadTestError


def plan_total(rate: float, duration_s: float, max_requests: int) -> int:
    """How many requests an open-loop run sends: ``rate * duration``, at most ``max_requests``."""
    if rate <= 0 or not math.isfinite(rate):
        raise LoadTestError(f"rate must be a positive number of requests/s (got {rate})")
    if duration_s <= 0 or not math.isfinite(duration_s):
        raise LoadTestError(f"duration must be a positive number of seconds (got {duration_s})")
    return min(math.floor(rate * duration_s + 1e-9), max_requests)


def share(total: int, procs: int, index: int) -> int:
    """How many of ``total`` round-robin-dealt requests process ``index`` of ``procs`` owns."""
    if not 0 <= index < procs:
        raise LoadTestError(f"process index {index} out of range for {procs} processes")
    return max(0, (total - index + procs - 1) // procs)


@dataclass(frozen=True)
class Schedule:
    """The timetable of one generator process: its ``count`` requests at a total ``rate``."""

    rate: float
    count: int
    procs: int = 1
    index: int = 0

    def due(self, i: int) -> float:
        """Seconds after the start at which this process's ``i``-th request is due."""
        return (i * self.procs + self.index) / self.rate

    def due_by(self, elapsed: float) -> int:
        """How many of this process's requests are due at ``elapsed`` seconds (<= count)."""
        if elapsed < self.due(0):
            return 0
        n = math.floor((elapsed * self.rate - self.index) / self.procs + 1e-9) + 1
        return min(n, self.count)
