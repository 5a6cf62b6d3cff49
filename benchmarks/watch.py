"""What the fault matrix watches: the scores topic (every record's request id) and the scorer's
processes (the sidecar, memory).

:class:`TopicWatcher` reads the scores topic from the start in a thread of its own, for the
whole run, and keeps every record's ``request_id`` in arrival order; a row compares them with
the requests its load got answered.  The stand-in broker keeps topics in memory: when it is
killed, what it acknowledged is gone, so a row that kills it first lets the watcher read
everything (:func:`frozen`: the sidecar is stopped meanwhile, so nothing new is acknowledged),
then kills it, then tells the watcher to start again from the beginning of the new broker's
(empty) topic.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import psutil

log = logging.getLogger(__name__)


class TopicWatcher:
    """Request ids of every record on ``topic``, read continuously (see the module docstring)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self.ids: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._restart = threading.Event()
        self._thread = threading.Thread(target=self._run, name="topic-watcher", daemon=True)
        self._last = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def count(self) -> int:
        with self._lock:
            return len(self.ids)

    def since(self, mark: int) -> collections.Counter[str]:
        """How often each request id was seen after the first ``mark`` records."""
        with self._lock:
            return collections.Counter(self.ids[mark:])

    def quiet_for(self) -> float:
        """Seconds since the last record arrived."""
        return time.monotonic() - self._last

    def pause(self) -> None:
        """Stop reading (before the broker is killed: its consumer would keep old offsets)."""
        self._paused.set()

    def restart(self) -> None:
        """Read the (new) broker's topic from its beginning."""
        self._restart.set()
        self._paused.clear()

    def _run(self) -> None:
        from kafka import KafkaConsumer

        consumer = None
        while not self._stop.is_set():
            if self._paused.is_set() or self._restart.is_set():
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._restart.clear()
                if self._paused.is_set():
                    time.sleep(0.05)
                    continue
            try:
                if consumer is None:
                    consumer = KafkaConsumer(
                        self._topic,
                        bootstrap_servers=self._bootstrap,
                        auto_offset_reset="earliest",
                        enable_auto_commit=False,
                        fetch_max_wait_ms=100,
                        request_timeout_ms=5000,
                    )
                batches = consumer.poll(timeout_ms=200)
            except Exception as exc:  # a dead broker: try again shortly
                log.info("watcher: %s", exc)
                time.sleep(0.2)
                continue
            found = [orjson.loads(m.value)["request_id"] for part in batches.values() for m in part]
            if found:
                with self._lock:
                    self.ids.extend(found)
                self._last = time.monotonic()
        if consumer is not None:
            consumer.close()

    def settle(self, quiet_s: float = 0.7, timeout_s: float = 10.0) -> None:
        """Wait until no record arrived for ``quiet_s`` (or ``timeout_s`` passed)."""
        deadline = time.monotonic() + timeout_s
        while self.quiet_for() < quiet_s and time.monotonic() < deadline:
            time.sleep(0.05)


def sidecar_of(scorer_pid: int) -> psutil.Process | None:
    """The scorer's sidecar process (spawned by multiprocessing), if it runs."""
    try:
        children = psutil.Process(scorer_pid).children()
    except psutil.Error:
        return None
    for child in children:
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(child.cmdline())
            if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
                return child
    return None


@contextlib.contextmanager
def frozen(process: psutil.Process | None) -> Iterator[None]:
    """SIGSTOP ``process`` for the block (a measurement device: see the module docstring)."""
    if process is None:
        yield
        return
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MiB (0 when it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / (1 << 20)


@dataclass(frozen=True)
class Delivery:
    """Requests answered 200 against the records the watcher saw for them."""

    answered: int
    seen: int  # distinct request ids
    duplicates: int  # records beyond the first of their request id

    @property
    def lost(self) -> int:
        return max(0, self.answered - self.seen)

    @classmethod
    def of(cls, answered: int, ids: collections.Counter[str]) -> Delivery:
        return cls(answered, len(ids), sum(n - 1 for n in ids.values()))

    def as_dict(self) -> dict[str, int]:
        return {
            "answered": self.answered,
            "records": self.seen,
            "lost": self.lost,
            "duplicates": self.duplicates,
        }
