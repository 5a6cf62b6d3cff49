"""``shadowline analyze VERSION`` and ``shadowline labels send`` (mounted by shadowline.cli).

``analyze`` reads the labels topic and the scores topic from the beginning, compares the shadow
version with the production version now in the registry on the same labeled transactions,
prints the comparison and what the approval policy would say of it, and with ``--record``
stores it as the version's shadow evidence (actor ``shadow-analysis``), which ``approve`` then
judges.  ``labels send`` checks a label file line by line and produces it to the labels topic.

Errors print one line ``error: ...`` on stderr and exit 1 (2 for bad settings).  Module-level
imports stay light: every ``shadowline`` command imports this module.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli_kit import fail, guard
from registry.config import SharedSettings, load_settings

if TYPE_CHECKING:
    from registry.lifecycle import ModelRegistry
    from retrain.evidence.comparison import ShadowComparison

ACTOR = "shadow-analysis"
labels_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds allowed to read each topic.")
]


def _errors() -> AbstractContextManager[None]:
    """Turn every expected failure into ``error: ...`` on stderr and a non-zero exit."""
    from retrain.errors import AnalysisError

    return guard(AnalysisError)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _difference(result: ShadowComparison) -> str:
    if result.challenger_value is None or result.production_value is None:
        return ""
    return f" (difference {result.challenger_value - result.production_value:+.4f})"


def _text(result: ShadowComparison, violations: list[str] | None, bad: list[str]) -> str:
    d = result.details
    window = (
        f"{result.window_start:%Y-%m-%d %H:%M:%S} .. {result.window_end:%Y-%m-%d %H:%M:%S} UTC"
        if result.window_start and result.window_end
        else "no compared records"
    )
    lines = [
        f"{result.ref} vs production {result.production_version or '-'}, {window}",
        f"  compared transactions  {result.shadow_records} "
        f"(labeled {result.labeled_records}, fraud {result.labeled_frauds})",
        f"  fraud caught at production's block rate ({_percent(d.get('production_block_rate'))}):"
        f" challenger {_number(result.challenger_value)}, "
        f"production {_number(result.production_value)}{_difference(result)}",
    ]
    for what, key in (
        ("ROC-AUC", "roc_auc"),
        ("recall at own block threshold", "own_block_recall"),
        ("precision at own block threshold", "own_block_precision"),
        ("false declines at the same volume", "at_block_rate_false_decline_rate"),
    ):
        challenger, production = d.get(f"challenger_{key}"), d.get(f"production_{key}")
        if challenger is not None or production is not None:
            lines.append(
                f"  {what}: challenger {_number(challenger)}, production {_number(production)}"
            )
    lines += [
        f"  left out: {d['shadow_errors']:.0f} shadow errors, "
        f"{d['other_production_records']:.0f} answered by another production version, "
        f"{d['duplicate_score_records']:.0f} repeated score records, {len(bad)} bad records",
        f"  labels: {d['labels_read']:.0f} read, {d['labels_superseded']:.0f} superseded by a "
        f"later one, {d['labels_without_score']:.0f} for transactions never scored",
    ]
    if result.why_undefined:
        lines.append(f"  no evidence: {result.why_undefined}")
    elif violations is not None:
        verdict = "; ".join(violations) if violations else "satisfied"
        lines.append(f"  approval policy: {verdict}")
    return "\n".join(lines)


def _as_json(
    result: ShadowComparison, violations: list[str] | None, bad: list[str], recorded: str | None
) -> str:
    data: dict[str, Any] = {
        "name": result.model_name,
        "version": result.version,
        "production_version": result.production_version,
        "shadow_records": result.shadow_records,
        "labeled_records": result.labeled_records,
        "labeled_frauds": result.labeled_frauds,
        "metric": "fraud_caught_at_block_rate",
        "challenger_value": result.challenger_value,
        "production_value": result.production_value,
        "window_start": result.window_start.isoformat() if result.window_start else None,
        "window_end": result.window_end.isoformat() if result.window_end else None,
        "details": result.details,
        "no_evidence": result.why_undefined or None,
        "policy_violations": violations,
        "bad_records": bad,
        "recorded": recorded,
    }
    return json.dumps(data, sort_keys=True)


def _compare(
    settings: SharedSettings,
    registry: ModelRegistry,
    name: str,
    version: str,
    production: str | None,
    timeout_s: float,
) -> tuple[ShadowComparison, list[str]]:
    from registry.records import decode_label, decode_score
    from retrain.evidence.comparison import analyze
    from retrain.evidence.topics import BadRecord, read_topic

    registry.state(name, version)  # ModelNotFound names the version before Kafka is read
    production = production or registry.deployment(name).production
    bad: list[BadRecord] = []
    servers = settings.kafka_servers
    labels = list(
        read_topic(
            servers, settings.labels_topic, decode_label, timeout_s=timeout_s, on_bad=bad.append
        )
    )
    scores = read_topic(
        servers, settings.scores_topic, decode_score, timeout_s=timeout_s, on_bad=bad.append
    )
    result = analyze(scores, labels, version, production_version=production, model_name=name)
    return result, [str(b) for b in bad]


def analyze_command(
    version: Annotated[str, typer.Argument(help="The shadow version to judge, e.g. v3.")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Model name (default SHADOWLINE_MODEL_NAME).")
    ] = None,
    production: Annotated[
        str | None,
        typer.Option(help="Compare against this production version (default: the current one)."),
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Store the result as the version's shadow evidence.")
    ] = False,
    timeout_s: Timeout = 120.0,
    as_json: JsonFlag = False,
) -> None:
    """Compare a shadow version with production on scored, labeled transactions."""
    from retrain.errors import NoEvidence

    with _errors():
        from registry.connections import model_registry

        settings = load_settings(SharedSettings)
        registry = model_registry(settings)
        try:
            model = name or settings.model_name
            result, bad = _compare(settings, registry, model, version, production, timeout_s)
            violations = None
            if not result.why_undefined:
                current = registry.deployment(model).production
                violations = registry.policy.violations(result.evidence(), current)
            recorded = None
            if record and not result.why_undefined:
                registry.record_evidence(model, version, result.evidence(), actor=ACTOR)
                # The registry stamps the time it recorded, which is part of the reference.
                stored = registry.evidence(model, version)
                recorded = stored.ref if stored else None
        finally:
            registry.close()
    for line in bad:
        typer.secho(f"warning: skipped {line}", fg=typer.colors.YELLOW, err=True)
    out = _as_json(result, violations, bad, recorded) if as_json else _text(result, violations, bad)
    typer.echo(out)
    if record and result.why_undefined:
        raise fail(f"{NoEvidence(result.ref, result.why_undefined)}; nothing was recorded")
    if recorded and not as_json:
        typer.echo(f"recorded {recorded} for {result.ref} (actor {ACTOR})")


@labels_app.command("send")
def send(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="JSON Lines, or CSV with a header (.csv).")
    ],
    source: Annotated[
        str, typer.Option(help="The source of labels whose line names none.")
    ] = "manual",
    as_json: JsonFlag = False,
) -> None:
    """Check every line of a label file, then produce the labels to the labels topic."""
    with _errors():
        from retrain.evidence.labels import read_labels
        from retrain.evidence.topics import send_labels

        settings = load_settings(SharedSettings)
        labels = read_labels(file, source=source)
        sent = send_labels(settings.kafka_servers, settings.labels_topic, labels)
    frauds = sum(label.is_fraud for label in labels)
    if as_json:
        typer.echo(json.dumps({"sent": sent, "frauds": frauds, "topic": settings.labels_topic}))
    else:
        typer.echo(f"sent {sent} labels ({frauds} fraud) to {settings.labels_topic}")
