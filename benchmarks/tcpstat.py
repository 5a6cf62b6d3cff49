"""The kernel's TCP retransmission counters around each load run, per second of the run.

Everything in the bench talks over loopback, which drops nothing, yet on the 2-core machine a
few seconds showed a p99 of 67 to 276 ms while the scorer's event loop was never held longer
than 17 ms.  One mechanism outside the scorer gives such numbers: a segment waits in the
kernel (the receiving core's backlog, served by a softirq thread that has to get the core)
until TCP's retransmission timer fires, 200 ms at the least on Linux.  The counters say when
that happened: ``TCPTimeouts`` (retransmission timeouts), ``TCPSpuriousRtxHostQueues`` (of
those, ones whose original segment was still queued in this host) and ``TCPLossProbes``
(tail-loss probes, sent after about 10 ms without an acknowledgement).  They are
machine-wide (/proc/net/netstat, this network namespace), so they count the bench's other
connections too (Redis, the broker).

A 214 ms request in a steady second with neither a timeout nor a loop stall (run 8, stop 21)
asked for more: segments the kernel dropped (``TCPBacklogDrop``: the socket's backlog full
while its owner held it; ``TCPRcvQDrop``: its receive queue full; ``ListenOverflows``: a
listener's accept queue full), probes that recovered a loss (``TCPLossProbeRecovery``) and
delayed acknowledgements (``DelayedACKs``, 40 to 200 ms each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NETSTAT = Path("/proc/net/netstat")
COUNTERS = (
    "TCPTimeouts",
    "TCPSpuriousRtxHostQueues",
    "TCPLossProbes",
    "TCPLossProbeRecovery",
    "TCPBacklogDrop",
    "TCPRcvQDrop",
    "ListenOverflows",
    "DelayedACKs",
)
# What the per-second table sums as "drops".
DROPS = ("TCPBacklogDrop", "TCPRcvQDrop", "ListenOverflows")


def read(path: Path = NETSTAT) -> dict[str, int] | None:
    """The ``COUNTERS`` now, or None where the file is missing or unreadable (not Linux)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            try:
                return {name: int(table.get(name, 0)) for name in COUNTERS}
            except ValueError:
                return None
    return None


class Sampler:
    """Reads the counters every ``every_s`` while a run goes on, with the wall time of each
    reading, so that what changed can be put in the run's seconds.  ``read`` and
    ``counters``: another set of machine-wide counters read the same way (the CPU times of
    :mod:`benchmarks.cpustat`)."""

    def __init__(
        self,
        every_s: float = 0.1,
        *,
        read: Callable[[], dict[str, int] | None] = read,
        counters: tuple[str, ...] = COUNTERS,
        name: str = "tcpstat",
    ) -> None:
        self._every_s = every_s
        self._read = read
        self._counters = counters
        self._stop = threading.Event()
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Sampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    def _take(self) -> None:
        counters = self._read()
        if counters is not None:
            self.samples.append((time.time(), counters))

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._take()

    def summary(self, started_wall: float | None, seconds: int) -> dict[str, Any] | None:
        """The run's totals and, per counter, what each of its ``seconds`` added (a change is
        put in the second of the reading that saw it; second 0 starts at ``started_wall``)."""
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0][1], self.samples[-1][1]
        names = self._counters
        out: dict[str, Any] = {"total": {k: last[k] - first[k] for k in names}}
        if started_wall is None:
            return out
        per_second = {k: [0] * seconds for k in names}
        for (_, before), (at, after) in zip(self.samples, self.samples[1:], strict=False):
            second = min(max(int(at - started_wall), 0), seconds - 1) if seconds else 0
            for k in names:
                if seconds:
                    per_second[k][second] += after[k] - before[k]
        out["per_second"] = per_second
        return out
