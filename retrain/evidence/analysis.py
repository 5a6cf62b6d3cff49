"""Running the analysis of one shadow version: read, pair, compare, write the report, record.

``shadowline analyze`` and the retrain worker's scheduled analysis both call :func:`analyse`
and :func:`record`, so a scheduled analysis is exactly what a person would have run.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from registry.connections import kafka_options
from registry.evidence import ShadowEvidence, Source
from registry.lifecycle import ModelRegistry
from retrain.errors import AnalysisError
from retrain.evidence.archive_read import pair_archive, read_tail
from retrain.evidence.comparison import Comparison, Options, compare
from retrain.evidence.frame import Paired, Sampling
from retrain.evidence.settings import EvidenceSettings
from retrain.evidence.topics import BadRecord

ACTOR = "shadow-analysis"


def _seed(name: str, version: str, production: str | None) -> int:
    """A stable seed per comparison: re-running the analysis gives the same intervals."""
    digest = hashlib.sha256(f"{name}:{version}:{production}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _control_of(registry: ModelRegistry, name: str, production: str | None) -> str | None:
    """A shadow whose manifest says it is production's control, if one is shadowed."""
    if production is None:
        return None
    for version in registry.deployment(name).shadows:
        if registry.manifest(name, version).lineage.control_of == production:
            return version
    return None


def analyse(
    settings: EvidenceSettings,
    registry: ModelRegistry,
    name: str,
    version: str,
    *,
    production: str | None,
    control: str | None,
    as_of: float,
    seed: int | None,
    timeout_s: float,
    source: Source = "live",
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Comparison, list[str]]:
    """Analyse ``version`` of model ``name`` against production (default: the one in
    production now), as of ``as_of``, from the Parquet archive and the topics' records not
    archived yet (with no archive: the topics whole).

    ``source="live"`` judges the version's shadow records, beside its control (default: a
    shadowed control of production, if any); ``source="replay"`` judges the scores
    ``shadowline replay`` wrote for it on archived traffic.  ``since``/``until`` bound the
    score records read.  Returns the comparison and the records that did not decode (each
    named).  This is look ``n + 1`` for the version, ``n`` being the decisive evidences of
    this source already recorded against this production.
    """
    manifest = registry.manifest(name, version)  # ModelNotFound names it before Kafka is read
    production = production or registry.deployment(name).production
    if source == "live":
        control = control or _control_of(registry, name, production)
    if control == version or source == "replay":
        control = None
    bad: list[BadRecord] = []
    archive = Path(settings.archive_dir)
    tail_scores, tail_labels = read_tail(
        settings.kafka_servers,
        archive,
        settings.scores_topic,
        settings.labels_topic,
        timeout_s=timeout_s,
        on_bad=bad.append,
        options=kafka_options(settings),
    )
    # A label dated after the analysis time is not known yet at that time.
    known = [label for label in tail_labels if label.label_time <= as_of]
    later = [label.transaction_id for label in tail_labels if label.label_time > as_of]

    def pair(which: str, replay: bool) -> tuple[Paired, Sampling, str | None]:
        return pair_archive(
            archive,
            which,
            production_version=production,
            model_name=name,
            amount_field=manifest.amount_field,
            since=since,
            until=until,
            tail_scores=() if replay else tail_scores,
            tail_labels=known,
            replay=replay,
        )

    rows, sampling, production = pair(version, source == "replay")
    sampling.labels_after.extend(later)
    looks = registry.evidence_looks(name, version, source, production) + 1
    options = Options(
        as_of=as_of,
        quantile=settings.evidence_maturity_quantile,
        window_s=settings.evidence_maturity_window_s,
        default_window_s=settings.evidence_default_window_s,
        min_delays=settings.evidence_min_delays,
        replicates=settings.evidence_replicates,
        seed=_seed(name, version, production) if seed is None else seed,
        alpha=registry.policy.alpha,
        looks=looks,
        source=source,
    )
    control_rows = None if control is None else (control, pair(control, False)[0])
    result = compare(
        rows,
        sampling,
        version=version,
        production_version=production,
        options=options,
        model_name=name,
        control=control_rows,
    )
    return result, [str(b) for b in bad]


def write_report(
    settings: EvidenceSettings, result: Comparison, as_of: float, violations: list[str]
) -> Comparison:
    """Write the evidence JSON and the self-contained HTML report in a folder of their own
    (``<evidence_dir>/<name>/<version>/<time>/``); returns ``result`` with the evidence
    pointing at the report."""
    from retrain.evidence.report import render  # matplotlib: only when a report is written

    stamp = datetime.fromtimestamp(as_of, UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(settings.evidence_dir) / (result.model_name or "model") / result.version / stamp
    try:
        folder.mkdir(parents=True, exist_ok=True)
        html = (folder / "report.html").resolve()
        result = replace(result, evidence=result.evidence.model_copy(update={"report": str(html)}))
        (folder / "evidence.json").write_text(
            result.evidence.model_dump_json(indent=2), encoding="utf-8"
        )
        html.write_text(render(result, as_of, violations), encoding="utf-8")
    except OSError as exc:
        raise AnalysisError(
            f"cannot write the evidence report in {folder}: {exc.strerror}"
        ) from exc
    return result


def record(
    settings: EvidenceSettings,
    registry: ModelRegistry,
    result: Comparison,
    as_of: float,
    *,
    actor: str = ACTOR,
) -> tuple[Comparison, list[str], str]:
    """Write the report and store the evidence on the version.  Returns the comparison (its
    evidence pointing at the report), the policy's violations, and the stored evidence's
    reference."""
    name = result.model_name or settings.model_name
    violations = verdict(registry, name, result.version, result.evidence)
    result = write_report(settings, result, as_of, violations)
    registry.record_evidence(name, result.version, result.evidence, actor=actor)
    stored = registry.evidence(name, result.version, result.evidence.source)
    return result, violations, stored.ref if stored else ""


def verdict(
    registry: ModelRegistry, name: str, version: str, evidence: ShadowEvidence
) -> list[str]:
    """What the approval policy would say of ``version`` if ``evidence`` were recorded: it is
    judged with the version's stored evidence of the other source (live or replay)."""
    live = evidence if evidence.source == "live" else registry.evidence(name, version, "live")
    replay = evidence if evidence.source == "replay" else registry.evidence(name, version, "replay")
    return registry.policy.violations(live, registry.deployment(name).production, replay=replay)
