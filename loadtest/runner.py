"""One generator process: open-loop (constant arrival rate) or closed-loop (N connections).

Both modes are callback-driven on one event loop (uvloop when installed): no coroutine or task
per request, just a ``transport.write`` of pre-encoded bytes and a few counters when the answer
arrives, so one process can drive tens of thousands of requests per second.

Open loop: a pacer wakes when the next request is due and dispatches every request due by now
to an idle keep-alive connection, opening new ones up to ``connections``; a request that finds
no connection waits in a FIFO, and its latency still counts from its due time.  Closed loop:
``connections`` connections each send the next request as soon as the previous answer arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from loadtest.payloads import EncodedPayloads, Payload, encode_payloads
from loadtest.protocol import Connection
from loadtest.schedule import Schedule, plan_total, share
from loadtest.stats import Recorder
from loadtest.target import Target
from loadtest.timer import SleepUntil, make_sleeper

# uvloop's loop.time() is libuv's cached millisecond clock: too coarse to time requests.
clock = time.perf_counter
SWEEP_INTERVAL_S = 0.05
MIN_WAKE_INTERVAL_S = 0.0005
RECONNECT_DELAY_S = 0.01
PREOPEN_MAX = 16

StartGate = Callable[[], Awaitable[float]]  # waits for the common start; returns its wall time


@dataclass(frozen=True)
class RunConfig:
    """A whole run (all processes).  ``rate`` is the total for open loop; ``connections`` is
    per process (open loop: the most it may open; closed loop: exactly that many)."""

    target: Target
    payloads: tuple[Payload, ...]
    mode: Literal["open", "closed"] = "open"
    rate: float = 100.0
    duration_s: float = 10.0
    max_requests: int = 1_000_000
    connections: int = 16
    # Open loop: the connections opened before the run starts (at most ``connections``).
    # The pool reuses its idle connections oldest first, so at a steady rate all of them stay
    # warm; size it for the peak (about rate x the slowest latency expected) and the run
    # opens none mid-run (docs/loadtest.md).
    preopen: int = PREOPEN_MAX
    timeout_s: float = 10.0
    # Idle connections are closed after this long, before the server's keep-alive timeout
    # (uvicorn: 5 s) closes them: a request written just as the server closes its end is
    # reset, a failure the server did not cause.
    keepalive_s: float = 4.0
    procs: int = 1
    mix: dict[str, float] | None = field(default=None)
    seed: int = 0

    def total(self) -> int:
        """Requests the whole run may send (open loop: exactly this many)."""
        if self.mode == "open":
            return plan_total(self.rate, self.duration_s, self.max_requests)
        return self.max_requests


class _Generator:
    """Connections, pending requests and the recorder of one process."""

    def __init__(self, cfg: RunConfig, enc: EncodedPayloads, rec: Recorder) -> None:
        self.cfg, self.enc, self.rec = cfg, enc, rec
        self.loop = asyncio.get_running_loop()
        self.start = 0.0  # perf_counter time of the common start
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()
        self.opened = 0  # connected or connecting
        self.pending = 0  # dispatched, not yet answered or failed
        self.waiting: deque[tuple[int, float]] = deque()  # (request number, due perf_counter time)
        self.on_idle: Callable[[Connection], None] = self._serve_waiting
        self.reconnect = False  # closed loop: replace every lost connection
        self.closing = False
        self.draining = False
        self.drained = asyncio.Event()  # set when draining and nothing is pending
        self._connecting: set[asyncio.Task[Connection | None]] = set()  # keep tasks referenced

    # -- connections -------------------------------------------------------------------
    async def connect(self) -> Connection | None:
        """Open one connection; on failure fail the oldest waiting request (if any)."""
        self.opened += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: Connection(self._response, self._lost),
                    self.cfg.target.host,
                    self.cfg.target.port,
                ),
                self.cfg.timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            self.opened -= 1
            if self.waiting:
                _, due = self.waiting.popleft()
                self._fail(f"connect: {type(exc).__name__}", due)
                if self.waiting and not self.closing:
                    self.loop.call_later(RECONNECT_DELAY_S, self._spawn_connect)
            return None
        if self.closing:
            conn.abort("run over")
            return None
        if self.start and clock() >= self.start:
            conn.fresh = True
            self.rec.opened(int(clock() - self.start))
        self.on_idle(conn)
        return conn

    def _spawn_connect(self) -> None:
        if self.opened < self.cfg.connections and not self.closing:
            self.connect_soon()

    def connect_soon(self) -> None:
        """Open a connection in the background (the loop holds tasks only weakly)."""
        task = self.loop.create_task(self.connect())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def send(self, conn: Connection, i: int, due: float) -> None:
        p = self.enc.pick(i)
        conn.payload, conn.scheduled, conn.busy = p, due, True
        conn.sent = clock()
        self.busy.add(conn)
        conn.send(self.enc.requests[p])

    def _serve_waiting(self, conn: Connection) -> None:
        if self.waiting:
            i, due = self.waiting.popleft()
            self.send(conn, i, due)
        else:
            conn.idle_since = clock()
            self.idle.append(conn)  # in turn: the oldest idle connection, reused first, at 0

    def _finished(self) -> None:
        self.pending -= 1
        if self.draining and self.pending <= 0:
            self.drained.set()

    def _fail(self, reason: str, due: float) -> None:
        self._finished()
        self.rec.error(reason, int(due - self.start))

    def _response(self, conn: Connection, status: int, close: bool) -> None:
        now = clock()
        payload = self.enc.payloads[conn.payload]
        self.rec.response(
            now - conn.scheduled,
            now - conn.sent,
            status,
            payload.kind,
            status // 100 == payload.expect_class,
            int(conn.scheduled - self.start),
            first=conn.fresh,
        )
        conn.fresh = False
        conn.busy = False
        self.busy.discard(conn)
        self._finished()
        if close:
            conn.abort("server asked to close")
        else:
            self.on_idle(conn)

    def _lost(self, conn: Connection, reason: str) -> None:
        self.opened -= 1
        if conn.busy:
            conn.busy = False
            self.busy.discard(conn)
            self._fail(reason, conn.scheduled)
        else:
            with contextlib.suppress(ValueError):
                self.idle.remove(conn)
        if (self.waiting or self.reconnect) and not self.closing:
            self.loop.call_later(RECONNECT_DELAY_S, self._spawn_connect)

    async def sweep(self) -> None:
        """Every 50 ms: time out requests with no answer (or no connection) after timeout_s."""
        while not self.closing:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            limit = clock() - self.cfg.timeout_s
            for conn in [c for c in self.busy if c.sent < limit]:
                conn.abort("timeout")
            while self.waiting and self.waiting[0][1] < limit:
                _, due = self.waiting.popleft()
                self._fail("timeout (no connection)", due)
            stale = clock() - self.cfg.keepalive_s
            while self.idle and self.idle[0].idle_since < stale and not self.reconnect:
                self.idle.pop(0).abort("idle too long")

    async def drain(self, deadline: float) -> None:
        """Wait for pending requests until ``deadline`` (perf_counter), then fail the rest."""
        self.draining = True
        if self.pending > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), max(0.0, deadline - clock()))
        self.closing = True
        for conn in list(self.busy):
            conn.abort("timeout")
        while self.waiting:
            _, due = self.waiting.popleft()
            self._fail("timeout (no connection)", due)
        for conn in list(self.idle):  # abort() removes it from self.idle
            conn.abort("run over")

    async def preopen(self, n: int) -> None:
        await asyncio.gather(*(self.connect() for _ in range(n)))


async def _open_loop(gen: _Generator, schedule: Schedule, sleep_until: SleepUntil) -> None:
    rec, start = gen.rec, gen.start
    i = 0
    while i < schedule.count:
        now = clock()
        upto = schedule.due_by(now - start)
        while i < upto:
            due = start + schedule.due(i)
            rec.send_lag(now - due)
            gen.pending += 1
            if gen.idle:
                gen.send(gen.idle.pop(0), i, due)
            else:
                gen.waiting.append((i, due))
                if gen.opened < gen.cfg.connections:
                    gen.connect_soon()
            i += 1
        if i < schedule.count:
            # One wake-up per request costs a context switch each, which on a box shared with
            # the server hurts more than it helps: at high rates, requests leave in small
            # batches at most every MIN_WAKE_INTERVAL_S (send_lag records the delay).
            await sleep_until(max(start + schedule.due(i), clock() + MIN_WAKE_INTERVAL_S))


async def _closed_loop(gen: _Generator, budget: int) -> None:
    """Each connection sends its next request as soon as its answer arrives, until the
    duration is over or ``budget`` requests went out (and came back)."""
    end = gen.start + gen.cfg.duration_s
    spent = asyncio.Event()
    sent = 0

    def next_request(conn: Connection) -> None:
        nonlocal sent
        now = clock()
        if now >= end or sent >= budget or gen.closing:
            gen.idle.append(conn)
            if sent >= budget and gen.pending == 0:
                spent.set()
            return
        sent += 1
        gen.pending += 1
        gen.send(conn, sent, now)

    gen.reconnect = True
    gen.on_idle = next_request
    for conn in gen.idle[:]:
        gen.idle.remove(conn)
        next_request(conn)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(spent.wait(), max(0.0, end - clock()))


async def run_process(cfg: RunConfig, index: int, gate: StartGate) -> Recorder:
    """Run process ``index``'s share of ``cfg``; ``gate`` returns the common start (wall time,
    ``time.time()``) once every process is ready.  Returns this process's measurements."""
    rec = Recorder()
    enc = encode_payloads(cfg.payloads, cfg.mix, cfg.target.authority, seed=cfg.seed + index)
    gen = _Generator(cfg, enc, rec)
    count = share(cfg.total(), cfg.procs, index)
    preopen = cfg.connections if cfg.mode == "closed" else min(cfg.connections, cfg.preopen)
    if cfg.mode == "closed" or count:
        await gen.preopen(preopen)
    start_wall = await gate()
    gen.start = clock() + (start_wall - time.time())
    await asyncio.sleep(max(0.0, gen.start - clock()))
    cpu_before = time.process_time()
    sweeper = gen.loop.create_task(gen.sweep())
    if cfg.mode == "open":
        schedule = Schedule(rate=cfg.rate, count=count, procs=cfg.procs, index=index)
        sleep_until, close_timer = make_sleeper(gen.loop)
        try:
            await _open_loop(gen, schedule, sleep_until)
        finally:
            close_timer()
        last_due = gen.start + (schedule.due(count - 1) if count else 0.0)
    else:
        await _closed_loop(gen, count)
        last_due = clock()
    await gen.drain(last_due + cfg.timeout_s)
    rec.cpu_s = time.process_time() - cpu_before
    sweeper.cancel()
    await asyncio.sleep(0)  # let aborted transports deliver connection_lost
    return rec


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when installed (2-3x less overhead per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a base dependency on Linux
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_in_this_process(cfg: RunConfig, index: int, gate: StartGate) -> Recorder:
    """:func:`run_process` on a fresh event loop."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(run_process(cfg, index, gate))
