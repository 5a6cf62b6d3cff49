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
A scorer's hold in a window where no probe saw a stall over 2 ms was not the machine's doing,
as far as a probe can tell; one in a window where a probe did see one may have been.

Measured on the 2-core "AMD EPYC" bench machine over 60 s, beside an idle scorer: the probes
saw 5 stalls over 2 ms, two of them (6.0 and 10.3 ms) on both CPUs at the same moment.  The
scorer's largest hold in the 10 s around that moment was 10.5 ms; in its other 10 s windows
none was over 2.2 ms.  Each probe wakes 1,000 times a second: a few percent of a core between
them.

Each probe is a process of its own, started as ``python -m benchmarks.machine_probe CPU``
(not forked from the bench, nor spawned by multiprocessing, which would import the whole bench
again in each child while the first window runs).  It says ``ready`` on stdout once pinned,
and on SIGTERM prints its stalls as one JSON line and exits.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INTERVAL_S = 0.001
# Wakes later than this beyond the interval and the run-queue wait are kept (reports count
# those over 2 ms, as the scorer's holds are counted).
KEEP_OVER_MS = 1.0
SCHEDSTAT = "/proc/thread-self/schedstat"
READY = "ready"


class ProbeError(RuntimeError):
    """A probe process could not start, or did not report."""


def probe(cpu: int) -> list[list[float]]:
    """Run one CPU's probe until SIGTERM: sleep, wake, keep each stall as ``[cpu, wall time
    it began, ms]``.  Says :data:`READY` on stdout once pinned and reading its schedstat."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    os.sched_setaffinity(0, {cpu})
    fd = os.open(SCHEDSTAT, os.O_RDONLY)
    stalls: list[list[float]] = []

    def waited_ns() -> int:
        return int(os.pread(fd, 128, 0).split()[1])

    print(READY, flush=True)
    before, waited = time.monotonic_ns(), waited_ns()
    while not stopping:
        time.sleep(INTERVAL_S)
        now, now_waited = time.monotonic_ns(), waited_ns()
        stalled_ms = (now - before - (now_waited - waited)) / 1e6 - INTERVAL_S * 1e3
        if stalled_ms > KEEP_OVER_MS:
            # Stamped when it went to sleep: the stall lies between then and now.
            stalls.append([cpu, time.time() - (now - before) / 1e9, round(stalled_ms, 2)])
        before, waited = now, now_waited
    os.close(fd)
    return stalls


class MachineProbe:
    """Probe processes on ``cpus`` (default: every CPU this process may use) between
    :meth:`start` and :meth:`stop`.  ``stalls`` then holds each stall as ``{"cpu", "wall",
    "ms"}`` (``wall``: when it began), in time order; ``reported`` the CPUs whose probe ran
    to the end and reported."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self._procs: dict[int, subprocess.Popen[str]] = {}
        self._stopped = False
        self.stalls: list[dict[str, Any]] = []
        self.reported: list[int] = []

    @property
    def complete(self) -> bool:
        """Every probe ran to the end and reported (after :meth:`stop`)."""
        return sorted(self.reported) == self.cpus

    @property
    def pids(self) -> dict[int, int]:
        """Each CPU's probe process id (once started)."""
        return {cpu: proc.pid for cpu, proc in self._procs.items()}

    def start(self, timeout_s: float = 10.0) -> None:
        """Start a probe on each CPU and wait until every one is pinned and probing.  Raises
        :class:`ProbeError` (after stopping the ones that started) when one is not."""
        cmd = [sys.executable, "-m", "benchmarks.machine_probe"]
        for cpu in self.cpus:
            self._procs[cpu] = subprocess.Popen(
                [*cmd, str(cpu)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
        deadline = time.monotonic() + timeout_s
        for cpu, proc in self._procs.items():
            line = _readline(proc, deadline)
            if line.strip() != READY:
                said: list[str] = []
                with contextlib.suppress(subprocess.TimeoutExpired):  # one that hangs says nothing
                    said = proc.communicate(timeout=1.0)[1].strip().splitlines()
                err = said[-1] if said else ""  # a traceback's last line names the error
                self.stop()
                raise ProbeError(f"the probe on CPU {cpu} did not start: {err or repr(line)}")

    def stop(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Stop the probes and collect what they saw.  A probe that does not report within
        ``timeout_s`` (all of them together) is killed and left out of ``reported``.  Once
        stopped, stopping again changes nothing."""
        if self._stopped:
            return self.stalls
        self._stopped = True
        deadline = time.monotonic() + timeout_s
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        stalls: list[list[float]] = []
        for cpu, proc in self._procs.items():
            try:
                out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                continue
            lines = out.splitlines()  # after its "ready", which start() read
            if proc.returncode == 0 and len(lines) == 1:
                stalls += json.loads(lines[0])
                self.reported.append(cpu)
        self.stalls = [
            {"cpu": int(c), "wall": w, "ms": ms} for c, w, ms in sorted(stalls, key=_began)
        ]
        return self.stalls


def _began(stall: list[float]) -> float:
    return stall[1]


def _readline(proc: subprocess.Popen[str], deadline: float) -> str:
    """The probe's first line, or "" if it exits or says nothing before ``deadline``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(max(0.0, deadline - time.monotonic())):
            return ""
    return proc.stdout.readline()


@contextmanager
def probing(cpus: set[int] | None = None) -> Iterator[MachineProbe]:
    """A :class:`MachineProbe` running for the ``with`` block (stopped however it ends)."""
    machine = MachineProbe(cpus)
    try:
        machine.start()
        yield machine
    finally:
        machine.stop()


def stalls_between(
    stalls: list[dict[str, Any]], start: float, end: float, *, complete: bool = True
) -> dict[str, Any]:
    """The stalls that began in [start, end) (``second``, on a run's timeline): how many over
    2 ms and over 1 ms (the lag probe reads up to 1 ms high, so a 1-2 ms stall can show there
    as a hold over 2 ms), and the largest (0 when none).  NaN for all unless ``complete``
    (every probe reported): a window a probe should have watched is then unknown, not quiet."""
    if not complete:
        return {"stalls_over_2ms": math.nan, "stalls_over_1ms": math.nan, "stall_max_ms": math.nan}
    inside = [s["ms"] for s in stalls if start <= s["second"] < end and s["ms"] > 1.0]
    return {
        "stalls_over_2ms": sum(1 for ms in inside if ms > 2.0),
        "stalls_over_1ms": len(inside),
        "stall_max_ms": max(inside, default=0.0),
    }


if __name__ == "__main__":
    print(json.dumps(probe(int(sys.argv[1]))), flush=True)
