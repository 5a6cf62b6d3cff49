"""Follows the registry: change events from Redis pub/sub, plus a periodic reconcile.

Events make a promotion reach the scorer in milliseconds; the periodic check (every
``interval_s``, at most 2 s) catches anything an event could not deliver (a dropped
connection, a restart of Redis).  The loading itself happens in a worker thread of its own, at
the scorer's own priority (``LOAD_NICENESS``).  Only production versions are loaded here (the
sidecar loads the shadows), and a thread below the loop's priority turned out worse for the
loop, not better, on a busy core: it takes the GIL between its GIL-free stretches, and when
the kernel then runs a busier process instead, the loop waits for the GIL until that thread
gets the core back.  When Redis is unreachable the scorer keeps scoring with the models it has
and ``reachable`` turns False.

The periodic check reads only the deployment's revision, on the event loop with the async
client (one non-blocking HGET), and reconciles in a worker thread only when the revision moved
or a retry is due.  Handing work to a thread every second cost the loop a GIL hand-over each
time (measured with py-spy on a busy 2-core machine: about 1.6 ms of the loop's time per
submit), for a reconcile that almost always found nothing to do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis
import redis.asyncio as aioredis

from registry import RegistryError, decode_event
from registry.constants import deploy_key
from service.loader import ModelLoader
from service.metrics import ServiceMetrics
from service.priority import low_priority_executor

log = logging.getLogger(__name__)
# How far below the scorer the loading thread runs: not at all.  Measured on the 2-core bench
# machine, promotions loaded from the registry with the scorer's process, its sidecar and a
# CPU-bound process of nice 0 sharing one core: the loop's largest lag in the second after a
# promotion was 48 ms at nice +10, 15 ms at +5 and 9.4 ms at 0 (its lag without promotions:
# 5 ms).  Alone on its core, +10 did better (2 to 3 ms against 4 ms): a core to itself is
# the rarer case for a scorer.
LOAD_NICENESS = 0
# How long a shutdown waits for a model load under way (a large model's build and warm-up).
CLOSE_WAIT_S = 30.0


class RegistryFollower:
    """Runs ``loader.reconcile`` on each event for ``name`` and every ``interval_s``."""

    def __init__(
        self,
        loader: ModelLoader,
        connect: Callable[[], aioredis.Redis],
        metrics: ServiceMetrics,
        *,
        name: str,
        channel: str,
        interval_s: float,
    ) -> None:
        self._loader = loader
        self._connect = connect
        self._metrics = metrics
        self._name = name
        self._channel = channel
        self._interval_s = interval_s
        self._lock = asyncio.Lock()
        self._executor = low_priority_executor(LOAD_NICENESS, "model-loader")
        self._closed = False
        # close() runs in another thread: it and a hand-over to the loading thread exclude
        # each other, so no load is handed over between a "not closed" check and the shutdown.
        self._closing = threading.Lock()
        self._running: concurrent.futures.Future[object] | None = None  # the latest load
        self.reachable = False
        self.last_error: str | None = None

    async def reconcile(self) -> None:
        """One reconcile in a worker thread; registry failures are reported, never raised."""
        async with self._lock:  # never two loads at once
            if self._closed:
                return
            try:
                if not await self._in_loader(self._loader.reconcile):
                    return  # closed meanwhile
            except (redis.RedisError, OSError, RegistryError) as exc:
                self._unreachable(exc)
                # Nothing loaded yet (a start with Redis down): the last-known-good copy.
                await self._in_loader(self._loader.fall_back, self.last_error or "")
            except Exception:  # keep the loaded models; the next event or tick retries
                log.exception("reconcile failed; keeping the loaded models")
            else:
                self._reachable()

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Stop the loading thread: drop queued loads and wait (up to ``timeout_s``) for the
        one under way.

        Cancelling the follower's task does not stop a reconcile already handed to the thread:
        without this, a scorer that was shutting down could still read the registry, load a
        model and write a note to the audit log after its lifespan ended.  The wait is bounded
        so that a load stuck on an artifact store that does not answer cannot hold the
        shutdown; that is logged."""
        with self._closing:
            self._closed = True
            self._executor.shutdown(wait=False, cancel_futures=True)
        running = self._running
        if running is not None and concurrent.futures.wait([running], timeout_s).not_done:
            log.warning("a model load still runs after %gs; shutting down without it", timeout_s)

    async def _in_loader(self, fn: Callable[..., object], *args: object) -> bool:
        """Run ``fn(*args)`` in the loading thread and wait for it; False, with nothing run,
        once :meth:`close` has begun (a load that fails while the scorer shuts down must not
        hand its fallback to a stopped thread)."""
        with self._closing:  # and _running set with it: close() then waits for this load
            if self._closed:
                return False
            future = self._running = self._executor.submit(fn, *args)
        await asyncio.wrap_future(future)
        return True

    async def check(self, client: aioredis.Redis) -> None:
        """The periodic check: reconcile (in a worker thread) only when the registry's revision
        is not the one the live set reflects, or the loader has a retry due.  Raises what the
        client raises when Redis cannot be read (the caller reconnects)."""
        raw = await client.hget(deploy_key(self._name), "revision")
        if int(raw or 0) != self._loader.revision or self._loader.retry_due:
            await self.reconcile()
        else:
            self._reachable()

    def _reachable(self) -> None:
        self.reachable = True
        self.last_error = None
        self._metrics.registry_up.set(1)

    def _unreachable(self, exc: BaseException) -> None:
        if self.reachable or self.last_error is None:
            log.warning("registry unreachable, scoring with the loaded models: %s", exc)
        self.reachable = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._metrics.registry_up.set(0)

    async def run(self) -> None:
        """Follow until cancelled; reconnects after any Redis failure."""
        while True:
            client = self._connect()
            try:
                await self._follow(client)
            except (redis.RedisError, OSError) as exc:
                self._unreachable(exc)
                await asyncio.sleep(self._interval_s)
            except Exception:  # a bug must not end the following: log it, start over
                log.exception("registry follower failed; restarting it")
                await asyncio.sleep(self._interval_s)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    await client.aclose()

    async def _follow(self, client: aioredis.Redis) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(self._channel)
            # Subscribed first, then read the state: no change can fall in between.
            await self.reconcile()
            last = time.monotonic()
            while True:
                wait = max(0.0, self._interval_s - (time.monotonic() - last))
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                if message is None:
                    await self.check(client)
                elif self._concerns_us(message.get("data")):
                    await self.reconcile()
                else:
                    continue
                last = time.monotonic()

    def _concerns_us(self, data: object) -> bool:
        if not isinstance(data, bytes | str):
            return True
        try:
            return decode_event(data).name == self._name
        except RegistryError:
            return True  # an unreadable event: reconciling is always safe
