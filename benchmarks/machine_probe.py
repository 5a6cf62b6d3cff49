"""The machine's own stalls: what a process with nothing to do sees, beside the scorer's holds.

On a virtual machine the hypervisor now and then takes a vCPU away, sometimes both at once,
for a few milliseconds.  /proc/stat counts that as steal, but in 10 ms ticks, so a 5 ms stall
often shows as none.  Inside the machine a thread that was running then looks as if it
neither ran nor waited for a core: the scorer's lag probe (:mod:`service.lagprobe`) counts the
time as a hold, and as blocked, as though another thread of the scorer had held the GIL.

So the at-rest scenario runs this probe beside the scorer.  It is one process per CPU, each
pinned to its CPU, each a single thread that sleeps 1 ms again and again.  A wake is a
**stall** when it is late beyond its own run-queue wait, read from
``/proc/thread-self/schedstat`` as the lag probe reads it.  That lateness is neither a lock
held by another thread (there is none) nor work of its own (it has none): it is the machine's.
A hold of the scorer's in a window where the probe saw no stall over 2 ms is the scorer's
doing; one in a window where it did may be the machine's.

Measured on the 2-core "AMD EPYC" bench machine, a scorer at rest and this probe, 60 s: the
probe saw 5 stalls over 2 ms; two of them, 6.0 and 10.3 ms, hit both CPUs at the same moment.
In the same 10 s the scorer's largest hold was 10.5 ms, and its other windows had none
over 2.2 ms.  Each probe wakes 1,000 times a second: a few percent of a core between them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

INTERVAL_S = 0.001
# Wakes later than this beyond the interval and the run-queue wait are kept (reports count
# those over 2 ms, as the scorer's holds are counted).
KEEP_OVER_MS = 1.0
SCHEDSTAT = "/proc/thread-self/schedstat"


def _probe(cpu: int, stop: Event, out: Queue[list[tuple[int, float, float]]]) -> None:
    """One CPU's probe: sleep, wake, keep the stalls (cpu, wall time, ms); send them at stop."""
    os.sched_setaffinity(0, {cpu})
    fd = os.open(SCHEDSTAT, os.O_RDONLY)
    stalls: list[tuple[int, float, float]] = []

    def waited_ns() -> int:
        return int(os.pread(fd, 128, 0).split()[1])

    before, waited = time.monotonic_ns(), waited_ns()
    while not stop.is_set():
        time.sleep(INTERVAL_S)
        now, now_waited = time.monotonic_ns(), waited_ns()
        stalled_ms = (now - before - (now_waited - waited)) / 1e6 - INTERVAL_S * 1e3
        if stalled_ms > KEEP_OVER_MS:
            stalls.append((cpu, time.time(), round(stalled_ms, 2)))
        before, waited = now, now_waited
    os.close(fd)
    out.put(stalls)


class MachineProbe:
    """Probe processes on ``cpus`` (default: every CPU this process may use) between
    :meth:`start` and :meth:`stop`; ``stalls`` then holds each stall as ``{"cpu", "wall",
    "ms"}``, in time order."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._out: Queue[list[tuple[int, float, float]]] = context.Queue()
        self._procs = [
            context.Process(target=_probe, args=(cpu, self._stop, self._out), daemon=True)
            for cpu in self.cpus
        ]
        self.stalls: list[dict[str, Any]] = []

    def start(self) -> None:
        for proc in self._procs:
            proc.start()

    @property
    def pids(self) -> dict[int, int]:
        """Each CPU's probe process id (once started)."""
        return {cpu: proc.pid or 0 for cpu, proc in zip(self.cpus, self._procs, strict=True)}

    def stop(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Stop the probes and collect what they saw; a probe that does not answer within
        ``timeout_s`` is killed and its stalls are lost (the report then has fewer)."""
        self._stop.set()
        stalls: list[tuple[int, float, float]] = []
        for _ in self._procs:
            with contextlib.suppress(Exception):
                stalls += self._out.get(timeout=timeout_s)
        for proc in self._procs:
            proc.join(timeout_s)
            if proc.is_alive():
                proc.kill()
        self.stalls = [{"cpu": c, "wall": w, "ms": ms} for c, w, ms in sorted(stalls, key=_wall)]
        return self.stalls


def _wall(stall: tuple[int, float, float]) -> float:
    return stall[1]


@contextlib.contextmanager
def probing(cpus: set[int] | None = None) -> Iterator[MachineProbe]:
    """A :class:`MachineProbe` running for the ``with`` block."""
    probe = MachineProbe(cpus)
    probe.start()
    try:
        yield probe
    finally:
        probe.stop()


def stalls_between(stalls: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The stalls over 2 ms whose ``second`` (on a run's timeline) lies in [start, end): how
    many, on how many CPUs at once at most, and the largest (0 when none)."""
    inside = [s for s in stalls if start <= s["second"] < end and s["ms"] > 2.0]
    return {
        "stalls_over_2ms": len(inside),
        "stall_max_ms": max((s["ms"] for s in inside), default=0.0),
    }
