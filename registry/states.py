"""The lifecycle's states, the moves allowed between them, and what readers see.

Allowed moves (anything else raises :class:`IllegalTransition` naming the state and the moves):

============  ===========================================  =====================================
from          action -> to                                 notes
============  ===========================================  =====================================
registered    shadow -> shadow, approve -> approved,
              reject -> rejected, retire -> retired
shadow        approve -> approved, reject -> rejected,     approve leaves the shadow set
              retire -> retired, unshadow -> registered
approved      promote -> production, reject -> rejected,
              retire -> retired
production    (none by version)                            replaced by ``promote`` of another
                                                           version or by ``rollback``
retired       (none by version)                            ``rollback`` may bring it back
rejected      (none)                                       terminal
============  ===========================================  =====================================

``promote`` moves the old production version to retired and pushes it on the name's history;
``rollback`` retires the current production version and returns the newest history entry to
production, in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    REGISTERED = "registered"
    SHADOW = "shadow"
    APPROVED = "approved"
    PRODUCTION = "production"
    RETIRED = "retired"
    REJECTED = "rejected"


MOVES: Mapping[State, Mapping[str, State]] = {
    State.REGISTERED: {
        "approve": State.APPROVED,
        "reject": State.REJECTED,
        "retire": State.RETIRED,
        "shadow": State.SHADOW,
    },
    State.SHADOW: {
        "approve": State.APPROVED,
        "reject": State.REJECTED,
        "retire": State.RETIRED,
        "unshadow": State.REGISTERED,
    },
    State.APPROVED: {
        "promote": State.PRODUCTION,
        "reject": State.REJECTED,
        "retire": State.RETIRED,
    },
    State.PRODUCTION: {},
    State.RETIRED: {},
    State.REJECTED: {},
}
"""For each state, the version-level actions allowed from it and the state each leads to."""


def allowed_moves(state: State) -> tuple[str, ...]:
    """The actions allowed from ``state``, alphabetically."""
    return tuple(sorted(MOVES[state]))


@dataclass(frozen=True)
class Deployment:
    """One consistent read of a model name's live set.

    ``revision`` only grows: it is bumped by every transition of this name, so a scorer that
    missed an event notices a newer revision when it polls.
    """

    name: str
    revision: int
    production: str | None
    previous_production: str | None
    shadows: Mapping[str, float]


@dataclass(frozen=True)
class ModelStatus:
    """One version as ``list`` reports it."""

    name: str
    version: str
    state: State
    sha256: str
    created_at: datetime | None
    registered_at: datetime
    shadow_rate: float | None
