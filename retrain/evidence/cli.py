"""``shadowline analyze VERSION`` and ``shadowline labels send`` (mounted by shadowline.cli).

``analyze`` reads the labels topic and the scores topic from the beginning, pairs the shadow
version (and a control shadow, when one shadows production) with the production version now in
the registry, and prints the evidence: label-free signals, label maturity, every labeled metric
with 95% intervals for both models and their difference, the control's noise floor, and what
the approval policy says.  ``--record`` stores it as the version's evidence (actor
``shadow-analysis``), which ``approve`` then judges, and writes the JSON and a self-contained
HTML report under ``SHADOWLINE_EVIDENCE_DIR``.  ``labels send`` checks a label file line by line
and produces it to the labels topic.

Errors print one line ``error: ...`` on stderr and exit 1 (2 for bad settings).  Module-level
imports stay light: every ``shadowline`` command imports this module.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli_kit import guard
from registry.config import load_settings
from retrain.evidence.settings import EvidenceSettings

if TYPE_CHECKING:
    from retrain.evidence.comparison import Comparison

MAX_NAMED = 10  # refused labels named in a warning; the count says how many there were
labels_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds allowed to read each topic.")
]


def _errors() -> AbstractContextManager[None]:
    """Turn every expected failure into ``error: ...`` on stderr and a non-zero exit."""
    from retrain.errors import AnalysisError

    return guard(AnalysisError)


def _utc(moment: datetime | None) -> datetime | None:
    """A time from the command line: without a zone it is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _named(ids: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(ids[:MAX_NAMED])
    return shown + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


def analyze_command(
    version: Annotated[str, typer.Argument(help="The shadow version to judge, e.g. v3.")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Model name (default SHADOWLINE_MODEL_NAME).")
    ] = None,
    production: Annotated[
        str | None,
        typer.Option(help="Compare against this production version (default: the current one)."),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(
            help="The control shadow (default: a shadow whose manifest names production as "
            "the version it controls, if any)."
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record", help="Store the evidence on the version and write the JSON and report."
        ),
    ] = False,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Judge the scores 'shadowline replay' wrote for it on archived traffic "
            "(recorded as replay evidence) instead of its live shadow records.",
        ),
    ] = False,
    since: Annotated[
        datetime | None, typer.Option(help="Only transactions scored from this time (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="... up to (not including) this time (UTC).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Bootstrap seed (default: derived from the versions).")
    ] = None,
    timeout_s: Timeout = 120.0,
    as_json: JsonFlag = False,
) -> None:
    """Compare a shadow version with production: label-free signals, label maturity, and
    labeled metrics with intervals on matured transactions."""
    from retrain.evidence.text import as_text

    with _errors():
        from registry.connections import model_registry
        from retrain.evidence.analysis import ACTOR, analyse, verdict
        from retrain.evidence.analysis import record as record_evidence

        settings = load_settings(EvidenceSettings)
        registry = model_registry(settings)
        try:
            model = name or settings.model_name
            as_of = time.time()
            result, bad = analyse(
                settings,
                registry,
                model,
                version,
                production=production,
                control=control,
                as_of=as_of,
                seed=seed,
                timeout_s=timeout_s,
                source="replay" if replay else "live",
                since=_utc(since),
                until=_utc(until),
            )
            report = recorded = None
            if record:
                result, violations, recorded = record_evidence(settings, registry, result, as_of)
                report = result.evidence.report
            else:
                violations = verdict(registry, model, version, result.evidence)
        finally:
            registry.close()
    _warn(result, bad)
    if as_json:
        typer.echo(_as_json(result, violations, bad, recorded, report))
        return
    typer.echo(as_text(result, violations))
    if recorded:
        typer.echo(f"recorded {recorded} for {result.ref} (actor {ACTOR}); report {report}")


def _warn(result: Comparison, bad: list[str]) -> None:
    for line in bad:
        typer.secho(f"warning: skipped {line}", fg=typer.colors.YELLOW, err=True)
    refused = {
        "dated after the analysis time (in the future)": result.labels_after,
        "dated before their transaction was scored": result.sampling.labels_before_score,
    }
    for why, ids in refused.items():
        if ids:
            typer.secho(
                f"warning: refused {len(ids)} label(s) {why}: {_named(list(ids))}",
                fg=typer.colors.YELLOW,
                err=True,
            )


def _as_json(
    result: Comparison,
    violations: list[str],
    bad: list[str],
    recorded: str | None,
    report: str | None,
) -> str:
    data: dict[str, Any] = json.loads(result.evidence.model_dump_json())
    data.update(
        {
            "name": result.model_name,
            "version": result.version,
            "policy_violations": violations,
            "bad_records": bad,
            "refused_labels": {
                "after_analysis_time": list(result.labels_after),
                "before_score": list(result.sampling.labels_before_score),
            },
            "recorded": recorded,
            "report": report,
        }
    )
    return json.dumps(data, sort_keys=True)


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
        from registry.connections import kafka_options
        from retrain.evidence.labels import read_labels
        from retrain.evidence.topics import send_labels

        # The analysis's settings: SHADOWLINE_EVIDENCE_CLOCK_SKEW_S bounds how far ahead of
        # this clock a label time may lie.
        settings = load_settings(EvidenceSettings)
        labels = read_labels(file, source=source, clock_skew_s=settings.evidence_clock_skew_s)
        sent = send_labels(
            settings.kafka_servers, settings.labels_topic, labels, options=kafka_options(settings)
        )
    frauds = sum(label.is_fraud for label in labels)
    if as_json:
        typer.echo(json.dumps({"sent": sent, "frauds": frauds, "topic": settings.labels_topic}))
    else:
        typer.echo(f"sent {sent} labels ({frauds} fraud) to {settings.labels_topic}")
