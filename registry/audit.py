"""The audit log: an append-only, hash-chained Redis stream per model name.

Each entry records who did what, when, from which state to which, why, and with which
evidence.  Each entry also stores the sha256 of the previous entry (``prev``) and its own hash
over all its fields, and the name's deployment hash keeps the newest hash and the count
(``audit_head``, ``audit_seq``).  So :func:`verify_entries` detects an entry edited in place
(its hash no longer matches), deleted in the middle (the next ``prev`` link and the sequence
break) or at the end (the head no longer matches).  This makes tampering *evident*, not
impossible: someone who can rewrite every entry and the head can forge a consistent log.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from registry.constants import GENESIS_HASH

# C0 and C1 controls (newline, carriage return, escape sequences), and the Unicode line
# separators and direction marks/overrides that reorder what a terminal or a page shows.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\n``, ``\\x1b``, ``\\u202e``), so a
    reason or an actor cannot forge another line of an audit listing or reorder it."""
    return _CONTROLS.sub(lambda m: _NAMED.get(m[0]) or _escape(m[0]), text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# The fields every entry carries, in the order they are hashed (``hash`` itself excluded).
ENTRY_FIELDS = (
    "seq", "at", "actor", "action", "version", "from", "to",
    "reason", "evidence", "revision", "detail", "prev",
)  # fmt: skip


def entry_hash(fields: Mapping[str, str]) -> str:
    """sha256 of the canonical JSON of an entry's fields (all but ``hash``)."""
    canonical = json.dumps(
        {key: fields.get(key, "") for key in ENTRY_FIELDS}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One entry of a model name's audit log.  ``from_state`` is None for a registration."""

    id: str  # the Redis stream id
    seq: int
    at: datetime
    actor: str
    action: str
    version: str
    from_state: str | None
    to_state: str
    reason: str
    evidence: str
    revision: int
    detail: str
    prev_hash: str
    hash: str

    @classmethod
    def from_stream(cls, entry_id: str, fields: Mapping[str, str]) -> AuditEntry:
        return cls(
            id=entry_id,
            seq=int(fields.get("seq", "0") or 0),
            at=datetime.fromisoformat(fields["at"]),
            actor=fields.get("actor", ""),
            action=fields.get("action", ""),
            version=fields.get("version", ""),
            from_state=fields.get("from") or None,
            to_state=fields.get("to", ""),
            reason=fields.get("reason", ""),
            evidence=fields.get("evidence", ""),
            revision=int(fields.get("revision", "0") or 0),
            detail=fields.get("detail", ""),
            prev_hash=fields.get("prev", ""),
            hash=fields.get("hash", ""),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "version": self.version,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "evidence": self.evidence,
            "revision": self.revision,
            "detail": self.detail,
            "prev": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditVerification:
    """The result of checking one name's audit chain; ``ok`` iff ``problems`` is empty."""

    name: str
    entries: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_entries(
    name: str,
    entries: Sequence[tuple[str, Mapping[str, str]]],
    head: str | None,
    count: int,
) -> AuditVerification:
    """Check the chain of raw stream ``entries`` (id, fields) against the recorded ``head``
    hash and ``count`` of entries appended."""
    problems: list[str] = []
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for entry_id, fields in entries:
        seq = fields.get("seq", "")
        label = f"entry {seq or '?'} (id {entry_id})"
        if not seq.isdigit():
            problems.append(f"{label}: it has no sequence number")
        elif int(seq) != expected_seq:
            problems.append(f"{label}: {_missing(expected_seq, int(seq) - 1)}")
        if fields.get("prev") != expected_prev:
            problems.append(f"{label}: its previous-entry hash does not match the entry before it")
        if fields.get("hash") != entry_hash(fields):
            problems.append(f"{label}: its content does not match its hash (edited)")
        expected_prev = fields.get("hash", "")
        expected_seq = int(seq) + 1 if seq.isdigit() else expected_seq + 1
    if expected_seq - 1 < count:
        problems.append(f"the log ends before the newest entry: {_missing(expected_seq, count)}")
    elif (head or GENESIS_HASH) != expected_prev:
        problems.append("the newest entry is not the recorded head of the log (rewritten)")
    return AuditVerification(name=name, entries=len(entries), problems=tuple(problems))


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"entry {first} is missing"
    return f"entries {first} to {last} are missing" if first < last else "entries out of order"
