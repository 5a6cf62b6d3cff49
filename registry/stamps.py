"""Stamps: the audit entry behind a version's approval, production and rollback, on the version.

The retrain worker rolls out approved versions and the scorer's guard rolls back bad
promotions; both decide from facts the audit log holds, but reading and filtering a whole log
every few seconds would grow with it.  So a transition that matters to them also stamps the
version's hash with the audit entry it appended, in the same transaction (``seq``, ``at``,
``by``, ``action``, under a prefix):

============  ==============================  ==========================================
prefix        written by                      extra field
============  ==============================  ==========================================
approved      ``approve``                     ``approved_forced``: "1" when the approval
                                              overrode the approval policy
production    ``promote`` and ``rollback``    (``production_action`` says which)
              of the version that becomes
              production
rolled_back   ``rollback`` of the version     ``rolled_back_guard``: "1" when the
              it retires                      automatic guard did it
============  ==============================  ==========================================

Audit sequence numbers only grow within a name, so "approved after the current production
became production" is ``approved.seq > production.seq``, with no clock involved.  Stamps live
in Redis with the rest of the registry, so they survive any restart of the processes reading
them.  Versions approved before stamps existed carry none: the worker leaves them to a human.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from registry.states import State

APPROVED = "approved"
PRODUCTION = "production"
ROLLED_BACK = "rolled_back"
FORCED_FIELD = f"{APPROVED}_forced"
GUARD_FIELD = f"{ROLLED_BACK}_guard"


def stamp_fields(prefix: str, *, seq: int, at: str, actor: str, action: str) -> dict[str, str]:
    """The version-hash fields of one stamp (``<prefix>_seq`` ...)."""
    return {
        f"{prefix}_seq": str(seq),
        f"{prefix}_at": at,
        f"{prefix}_by": actor,
        f"{prefix}_action": action,
    }


@dataclass(frozen=True)
class Stamp:
    """One audit entry, as stamped on the version it concerns."""

    seq: int
    at: datetime
    actor: str
    action: str

    @classmethod
    def read(cls, prefix: str, raw: Mapping[str, str]) -> Stamp | None:
        """The stamp under ``prefix`` in a version hash, or None when there is none."""
        seq, at = raw.get(f"{prefix}_seq"), raw.get(f"{prefix}_at")
        if not seq or not at:
            return None
        return cls(
            seq=int(seq),
            at=datetime.fromisoformat(at),
            actor=raw.get(f"{prefix}_by", ""),
            action=raw.get(f"{prefix}_action", ""),
        )

    def describe(self) -> str:
        """``audit seq 12 at 2026-11-27T09:00:00+00:00 by ana`` (for audit reasons)."""
        return f"audit seq {self.seq} at {self.at.isoformat()} by {self.actor}"


@dataclass(frozen=True)
class Stamps:
    """What the registry recorded about one version's roll-out (see the module docstring)."""

    name: str
    version: str
    state: State
    approved: Stamp | None
    approved_forced: bool
    production: Stamp | None
    rolled_back: Stamp | None
    rolled_back_by_guard: bool

    @classmethod
    def from_hash(cls, name: str, version: str, raw: Mapping[str, str]) -> Stamps:
        """Read the stamps from a version's hash (as ``HGETALL`` returns it)."""
        return cls(
            name=name,
            version=version,
            state=State(raw["state"]),
            approved=Stamp.read(APPROVED, raw),
            approved_forced=raw.get(FORCED_FIELD) == "1",
            production=Stamp.read(PRODUCTION, raw),
            rolled_back=Stamp.read(ROLLED_BACK, raw),
            rolled_back_by_guard=raw.get(GUARD_FIELD) == "1",
        )
