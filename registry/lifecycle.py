"""The model lifecycle in Redis: :class:`ModelRegistry`, the API scorer and retrain use.

States and allowed moves are in :mod:`registry.states` (re-exported here); every write is one
atomic transaction (:mod:`registry.transactions`) that changes the state, bumps the name's
revision, appends hash-chained audit entries (:mod:`registry.audit`) and publishes on
:data:`~registry.constants.EVENTS_CHANNEL`, all or nothing.
"""

from __future__ import annotations

import builtins
import math
from datetime import datetime
from typing import Any, cast

import redis
from redis.client import Pipeline

from registry.artifacts import ArtifactStore, sha256_hex
from registry.audit import AuditEntry, AuditVerification, verify_entries
from registry.constants import (
    HISTORY_LIMIT,
    NAMES_KEY,
    audit_key,
    deploy_key,
    history_key,
    shadows_key,
    version_key,
    versions_key,
)
from registry.errors import (
    AlreadyRegistered,
    IllegalTransition,
    InvalidRequest,
    ModelNotFound,
    PolicyViolation,
    ValidationFailed,
)
from registry.evidence import ShadowEvidence
from registry.integrity import verify_for_move
from registry.manifest import Manifest
from registry.policy import ApprovalPolicy
from registry.stamps import APPROVED, FORCED_FIELD, GUARD_FIELD, PRODUCTION, ROLLED_BACK, Stamps
from registry.states import MOVES, Deployment, ModelStatus, State, allowed_moves
from registry.transactions import Change, Plan, Snapshot, mark, set_state, transact
from registry.types import Clock, utc_now
from registry.validation import prepare_model

__all__ = ["MOVES", "Deployment", "ModelRegistry", "ModelStatus", "State", "allowed_moves"]

_RawEntries = list[tuple[str, dict[str, str]]]  # (stream id, fields), as XRANGE returns


def _str(value: Any) -> str | None:
    return cast(str | None, value)


def _require(value: str, what: str) -> str:
    if not value or not value.strip():
        raise InvalidRequest(f"{what} must not be empty")
    return value


class ModelRegistry:
    """The registry's Python API: register, move through the lifecycle, read, audit.

    ``redis`` must decode responses (``registry.redis_client`` does).  Every method is safe to
    call from many threads and processes at once.  Errors derive from ``RegistryError``.
    """

    def __init__(
        self,
        redis: redis.Redis,
        store: ArtifactStore,
        *,
        policy: ApprovalPolicy = ApprovalPolicy(),  # noqa: B008 - frozen, so safe to share
        clock: Clock = utc_now,
    ) -> None:
        if not redis.get_connection_kwargs().get("decode_responses"):
            raise InvalidRequest("the Redis client must be created with decode_responses=True")
        self._redis = redis
        self._store = store
        self.policy = policy
        self._clock = clock

    def close(self) -> None:
        """Close the Redis client's connections (the registry is unusable afterwards)."""
        self._redis.close()

    @staticmethod
    def _state_of(pipe: Pipeline, name: str, version: str) -> State:
        value = _str(pipe.hget(version_key(name, version), "state"))
        if value is None:
            raise ModelNotFound(name, version)
        return State(value)

    def _check_move(self, pipe: Pipeline, name: str, version: str, action: str) -> State:
        """The current state of the version; IllegalTransition unless ``action`` is allowed."""
        state = self._state_of(pipe, name, version)
        if action not in MOVES[state]:
            raise IllegalTransition.from_state(
                action, f"{name}:{version}", state.value, allowed_moves(state)
            )
        return state

    def _simple_move(
        self,
        name: str,
        version: str,
        action: str,
        *,
        actor: str,
        reason: str,
        detail: str = "",
    ) -> None:
        """A version-level move that only changes the version's state (and leaves the shadow
        set when it was in it)."""
        actor = _require(actor, "actor")

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
            state = self._check_move(pipe, name, version, action)
            target = MOVES[state][action]
            result: Plan[None] = Plan(None)
            result.writes += set_state(name, version, target, leaving=state)
            result.changes.append(
                Change(
                    version=version,
                    action=action,
                    from_state=state,
                    to_state=target,
                    reason=reason,
                    evidence="",
                    detail=detail,
                )
            )
            return result

        transact(self._redis, self._clock, name, actor, plan)

    def _verify(self, name: str, version: str, action: str, *, actor: str, reason: str) -> None:
        """Re-verify the stored artifact before a move toward serving; ArtifactRefused (and an
        audited ``refuse`` entry) when it fails (see :mod:`registry.integrity`)."""
        verify_for_move(
            self._redis,
            self._store,
            self._clock,
            record=self._hash(name, version),
            name=name,
            version=version,
            action=action,
            actor=actor,
            reason=reason,
        )

    # ----------------------------------------------------------------- registration

    def register(
        self, artifact: bytes, manifest: Manifest, *, actor: str, reason: str = ""
    ) -> Manifest:
        """Validate ``artifact`` against ``manifest``, store it, and record the version as
        registered.  Returns the stored manifest (``sha256`` and ``created_at`` filled in).

        A model whose inputs are not the packed convention gets an input adapter composed in
        front (:func:`registry.validation.prepare_model`): the stored artifact, and
        ``sha256``, are then the composed graph's; the bytes as given are stored too, under
        ``lineage.source_sha256``.  A given ``sha256`` may name either.

        Nothing is written unless validation passes (:class:`ValidationFailed` names each
        problem).  Registering the same name:version with the same artifact again returns the
        stored manifest unchanged (so a resumed pipeline step is harmless); with a different
        artifact it raises :class:`AlreadyRegistered`.
        """
        actor = _require(actor, "actor")
        source_sha = sha256_hex(artifact)
        existing = self._existing(manifest.name, manifest.version, source_sha)
        if existing is not None:
            return existing
        prepared = prepare_model(artifact, manifest)
        sha = sha256_hex(prepared.artifact)
        if manifest.sha256 is not None and manifest.sha256 not in (source_sha, sha):
            raise ValidationFailed(
                manifest.ref,
                [
                    f"the manifest's sha256 {manifest.sha256} is not the artifact's sha256 "
                    f"{source_sha}"
                ],
            )
        lineage = manifest.lineage
        if prepared.composed:
            lineage = lineage.model_copy(
                update={"source_sha256": source_sha, "source_layout": prepared.layout}
            )
        stored = manifest.model_copy(
            update={
                "sha256": sha,
                "created_at": manifest.created_at or self._clock(),
                "lineage": lineage,
            }
        )
        self._store.put(prepared.artifact)
        if prepared.composed:
            self._store.put(artifact)  # the model as given, for audits and re-exports
        name, version = manifest.name, manifest.version

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[Manifest]:
            # Re-checked under WATCH: a concurrent register of the same version may have won.
            raced = _str(pipe.hget(version_key(name, version), "manifest"))
            if raced is not None:
                other = Manifest.model_validate_json(raced)
                if other.sha256 != sha:
                    raise AlreadyRegistered(manifest.ref, str(other.sha256), sha)
                return Plan(other)
            record = {
                "state": State.REGISTERED.value,
                "sha256": sha,
                "manifest": stored.model_dump_json(),
                "registered_at": self._clock().isoformat(),
                "created_at": stored.created_at.isoformat() if stored.created_at else "",
            }
            result = Plan(stored)
            result.writes += [
                lambda p: p.hset(version_key(name, version), mapping=cast(Any, record)),
                lambda p: p.zadd(versions_key(name), {version: snap.revision + 1}),
                lambda p: p.sadd(NAMES_KEY, name),
            ]
            result.changes.append(
                Change(
                    version=version,
                    action="register",
                    from_state=None,
                    to_state=State.REGISTERED,
                    reason=reason,
                    evidence="",
                    detail=f"sha256 {sha}",
                )
            )
            return result

        return transact(self._redis, self._clock, name, actor, plan)

    def _existing(self, name: str, version: str, sha: str) -> Manifest | None:
        """The stored manifest when ``name:version`` exists with these bytes (as stored, or as
        given before an adapter was composed); AlreadyRegistered when with other bytes."""
        raw = _str(self._redis.hget(version_key(name, version), "manifest"))
        if raw is None:
            return None
        existing = Manifest.model_validate_json(raw)
        if sha not in (existing.sha256, existing.lineage.source_sha256):
            raise AlreadyRegistered(f"{name}:{version}", str(existing.sha256), sha)
        return existing

    # ----------------------------------------------------------------- transitions

    def shadow(self, name: str, version: str, *, rate: float, actor: str, reason: str = "") -> None:
        """registered -> shadow: the scorer starts scoring a ``rate`` share of requests with it
        (0 < rate <= 1), off the request path.  The stored artifact is verified first
        (:class:`ArtifactRefused`, audited, when it fails)."""
        if isinstance(rate, bool) or not math.isfinite(rate) or not 0.0 < rate <= 1.0:
            raise InvalidRequest(f"shadow rate must be in (0, 1]; got {rate}")
        actor = _require(actor, "actor")
        self._verify(name, version, "shadow", actor=actor, reason=reason)

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
            state = self._check_move(pipe, name, version, "shadow")
            result: Plan[None] = Plan(None)
            result.writes += set_state(name, version, State.SHADOW, leaving=state)
            result.writes += [
                lambda p: p.hset(version_key(name, version), "rate", repr(float(rate))),
                lambda p: p.hset(shadows_key(name), version, repr(float(rate))),
            ]
            result.changes.append(
                Change(
                    version=version,
                    action="shadow",
                    from_state=state,
                    to_state=State.SHADOW,
                    reason=reason,
                    evidence="",
                    detail=f"rate {rate:g}",
                )
            )
            return result

        transact(self._redis, self._clock, name, actor, plan)

    def unshadow(self, name: str, version: str, *, actor: str, reason: str = "") -> None:
        """shadow -> registered: stop scoring with it in shadow."""
        self._simple_move(name, version, "unshadow", actor=actor, reason=reason)

    def retire(self, name: str, version: str, *, actor: str, reason: str = "") -> None:
        """registered/shadow/approved -> retired.  A production version is replaced by
        ``promote`` or ``rollback`` instead, so a name never loses its production model."""
        self._simple_move(name, version, "retire", actor=actor, reason=reason)

    def reject(self, name: str, version: str, *, actor: str, reason: str) -> None:
        """registered/shadow/approved -> rejected (terminal); needs a written reason."""
        reason = _require(reason, "the reason for a rejection")
        self._simple_move(name, version, "reject", actor=actor, reason=reason)

    def approve(
        self, name: str, version: str, *, actor: str, reason: str, force: bool = False
    ) -> None:
        """registered/shadow -> approved, a human decision with a written reason.

        The recorded shadow evidence must satisfy the approval policy; otherwise
        :class:`PolicyViolation` names each broken rule and its numbers.  ``force=True``
        approves anyway and records the overridden rules in the audit entry.  The stored
        artifact is verified first (:class:`ArtifactRefused`, audited, when it fails; force
        does not override it).
        """
        reason = _require(reason, "the reason for an approval")
        actor = _require(actor, "actor")
        self._verify(name, version, "approve", actor=actor, reason=reason)

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
            state = self._check_move(pipe, name, version, "approve")
            live, replay = (
                _parse_evidence(_str(pipe.hget(version_key(name, version), _evidence_field(s))))
                for s in ("live", "replay")
            )
            broken = self.policy.violations(
                live,
                snap.production,
                replay=replay,
                control_of=self._control_of(pipe, name, version),
            )
            if broken and not force:
                raise PolicyViolation(f"{name}:{version}", broken)
            detail = "forced past policy: " + "; ".join(broken) if broken else "policy satisfied"
            ref = " ".join(e.ref for e in (live, replay) if e is not None)
            result: Plan[None] = Plan(None)
            result.writes += set_state(name, version, State.APPROVED, leaving=state)
            result.writes.append(mark(name, version, FORCED_FIELD, bool(broken)))
            result.changes.append(
                Change(
                    version=version,
                    action="approve",
                    from_state=state,
                    to_state=State.APPROVED,
                    reason=reason,
                    evidence=ref,
                    detail=detail,
                    stamp=APPROVED,
                )
            )
            return result

        transact(self._redis, self._clock, name, actor, plan)

    def promote(self, name: str, version: str, *, actor: str, reason: str = "") -> None:
        """approved -> production.  The previous production version becomes retired and the
        newest entry of the rollback history, in the same atomic step.  The stored artifact is
        verified first (:class:`ArtifactRefused`, audited, when it fails)."""
        actor = _require(actor, "actor")
        self._verify(name, version, "promote", actor=actor, reason=reason)

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
            state = self._check_move(pipe, name, version, "promote")
            old = snap.production
            result: Plan[None] = Plan(None)
            if old is not None:
                result.writes += set_state(name, old, State.RETIRED, leaving=State.PRODUCTION)
                result.writes += [
                    lambda p: p.lpush(history_key(name), old),
                    lambda p: p.ltrim(history_key(name), 0, HISTORY_LIMIT - 1),
                ]
                result.changes.append(
                    Change(
                        version=old,
                        action="promote",
                        from_state=State.PRODUCTION,
                        to_state=State.RETIRED,
                        reason=reason,
                        evidence="",
                        detail=f"replaced by {version}",
                    )
                )
            result.writes += set_state(name, version, State.PRODUCTION, leaving=state)
            result.writes.append(lambda p: p.hset(deploy_key(name), "production", version))
            detail = f"replaces {old}" if old else "first production version"
            result.changes.append(
                Change(
                    version=version,
                    action="promote",
                    from_state=state,
                    to_state=State.PRODUCTION,
                    reason=reason,
                    evidence="",
                    detail=detail,
                    stamp=PRODUCTION,
                )
            )
            return result

        transact(self._redis, self._clock, name, actor, plan)

    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str = "",
        expected: str | None = None,
        guard: bool = False,
    ) -> str:
        """Retire the production version and return the previous one to production, in one
        atomic step.  Returns the version now in production.  The target's artifact is not
        re-verified: scorers keep the previous production loaded for exactly this call, and
        an emergency rollback must not wait on the artifact store.

        ``expected``: roll back only if it is still the production version (IllegalTransition
        otherwise), so several replicas judging the same promotion roll it back once.
        ``guard``: the automatic rollback guard acts; the retired version is marked
        (``registry.stamps``) and the retrain worker never promotes it again.
        """
        actor = _require(actor, "actor")

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[str]:
            current = snap.production
            if snap.revision == 0:
                raise ModelNotFound(name)
            if current is None:
                raise IllegalTransition(
                    f"cannot roll back model {name}: it has no production version"
                )
            if expected is not None and current != expected:
                raise IllegalTransition(
                    f"cannot roll back model {name} from {expected}: production is {current}"
                )
            target = _str(pipe.lindex(history_key(name), 0))
            if target is None:
                raise IllegalTransition(
                    f"cannot roll back model {name}: production version {current} "
                    "has no previous production version"
                )
            result: Plan[str] = Plan(target)
            result.writes += set_state(name, current, State.RETIRED, leaving=State.PRODUCTION)
            result.writes += set_state(name, target, State.PRODUCTION, leaving=State.RETIRED)
            result.writes += [
                lambda p: p.lpop(history_key(name)),
                lambda p: p.hset(deploy_key(name), "production", target),
                mark(name, current, GUARD_FIELD, guard),
            ]
            result.changes += [
                Change(
                    version=current,
                    action="rollback",
                    from_state=State.PRODUCTION,
                    to_state=State.RETIRED,
                    reason=reason,
                    evidence="",
                    detail=f"rolled back to {target}",
                    stamp=ROLLED_BACK,
                ),
                Change(
                    version=target,
                    action="rollback",
                    from_state=State.RETIRED,
                    to_state=State.PRODUCTION,
                    reason=reason,
                    evidence="",
                    detail=f"replaces {current}",
                    stamp=PRODUCTION,
                ),
            ]
            return result

        return transact(self._redis, self._clock, name, actor, plan)

    # ----------------------------------------------------------------- evidence and notes

    def record_evidence(
        self,
        name: str,
        version: str,
        evidence: ShadowEvidence,
        *,
        actor: str = "shadow-analysis",
    ) -> None:
        """Store shadow analysis results for ``version`` (replacing earlier ones of the same
        ``evidence.source``, live or replay); ``approve`` judges them.  A decisive evidence
        (enough matured frauds to support an approval) counts as one more look
        (:meth:`evidence_looks`).  Audited (action ``evidence``); not a transition, so no
        event."""
        stored = evidence
        if evidence.recorded_at is None:
            stored = evidence.model_copy(update={"recorded_at": self._clock()})
        field = _evidence_field(stored.source)
        looks = _looks_field(stored.source, stored.production_version)
        decisive = self.policy.decisive(stored)

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
            state = self._state_of(pipe, name, version)
            payload = stored.model_dump_json()
            result: Plan[None] = Plan(None, bump=False)
            result.writes.append(lambda p: p.hset(version_key(name, version), field, payload))
            if decisive:
                result.writes.append(lambda p: p.hincrby(version_key(name, version), looks, 1))
            result.changes.append(
                Change(
                    version=version,
                    action="evidence",
                    from_state=state,
                    to_state=state,
                    reason="",
                    evidence=stored.ref,
                    detail=stored.summary(),
                )
            )
            return result

        transact(self._redis, self._clock, name, _require(actor, "actor"), plan)

    def evidence(self, name: str, version: str, source: str = "live") -> ShadowEvidence | None:
        """The shadow evidence of ``source`` (``live`` or ``replay``) recorded for
        ``version``, if any."""
        raw = self._hash(name, version).get(_evidence_field(source))
        return ShadowEvidence.model_validate_json(raw) if raw else None

    def evidence_looks(self, name: str, version: str, source: str, production: str | None) -> int:
        """How many decisive evidences of ``source`` against ``production`` were recorded
        for ``version``: the looks already spent (the next analysis is look ``n + 1``)."""
        raw = self._hash(name, version).get(_looks_field(source, production))
        return int(raw) if raw else 0

    def approval_violations(self, name: str, version: str) -> builtins.list[str]:
        """What approving ``version`` without force would be refused for now (empty:
        allowed): the policy on its live and replay evidence against today's production."""
        fields = self._hash(name, version)
        production = self.deployment(name).production
        return self.policy.violations(
            _parse_evidence(fields.get(_evidence_field("live"))),
            production,
            replay=_parse_evidence(fields.get(_evidence_field("replay"))),
            control_of=Manifest.model_validate_json(fields["manifest"]).lineage.control_of,
        )

    @staticmethod
    def _control_of(pipe: Pipeline, name: str, version: str) -> str | None:
        """The version's ``lineage.control_of`` (a control is never approved unforced)."""
        raw = _str(pipe.hget(version_key(name, version), "manifest"))
        return None if raw is None else Manifest.model_validate_json(raw).lineage.control_of

    def note(self, name: str, version: str, message: str, *, actor: str) -> None:
        """Append a free-text audit entry (e.g. a scorer replica failed to load the version).
        Not a transition: no revision bump, no event."""
        message = _require(message, "the note")
        actor = _require(actor, "actor")

        def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
            state = self._state_of(pipe, name, version)
            result: Plan[None] = Plan(None, bump=False)
            result.changes.append(
                Change(
                    version=version, action="note", from_state=state, to_state=state, reason=message
                )
            )
            return result

        transact(self._redis, self._clock, name, actor, plan)

    # ----------------------------------------------------------------- reads

    def _hash(self, name: str, version: str) -> dict[str, str]:
        raw = cast(dict[str, str], self._redis.hgetall(version_key(name, version)))
        if not raw:
            raise ModelNotFound(name, version)
        return raw

    def manifest(self, name: str, version: str) -> Manifest:
        """The stored manifest; ModelNotFound if the version is not registered."""
        return Manifest.model_validate_json(self._hash(name, version)["manifest"])

    def artifact(self, name: str, version: str) -> bytes:
        """The model bytes, verified against the manifest's sha256 (ChecksumMismatch if not)."""
        return self._store.get(self._hash(name, version)["sha256"])

    def state(self, name: str, version: str) -> State:
        return State(self._hash(name, version)["state"])

    def stamps(self, name: str, version: str) -> Stamps:
        """The audit entries of the version's approval, production and rollback, as stamped on
        it (:mod:`registry.stamps`); ModelNotFound if the version is not registered."""
        return Stamps.from_hash(name, version, self._hash(name, version))

    def deployment(self, name: str) -> Deployment:
        """One consistent (MULTI) read of the name's production, rollback target, shadows and
        revision.  A name with nothing registered reads as revision 0 with nothing live."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(deploy_key(name))
            pipe.hgetall(shadows_key(name))
            pipe.lindex(history_key(name), 0)
            deploy, shadows, previous = pipe.execute()
        return Deployment(
            name=name,
            revision=int(deploy.get("revision", 0)),
            production=deploy.get("production") or None,
            previous_production=previous,
            shadows={version: float(rate) for version, rate in sorted(shadows.items())},
        )

    def names(self) -> list[str]:
        """Every model name with at least one registered version, sorted."""
        return sorted(cast(set[str], self._redis.smembers(NAMES_KEY)))

    def list(self, name: str | None = None) -> list[ModelStatus]:
        """Every version (of ``name``, or of every name), by name then registration order."""
        names = [name] if name is not None else self.names()
        statuses: list[ModelStatus] = []
        for model in names:
            versions = cast(list[str], self._redis.zrange(versions_key(model), 0, -1))
            with self._redis.pipeline(transaction=False) as pipe:
                for version in versions:
                    pipe.hmget(
                        version_key(model, version),
                        ["state", "sha256", "created_at", "registered_at", "rate"],
                    )
                rows = pipe.execute()
            for version, (state, sha, created, registered, rate) in zip(
                versions, rows, strict=True
            ):
                statuses.append(
                    ModelStatus(
                        name=model,
                        version=version,
                        state=State(state),
                        sha256=sha,
                        created_at=datetime.fromisoformat(created) if created else None,
                        registered_at=datetime.fromisoformat(registered),
                        shadow_rate=float(rate) if rate else None,
                    )
                )
        return statuses

    # ----------------------------------------------------------------- audit

    def _raw_audit(self, name: str) -> _RawEntries:
        entries = cast(_RawEntries, self._redis.xrange(audit_key(name)))
        if not entries and not self._redis.sismember(NAMES_KEY, name):
            raise ModelNotFound(name)
        return entries

    def audit(self, name: str) -> builtins.list[AuditEntry]:
        """The name's audit log, oldest first."""
        return [AuditEntry.from_stream(i, f) for i, f in self._raw_audit(name)]

    def verify_audit(self, name: str) -> AuditVerification:
        """Check the audit chain of ``name``: every hash, every link, and the recorded head."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(audit_key(name))
            pipe.hmget(deploy_key(name), ["audit_head", "audit_seq"])
            pipe.sismember(NAMES_KEY, name)
            entries, (head, count), known = pipe.execute()
        if not entries and not known:
            raise ModelNotFound(name)
        return verify_entries(name, entries, head, int(count or 0))


def _evidence_field(source: str) -> str:
    """The version-hash field holding the evidence of ``source`` (live keeps its old name)."""
    if source not in ("live", "replay"):
        raise InvalidRequest(f"evidence source must be live or replay; got {source!r}")
    return "evidence" if source == "live" else "evidence_replay"


def _looks_field(source: str, production: str | None) -> str:
    return f"looks:{source}:{production or '-'}"


def _parse_evidence(raw: str | None) -> ShadowEvidence | None:
    return ShadowEvidence.model_validate_json(raw) if raw else None
