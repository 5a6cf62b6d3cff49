"""What every row of the fault matrix shares: the environment (a scorer, its stack, a watcher
on the scores topic), the durations, and :class:`Row`, what a row reports.

The environment is built with the bench's own helpers: a small benchmark model
(:mod:`benchmarks.model`), the LocalStack with the registry (:class:`benchmarks.stack.ScorerStack`),
``shadowline serve`` (:mod:`benchmarks.servers`) and the open-loop load of :mod:`loadtest`
(:func:`benchmarks.load.load`, in a process of its own).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.load import load, scrape
from benchmarks.servers import Server, start, start_scorer
from benchmarks.watch import TopicWatcher, sidecar_of

WORK_DIR = Path(".shadowline/reliability")
ADMIN_TOKEN = "reliability-admin-token"  # noqa: S105 - a throwaway scorer's token
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass(frozen=True)
class Durations:
    """Seconds of each phase; ``--quick`` scales the long ones down."""

    load: float = 20.0  # load of a kill row
    fault_at: float = 5.0  # when in it the fault comes
    outage: float = 300.0
    soak: float = 600.0
    promote_every: float = 10.0
    abusive: float = 15.0


QUICK = Durations(load=10.0, fault_at=3.0, outage=30.0, soak=60.0, abusive=8.0)


@dataclass
class Row:
    """One fault: what was done, what must hold, what was measured."""

    name: str
    fault: str
    load: str
    must_hold: list[str]
    checks: list[tuple[str, bool]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    depends_on: str | None = None  # work of #11 that another branch delivers
    seconds: float = 0.0

    def check(self, measured: str, ok: bool) -> None:
        self.checks.append((measured, bool(ok)))

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fault": self.fault,
            "load": self.load,
            "must_hold": self.must_hold,
            "measured": [m for m, _ in self.checks],
            "checks": [ok for _, ok in self.checks],
            "passed": self.passed,
            "depends_on": self.depends_on,
            "seconds": self.seconds,
            "data": self.data,
        }


@dataclass
class Env:
    """The scorer and its surroundings for the whole run."""

    work: Path
    durations: Durations
    rate: float
    stack: Any  # benchmarks.stack.ScorerStack
    scorer: Server
    watcher: TopicWatcher
    onnx: bytes
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.scorer.url

    def counters(self) -> dict[str, float]:
        return scrape(self.url)

    def load(
        self,
        duration_s: float,
        during: Callable[[float], list[dict[str, Any]]] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """Open-loop load at ``rate`` for ``duration_s`` (a process of its own); ``during(t0)``
        runs in a thread alongside and returns its events, kept in ``result["events"]``."""
        events: list[dict[str, Any]] = []
        errors: list[Exception] = []
        thread = None
        if during is not None:
            t0 = time.monotonic()

            def fault() -> None:
                try:
                    events.extend(during(t0))
                except Exception as exc:  # raised below, once the load has ended
                    errors.append(exc)

            thread = threading.Thread(target=fault, daemon=True)
            thread.start()
        result = load(
            self.url, "scorer", rate=kw.pop("rate", self.rate), duration_s=duration_s, **kw
        )
        if thread is not None:
            thread.join(max(60.0, self.durations.outage))
        if errors:
            raise errors[0]
        result["events"] = events
        return result

    def recover(self) -> None:
        """After a row broke: Redis, the broker and the scorer running again, and the watcher
        reading the broker's topic anew (what it reads again lands before the next row)."""
        topics = [_stack_module().SCORES_TOPIC, _stack_module().LABELS_TOPIC]
        self.stack.stack.up(topics=topics)
        if self.scorer.proc.poll() is not None:
            self.restart_scorer()
        self.watcher.restart()
        self.watcher.settle(quiet_s=2.0, timeout_s=30.0)

    def drain(self, timeout_s: float = 180.0) -> bool:
        """Wait until the spool is empty and the broker acknowledged everything the scorer
        built (counts steady for 1.5 s), then until the watcher has read it."""
        deadline = time.monotonic() + timeout_s
        last, steady_since = -1.0, time.monotonic()
        while time.monotonic() < deadline:
            try:
                now = self.counters()
            except OSError:
                time.sleep(0.5)
                continue
            sent = now.get("shadowline_kafka_sent_total", 0.0)
            if sent != last or now.get("shadowline_spool_records", 0.0) > 0:
                last, steady_since = sent, time.monotonic()
            elif time.monotonic() - steady_since > 1.5:
                self.watcher.settle()
                return True
            time.sleep(0.25)
        return False

    def sidecar(self) -> Any:
        return sidecar_of(self.scorer.proc.pid)

    def kill_scorer(self) -> None:
        """SIGKILL the scorer process alone (its sidecar notices and ends)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.scorer.proc.pid, signal.SIGKILL)
        self.scorer.proc.wait(10)

    def restart_scorer(self, *, kill: bool = False) -> float:
        """Stop (SIGTERM, or SIGKILL with ``kill``) and start the scorer on the same port;
        returns the seconds until it is ready again."""
        if kill:
            self.kill_scorer()
        else:
            self.scorer.stop()
        began = time.monotonic()
        self.scorer = start("scorer", self.scorer.cmd, self.work, "/readyz", self.env)
        self.scorer.wait_ready()
        return time.monotonic() - began

    def restart_broker(self) -> tuple[float, int]:
        """``shadowline stack up``'s restart of a dead broker (same port, topics re-created),
        with the watcher told to read the new broker from its start.  Returns (seconds, port)."""
        topics = [_stack_module().SCORES_TOPIC, _stack_module().LABELS_TOPIC]
        began = time.monotonic()
        comps = {c.name: c for c in self.stack.stack.up(topics=topics)}
        self.watcher.restart()
        return time.monotonic() - began, comps["kafka"].port


def _stack_module() -> Any:
    """benchmarks.stack, imported by name as `make bench` does: it needs the registry API, and
    the type checker is not to follow it (benchmarks are not type-checked)."""
    return importlib.import_module("benchmarks.stack")


def setup(work: Path, durations: Durations, rate: float) -> Env:
    """Train a small model, start the stack, register versions, start the scorer."""
    from benchmarks.model import train

    model = train(rows=4_000, trees=40)
    # The soak's promotions, plus those of the other rows (about 50).
    spares = int(durations.soak // durations.promote_every) + 70
    stack = _stack_module().ScorerStack.up(work / "stack", model.onnx_bytes, spares)
    env = {
        **stack.env,
        "SHADOWLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        # The last-known-good model copy of #11 deliverable 1 (ignored by a scorer without).
        "SHADOWLINE_MODEL_CACHE_DIR": str((work / "model-cache").resolve()),
    }
    try:
        scorer = start_scorer(work, env)
        scorer.wait_ready()
    except BaseException:
        stack.down()
        raise
    watcher = TopicWatcher(stack.env["SHADOWLINE_KAFKA_BOOTSTRAP"], _stack_module().SCORES_TOPIC)
    watcher.start()
    return Env(
        work=work,
        durations=durations,
        rate=rate,
        stack=stack,
        scorer=scorer,
        watcher=watcher,
        onnx=model.onnx_bytes,
        env=env,
    )
