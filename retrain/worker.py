"""The scheduled worker: run the pipeline on a cron schedule, beat a health key, serve metrics.

A slot is due when the latest cron time at or before now is later than the last slot the
worker handled (kept in Redis, so a restarted worker -- or a second replica -- does not run a
slot twice; the run lock keeps two replicas from running at once).  A worker that was down
over a slot runs it once when it comes back (catch-up), not once per missed slot.  A
scheduled run uses its slot time as ``as_of``, so its data window is reproducible.

With a :class:`~retrain.scheduled_analysis.ScheduledAnalysis`, each tick also analyses the
shadows when their own slot (``analysis_schedule``, daily) is due, before the retrain slot; an
analysis that fails is logged and counted there and stops neither the worker nor the runs.

The worker also rolls out approved versions (:mod:`retrain.rollout`): ``drain`` checks once,
``serve`` checks every ``rollout.interval_s`` on a thread of its own, so a training run that
takes minutes does not hold an approved model back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from registry import RegistryError
from retrain.constants import HEALTH_KEY, MAX_RUNS_KEPT, SCHEDULE_KEY
from retrain.errors import ScheduleError
from retrain.records import RunStore
from retrain.rollout import Decision, Rollout
from retrain.runner import Runner, RunResult

if TYPE_CHECKING:
    from retrain.scheduled_analysis import Analysed, ScheduledAnalysis

log = logging.getLogger(__name__)


def latest_slot(schedule: str, now: float) -> float:
    """The latest cron time at or before ``now`` (unix seconds)."""
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise ScheduleError(f"schedule {schedule!r} is not a cron expression")
    # +1 s: a time exactly on a slot counts as that slot (get_prev is strictly before).
    return float(croniter(schedule, datetime.fromtimestamp(now + 1.0, tz=UTC)).get_prev(float))


def due_slot(client: redis.Redis, key: str, schedule: str, now: float) -> float | None:
    """The latest slot of ``schedule`` at or before ``now`` if it is later than the slot
    stored at ``key`` (the last one handled), else None."""
    slot = latest_slot(schedule, now)
    last = client.get(key)
    return slot if last is None or float(str(last)) < slot else None


def next_slot(schedule: str, now: float) -> float:
    from croniter import croniter

    return float(croniter(schedule, datetime.fromtimestamp(now, tz=UTC)).get_next(float))


class Worker:
    """Runs what is due.  ``drain`` for tests and cron-style use; ``serve`` runs forever."""

    def __init__(
        self,
        runner: Runner,
        runs: RunStore,
        *,
        schedule: str,
        health_ttl_s: int,
        clock: Callable[[], float] = time.time,
        analysis: ScheduledAnalysis | None = None,
        rollout: Rollout | None = None,
        rollout_interval_s: float = 10.0,
    ) -> None:
        self.runner = runner
        self.analysis = analysis
        self.analysed: list[Analysed] = []  # what the last analysis slot did
        self.runs = runs
        self.schedule = schedule
        self.health_ttl_s = health_ttl_s
        self.clock = clock
        self.rollout = rollout
        self.rollout_interval_s = rollout_interval_s
        self.state = "idle"
        self.last: dict[str, Any] = {}  # the last run's id and outcome, in every beat
        self.restore_last_success()
        metrics = runner.metrics
        metrics.due_slot.set_function(lambda: latest_slot(self.schedule, self.clock()))
        with contextlib.suppress(redis.RedisError):
            self._handled(self.runs.client.get(SCHEDULE_KEY))

    def restore_last_success(self) -> None:
        """Seed the last-success gauge from the stored runs, so a restarted worker does not
        report "never" (and trip staleness alerts) until its next good run.  Redis being
        unreachable here only leaves the gauge unset: the serve loop reports Redis itself."""
        try:
            records = self.runs.recent(MAX_RUNS_KEPT)
        except redis.RedisError:
            return
        for record in records:  # newest first
            if record.outcome in ("succeeded", "rejected") and record.finished_at is not None:
                self.runner.metrics.last_success.set(record.finished_at)
                return

    def _handled(self, last: object) -> float | None:
        """The last handled slot from its Redis value; also sets its gauge."""
        slot = None if last is None else float(str(last))
        self.runner.metrics.handled_slot.set(slot or 0.0)
        return slot

    def due(self) -> float | None:
        """The slot to run now, or None when the latest slot was handled already."""
        return due_slot(self.runs.client, SCHEDULE_KEY, self.schedule, self.clock())

    def roll_out(self) -> Decision | None:
        """One roll-out check (None when roll-out is off); its message goes into the beat and,
        when it changed, the log."""
        if self.rollout is None:
            return None
        decision = self.rollout.step()
        if decision.message != self.last.get("rollout"):
            log.info("roll-out: %s", decision.message)
        self.last["rollout"] = decision.message
        return decision

    def beat(self, **extra: Any) -> None:
        now = self.clock()
        self.runs.beat(
            {
                "state": self.state,
                "schedule": self.schedule,
                "next_slot": next_slot(self.schedule, now),
                **self.last,
                **extra,
            },
            self.health_ttl_s,
        )

    def tick(self) -> RunResult | None:
        """Beat, analyse the shadows if their slot is due, then run the due slot if any."""
        self.beat()
        self._analyse_shadows()
        slot = self.due()
        if slot is None:
            return None
        when = datetime.fromtimestamp(slot, tz=UTC)
        self.state = f"running slot {when.isoformat()}"
        self.beat()
        # A run can outlast the health key's TTL (training on a busy machine): keep beating
        # from a side thread so the container is not declared unhealthy mid-run.
        running = threading.Event()
        pulse = threading.Thread(target=self._pulse, args=(running,), daemon=True)
        pulse.start()
        try:
            result = self.runner.run(as_of=when, trigger=f"schedule {when.isoformat()}")
        finally:
            running.set()
            pulse.join()
            self.runs.client.set(SCHEDULE_KEY, repr(slot))
            self.runner.metrics.handled_slot.set(slot)
            self.state = "idle"
        self.last.update(last_run=result.run_id, last_outcome=result.outcome)
        log.info("retrain run %s %s: %s", result.run_id, result.outcome, result.reason)
        self.beat()
        return result

    def _analyse_shadows(self) -> None:
        """The scheduled analysis, if configured and due; its failures are counted, not raised
        (only Redis being down, which stops every tick anyway, propagates)."""
        if self.analysis is None:
            return
        if self.analysis.due() is None:
            self.analysis.refresh()
            return
        self.state = "analysing shadows"
        with self._beating():
            self.analysed = self.analysis.run_due()
        self.state = "idle"
        self.beat()

    @contextlib.contextmanager
    def _beating(self) -> Iterator[None]:
        """Beat now and from a side thread until the block ends (it may outlast the TTL)."""
        self.beat()
        finished = threading.Event()
        pulse = threading.Thread(target=self._pulse, args=(finished,), daemon=True)
        pulse.start()
        try:
            yield
        finally:
            finished.set()
            pulse.join()

    def _pulse(self, finished: threading.Event) -> None:
        while not finished.wait(self.health_ttl_s / 3.0):
            self.beat()

    def drain(self) -> list[RunResult]:
        """Check the roll-out once, run whatever is due now, then return (at most one run:
        only the latest slot).  The roll-out's decision is in ``last["rollout"]``."""
        self.roll_out()
        results = []
        while (result := self.tick()) is not None:
            results.append(result)
        return results

    def _roll_out_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.roll_out()
            except (redis.RedisError, RegistryError) as exc:
                # The next check retries; the serve loop reports Redis being down.
                log.warning("roll-out check failed: %s: %s", type(exc).__name__, exc)
            except Exception:  # a bug must not end the roll-out checks: log it, go on
                log.exception("roll-out check failed")
            stop.wait(self.rollout_interval_s)

    def serve(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; wakes often enough to keep the health key alive.
        Roll-out checks run on a thread of their own meanwhile."""
        rolling = threading.Thread(
            target=self._roll_out_until, args=(stop,), name="rollout", daemon=True
        )
        if self.rollout is not None:
            rolling.start()
        while not stop.is_set():
            try:
                self.tick()
            except redis.RedisError as exc:
                # Redis is down: no beat (so --check fails) and no run; retry next tick
                # rather than exit, so the worker recovers when Redis does.
                log.warning("retrain worker: Redis unavailable: %s: %s", type(exc).__name__, exc)
            wait = min(
                self.health_ttl_s / 3.0,
                max(next_slot(self.schedule, self.clock()) - self.clock(), 0.0) + 0.5,
            )
            stop.wait(max(wait, 0.5))
        if rolling.is_alive():
            rolling.join(self.rollout_interval_s + 30)
        with contextlib.suppress(redis.RedisError):
            self.runs.client.delete(HEALTH_KEY)  # a stopped worker is not healthy


def check_health(runs: RunStore) -> tuple[bool, str]:
    """(healthy, one line) from the health key: missing or expired means unhealthy."""
    try:
        health = runs.health()
    except Exception as exc:  # any Redis failure means "cannot tell": unhealthy
        return False, f"cannot read the health key: {type(exc).__name__}: {exc}"
    if health is None:
        return False, "no worker heartbeat (health key missing or expired)"
    age = time.time() - float(health["at"])
    return True, f"worker {health['state']}, last beat {age:.0f}s ago"
