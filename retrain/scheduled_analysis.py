"""The retrain worker's scheduled shadow analysis: every shadow, on a cron, recorded.

On each slot of ``analysis_schedule`` (daily by default) the worker analyses every version of
its model in shadow exactly as ``shadowline analyze VERSION --record`` does -- it calls
:func:`retrain.evidence.analysis.analyse`, then :func:`~retrain.evidence.analysis.record` --
so the evidence, the looks it spends and its HTML report are the same as a person's.  Controls
(versions whose lineage names ``control_of``) are not analysed on their own: the analysis of
each challenger finds production's control among the shadows and reports it as the noise
floor.  The analysis time is the worker's clock when the slot runs.

Failures never stop the worker: each version is analysed on its own; a failure is logged with
the version and counted in ``shadowline_evidence_analysis_failures_total{reason}`` (reason:
``analysis`` -- Kafka unreachable, a topic missing or too slow, the report not writable;
``registry``; ``redis``; ``unexpected``, logged with its traceback), and the next version, the
retrain schedule and the next slot go on.  A slot counts as handled even when an analysis
failed, as a failed retrain run does.

Metrics per shadow version with live evidence, refreshed from the registry on every worker
tick (so evidence recorded by hand counts, and a restarted worker shows its ages at once):
``shadowline_evidence_age_seconds``, ``shadowline_evidence_difference{estimate=point|low|high}``
and ``shadowline_evidence_matured_frauds``.  A version that leaves shadow leaves the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from registry.errors import RegistryError
from registry.evidence import ShadowEvidence
from registry.lifecycle import ModelRegistry
from retrain.constants import ANALYSIS_KEY
from retrain.errors import AnalysisError
from retrain.metrics import ESTIMATES, RetrainMetrics
from retrain.settings import RetrainSettings
from retrain.worker import due_slot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysed:
    """What the scheduled analysis did with one shadow version."""

    version: str
    recorded: bool
    detail: str  # the evidence reference and summary, or the failure's reason and message


def failure_reason(exc: Exception) -> str:
    """The ``reason`` label of a failed analysis (a small fixed set: see the module)."""
    if isinstance(exc, AnalysisError):
        return "analysis"
    if isinstance(exc, RegistryError):
        return "registry"
    if isinstance(exc, redis.RedisError):
        return "redis"
    return "unexpected"


class ScheduledAnalysis:
    """Analyses the shadows of ``settings.model_name`` when an ``analysis_schedule`` slot is
    due (the last slot handled is kept in Redis, shared by worker replicas)."""

    def __init__(
        self,
        settings: RetrainSettings,
        registry: ModelRegistry,
        metrics: RetrainMetrics,
        *,
        client: redis.Redis,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.client = client
        self.clock = clock
        self.schedule = settings.analysis_schedule
        self._shown: set[str] = set()  # versions with series in the metrics

    def due(self) -> float | None:
        """The analysis slot to run now, or None when the latest was handled already."""
        return due_slot(self.client, ANALYSIS_KEY, self.schedule, self.clock())

    def run_due(self) -> list[Analysed]:
        """Analyse every shadow if a slot is due (empty list otherwise), then refresh the
        metrics.  Raises only when Redis cannot say whether a slot is due."""
        slot = self.due()
        if slot is None:
            self.refresh()
            return []
        try:
            return self.analyse_all()
        finally:
            self.client.set(ANALYSIS_KEY, repr(slot))
            self.refresh()

    def _challengers(self) -> list[str]:
        """The shadow versions to analyse: every one but the controls."""
        name = self.settings.model_name
        return [
            version
            for version in sorted(self.registry.deployment(name).shadows)
            if self.registry.manifest(name, version).lineage.control_of is None
        ]

    def analyse_all(self) -> list[Analysed]:
        """Analyse and record every challenger in shadow now; never raises."""
        try:
            versions = self._challengers()
        except Exception as exc:  # e.g. Redis down: nothing to analyse this slot
            return [self._failed("*", exc)]
        return [self.analyse(version) for version in versions]

    def analyse(self, version: str) -> Analysed:
        """Analyse ``version`` against production (and its control) and record the evidence,
        as ``shadowline analyze VERSION --record`` does; a failure is logged and counted."""
        from retrain.evidence.analysis import analyse, record

        name, as_of = self.settings.model_name, self.clock()
        try:
            result, bad = analyse(
                self.settings,
                self.registry,
                name,
                version,
                production=None,
                control=None,
                as_of=as_of,
                seed=None,
                timeout_s=self.settings.analysis_timeout_s,
            )
            result, violations, ref = record(self.settings, self.registry, result, as_of)
        except Exception as exc:  # one version's failure must not stop the others
            return self._failed(version, exc)
        if bad:
            log.warning("analysis of %s:%s skipped %d bad records", name, version, len(bad))
        policy = (
            f"{len(violations)} rule(s) broken, first {violations[0]}"
            if violations
            else "approval allowed"
        )
        detail = f"{ref}: {result.evidence.summary()}; policy: {policy}"
        log.info("analysis of %s:%s recorded %s", name, version, detail)
        return Analysed(version=version, recorded=True, detail=detail)

    def _failed(self, version: str, exc: Exception) -> Analysed:
        reason = failure_reason(exc)
        self.metrics.analysis_failures.labels(reason=reason).inc()
        message = f"{type(exc).__name__}: {exc}" if reason == "unexpected" else str(exc)
        ref = f"{self.settings.model_name}:{version}"
        log.warning(
            "analysis of %s failed (%s): %s", ref, reason, message, exc_info=reason == "unexpected"
        )
        return Analysed(version=version, recorded=False, detail=f"{reason}: {message}")

    def refresh(self) -> None:
        """Set the evidence metrics from the registry; never raises (a failure is logged and
        the metrics keep their last values)."""
        try:
            name = self.settings.model_name
            found = {v: self.registry.evidence(name, v) for v in self._challengers()}
        except Exception as exc:
            log.warning("evidence metrics not refreshed: %s: %s", type(exc).__name__, exc)
            return
        for version in self._shown - set(found):
            self._forget(version)
        for version, evidence in found.items():
            self._show(version, evidence)

    def _forget(self, version: str) -> None:
        for gauge in (self.metrics.evidence_age, self.metrics.evidence_matured_frauds):
            gauge.remove(version)
        for estimate in ESTIMATES:
            self.metrics.evidence_difference.remove(version, estimate)
        self._shown.discard(version)

    def _show(self, version: str, evidence: ShadowEvidence | None) -> None:
        if evidence is None or evidence.recorded_at is None:
            if version in self._shown:
                self._forget(version)
            return
        recorded = evidence.recorded_at.timestamp()
        self.metrics.evidence_age.labels(version=version).set_function(
            lambda: self.clock() - recorded
        )
        self.metrics.evidence_matured_frauds.labels(version=version).set(evidence.matured_frauds)
        interval = evidence.difference_ci
        values = {
            "point": evidence.difference,
            "low": None if interval is None else interval.low,
            "high": None if interval is None else interval.high,
        }
        for estimate, value in values.items():
            if value is None:  # e.g. labels not matured yet: no value, rather than a stale one
                self.metrics.evidence_difference.remove(version, estimate)
            else:
                self.metrics.evidence_difference.labels(version=version, estimate=estimate).set(
                    value
                )
        self._shown.add(version)
