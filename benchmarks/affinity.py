"""CPU pinning for the bench's pinned mode: a server and everything it runs on one core.

``os.sched_setaffinity(pid)`` moves one thread only (Linux affinity is per task), and a
library may widen its own threads' masks (onnxruntime's thread pools do), so :func:`pin_tree`
sets the mask of every thread of a process and of all its descendants, and a :class:`Pinner`
re-applies it every few hundred milliseconds while a pinned run lasts: a child started later
(a respawned sidecar) or a thread that moved itself is pinned again within that period.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

ALL_CPUS = frozenset(range(os.cpu_count() or 1))


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants (empty when ``pid`` is gone)."""
    try:
        proc = psutil.Process(pid)
        return [pid, *(child.pid for child in proc.children(recursive=True))]
    except psutil.Error:
        return []


def thread_ids(pid: int) -> list[int]:
    """The task (thread) ids of ``pid``; empty when it is gone."""
    try:
        return [int(tid) for tid in os.listdir(Path("/proc") / str(pid) / "task")]
    except OSError:
        return []


def pin_process(pid: int, cpus: frozenset[int]) -> int:
    """Give every thread of ``pid`` the CPU set ``cpus``; returns how many threads were
    changed (a thread that ends meanwhile is skipped)."""
    changed = 0
    for tid in thread_ids(pid):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            if os.sched_getaffinity(tid) != cpus:
                os.sched_setaffinity(tid, cpus)
                changed += 1
    return changed


def pin_tree(pid: int, cpus: Iterable[int]) -> int:
    """Give every thread of ``pid`` and of its descendants the CPU set ``cpus``; returns how
    many threads were changed."""
    wanted = frozenset(cpus)
    return sum(pin_process(proc, wanted) for proc in tree_pids(pid))


def assign(plan: dict[int, frozenset[int]]) -> dict[int, frozenset[int]]:
    """Each process of the plan's trees with its CPU set.  Trees may nest (the bench process
    is the parent of the servers it started): a process takes the set of the smallest tree
    it belongs to, so a server stays on its core although the bench's tree contains it."""
    trees = {root: tree_pids(root) for root in plan}
    out: dict[int, frozenset[int]] = {}
    for root in sorted(plan, key=lambda r: len(trees[r]), reverse=True):
        for pid in trees[root]:
            out[pid] = plan[root]
    return out


class Pinner:
    """Keeps process trees on their CPU sets (``{pid: cpus}``) until :meth:`stop`."""

    def __init__(self, plan: dict[int, frozenset[int]], every_s: float = 0.25) -> None:
        self.plan = plan
        self.every_s = every_s
        self.repins = 0  # threads moved back after the first pass (children started later)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinner", daemon=True)

    def apply(self) -> int:
        return sum(pin_process(pid, cpus) for pid, cpus in assign(self.plan).items())

    def start(self) -> Pinner:
        self.apply()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.repins += self.apply()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


@contextlib.contextmanager
def pinned(plan: dict[int, frozenset[int]], every_s: float = 0.25) -> Iterator[Pinner]:
    """Pin while the block runs, then give every tree in ``plan`` all CPUs back."""
    pinner = Pinner(plan, every_s).start()
    try:
        yield pinner
    finally:
        pinner.stop()
        for pid in plan:
            pin_tree(pid, ALL_CPUS)


def pinned_plan(nproc: int | None = None) -> tuple[frozenset[int], frozenset[int]] | None:
    """(server core, generator core) when the machine has at least two, else None."""
    cpus = sorted(os.sched_getaffinity(0)) if nproc is None else list(range(nproc))
    if len(cpus) < 2:
        return None
    return frozenset({cpus[0]}), frozenset({cpus[1]})
