"""Roll-out: the retrain worker promotes what a human approved, inside the deployment window.

Approval (admin API, review page or ``shadowline models approve``) is then the one human move
from shadow to production.  On each check :meth:`Rollout.step`:

1. reads the production version's ``production`` stamp (:mod:`registry.stamps`): the audit
   sequence number at which it became production, by promotion or rollback (0 when there is
   none, or it became production before stamps existed);
2. keeps the ``approved`` versions whose approval stamp is newer than that; leaves out an
   approval that was forced past the policy (unless ``allow_forced``), a version the guard or
   a person rolled back, and a version approved before stamps existed (a human promotes those);
3. takes the newest approval among them and, if now is inside the deployment window (a cron
   expression over minutes, e.g. ``* 9-15 * * 1-5`` = weekdays 09:00-15:59 UTC; empty = any
   time), promotes it as ``retrain-worker@<host>`` with a reason naming the approval it acts
   on (its audit seq, time and approver).

Because a rollback stamps the returning version with a newer sequence number, approvals older
than a rollback wait for a person: after the guard pulled a model, the worker does not push
the next-older approval on its own.  Every check reads the registry afresh, so a restarted (or
second) worker decides the same; two workers racing promote once, the other gets
IllegalTransition and reports it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from registry import IllegalTransition, ModelRegistry, Stamp, Stamps, State
from retrain.errors import ScheduleError
from retrain.metrics import RetrainMetrics

log = logging.getLogger(__name__)

Outcome = Literal["promoted", "waiting", "nothing", "lost"]


def worker_actor() -> str:
    """How the worker names itself in the audit log."""
    return f"retrain-worker@{socket.gethostname()}"


def in_window(window: str, now: float) -> bool:
    """True when ``now`` falls in a minute the cron expression ``window`` matches ("" = any)."""
    if not window:
        return True
    from croniter import croniter

    if not croniter.is_valid(window):
        raise ScheduleError(f"deployment window {window!r} is not a cron expression")
    return bool(croniter.match(window, datetime.fromtimestamp(now, tz=UTC)))


def window_opens(window: str, now: float) -> datetime:
    """The start of the next minute the window matches after ``now``."""
    from croniter import croniter

    return datetime.fromtimestamp(
        float(croniter(window, datetime.fromtimestamp(now, tz=UTC)).get_next(float)), tz=UTC
    )


@dataclass(frozen=True)
class Decision:
    """What one check did: ``version`` is the candidate (None when there is none)."""

    outcome: Outcome
    version: str | None
    message: str


class Rollout:
    """Promotes the newest eligible approval of ``name`` (see the module docstring)."""

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: RetrainMetrics,
        *,
        name: str,
        window: str = "",
        allow_forced: bool = False,
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.name = name
        self.window = window
        self.allow_forced = allow_forced
        self.actor = actor or worker_actor()
        self.clock = clock

    def candidates(self) -> tuple[list[tuple[Stamp, Stamps]], list[str]]:
        """Approved versions the worker may promote with their approval stamps (oldest
        approval first), and one line for each approved version it leaves alone and why."""
        production = self.registry.deployment(self.name).production
        since = 0
        if production is not None:
            stamp = self.registry.stamps(self.name, production).production
            since = stamp.seq if stamp is not None else 0
        eligible: list[tuple[Stamp, Stamps]] = []
        left: list[str] = []
        for status in self.registry.list(self.name):
            if status.state is not State.APPROVED:
                continue
            stamps = self.registry.stamps(self.name, status.version)
            approved = stamps.approved
            if approved is None:
                left.append(f"{status.version}: approved before roll-out stamps; promote by hand")
            elif approved.seq <= since:
                left.append(
                    f"{status.version}: approved at audit seq {approved.seq}, before production "
                    f"{production} (seq {since}); promote by hand"
                )
            elif stamps.rolled_back is not None:
                left.append(f"{status.version}: rolled back once; promote by hand")
            elif stamps.approved_forced and not self.allow_forced:
                left.append(
                    f"{status.version}: approval forced past the policy "
                    "(SHADOWLINE_ROLLOUT_FORCED is off); promote by hand"
                )
            else:
                eligible.append((approved, stamps))
        eligible.sort(key=lambda pair: pair[0].seq)
        return eligible, left

    def step(self) -> Decision:
        """Check once and promote when due.  Registry and Redis errors propagate."""
        eligible, left = self.candidates()
        self.metrics.rollout_waiting.set(0)
        if not eligible:
            detail = "; ".join(left) if left else "no approved version"
            return Decision(
                outcome="nothing", version=None, message=f"nothing to roll out: {detail}"
            )
        approved, chosen = eligible[-1]
        now = self.clock()
        if not in_window(self.window, now):
            self.metrics.rollout_waiting.set(1)
            opens = window_opens(self.window, now).isoformat()
            return Decision(
                outcome="waiting",
                version=chosen.version,
                message=f"{self.name}:{chosen.version} waits for the deployment window "
                f"{self.window!r} (opens {opens})",
            )
        where = f"inside the deployment window {self.window!r}" if self.window else "at once"
        reason = f"roll-out of the approval {approved.describe()}, {where}"
        try:
            self.registry.promote(self.name, chosen.version, actor=self.actor, reason=reason)
        except IllegalTransition as exc:  # another worker or a person moved it first
            return Decision(outcome="lost", version=chosen.version, message=str(exc))
        self.metrics.rollouts.inc()
        message = f"promoted {self.name}:{chosen.version}: {reason}"
        log.info("%s", message)
        return Decision(outcome="promoted", version=chosen.version, message=message)
