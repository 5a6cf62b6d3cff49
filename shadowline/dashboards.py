"""The Shadowline Grafana dashboard, built in code.

Design: the panels are data (:data:`ROWS`: a title, a unit and PromQL queries each) and one
function turns each into a Grafana panel with the foundation SDK, so adding a panel is adding a
few lines here and running ``make dashboards``.  The generated JSON is committed under
``deploy/grafana/dashboards/`` (Grafana's file provisioning loads it); tests check that it is
what this module produces, that every ``shadowline_*`` metric a query names exists in the code,
and that every query runs on a real Prometheus scraping a real scorer.

Queries use ``$__rate_interval`` for ``rate()``/``increase()`` windows, as Grafana expects, so
a window always spans several scrapes whatever the zoom.  Every panel and query names the
provisioned Prometheus datasource by uid.

    python -m shadowline.dashboards --out deploy/grafana/dashboards
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

# The uid deploy/grafana/provisioning/datasources/prometheus.yml gives the datasource.
DATASOURCE_UID = "prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
DAY = 86400.0
RATE = "[$__rate_interval]"
# /metrics is Prometheus's own scrape: not traffic an operator wants to see in request panels.
HTTP = 'route!="/metrics"'
# Scrape jobs of deploy/prometheus/prometheus.yml.
SCORER_JOB = "shadowline-scorer"
RETRAIN_JOB = "shadowline-retrain"
REQUESTS = "shadowline_request_duration_seconds_count"


@dataclass(frozen=True)
class Query:
    """One PromQL expression and the legend of its series (Grafana ``{{label}}`` syntax)."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """What one panel shows; ``thresholds`` are (value, colour) steps above green."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 12
    thresholds: tuple[tuple[float, str], ...] = ()
    no_value: str | None = None


def _quantiles(metric: str, labels: tuple[str, ...], title: str, description: str) -> Panel:
    """p50 and p99 of a latency histogram, one series per set of ``labels``."""
    by = ", ".join(labels)
    legend = " ".join(f"{{{{{label}}}}}" for label in labels)
    return Panel(
        title,
        description,
        "s",
        tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{RATE})))",
                f"p{round(q * 100)} {legend}",
            )
            for q in (0.5, 0.99)
        ),
    )


REQUESTS_ROW = (
    Panel(
        "Request rate by route and status",
        "HTTP requests per second answered by the scorers, by route template and status.",
        "reqps",
        (
            Query(
                f"sum by (route, status) (rate({REQUESTS}{{{HTTP}}}{RATE}))", "{{route}} {{status}}"
            ),
        ),
    ),
    _quantiles(
        "shadowline_request_duration_seconds",
        ("route", "status"),
        "Request latency p50 / p99",
        "Time in the server per request (parsing, scoring, answer), by route and status.",
    ),
    Panel(
        "Client and server errors",
        "Share of requests answered 4xx (a client's mistake: bad fields, too large) and 5xx "
        "(ours: no production model loaded, registry unreachable during an admin call).",
        "percentunit",
        tuple(
            Query(
                f'sum(rate({REQUESTS}{{{HTTP}, status=~"{c}.."}}{RATE}))'
                f" / sum(rate({REQUESTS}{{{HTTP}}}{RATE}))",
                f"{c}xx",
            )
            for c in (4, 5)
        ),
        width=24,
    ),
)

MODELS_ROW = (
    Panel(
        "Score quantiles by model",
        "Median and 90th percentile of the fraud score per role and version: a challenger "
        "whose distribution moves away from production's shows here before any label arrives.",
        "none",
        tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, role, version)"
                f" (rate(shadowline_score_bucket{RATE})))",
                f"p{round(q * 100)} {{{{role}}}} {{{{version}}}}",
            )
            for q in (0.5, 0.9)
        ),
    ),
    Panel(
        "Mean score by model",
        "Average fraud score per role and version.",
        "none",
        (
            Query(
                f"sum by (role, version) (rate(shadowline_score_sum{RATE}))"
                f" / sum by (role, version) (rate(shadowline_score_count{RATE}))",
                "{{role}} {{version}}",
            ),
        ),
    ),
    Panel(
        "Decisions by model",
        "Decisions per second taken by production and those the shadows would have taken.",
        "ops",
        (
            Query(
                f"sum by (role, version, decision) (rate(shadowline_decisions_total{RATE}))",
                "{{role}} {{version}} {{decision}}",
            ),
        ),
    ),
    _quantiles(
        "shadowline_inference_duration_seconds",
        ("role",),
        "Inference latency p50 / p99",
        "Time of one model call; a shadow call scores a whole batch.",
    ),
)

SHADOW_ROW = (
    Panel(
        "Shadow queue depth",
        "Scored transactions waiting in each scorer for the sidecar (at most "
        "SHADOWLINE_SHADOW_QUEUE_SIZE).",
        "none",
        (Query("sum by (instance) (shadowline_shadow_queue_depth)", "{{instance}}"),),
        width=8,
    ),
    Panel(
        "Shed transactions",
        "Transactions dropped because the sidecar could not keep up while Kafka was fine: "
        "their records are not sent.",
        "ops",
        (Query(f"sum(rate(shadowline_shadow_shed_total{RATE}))", "shed"),),
        width=8,
    ),
    Panel(
        "Shadow errors by kind",
        "Shadow results recorded as errors: error, timeout, busy, input, shed, load.",
        "ops",
        (
            Query(
                f"sum by (version, kind) (rate(shadowline_shadow_errors_total{RATE}))",
                "{{version}} {{kind}}",
            ),
        ),
        width=8,
    ),
)

KAFKA_ROW = (
    Panel(
        "Kafka deliveries",
        "Score records built, acknowledged by the broker, failed, and dropped because "
        "Kafka held the sidecar back.",
        "ops",
        (
            Query(f"sum(rate(shadowline_records_total{RATE}))", "built"),
            Query(f"sum(rate(shadowline_kafka_sent_total{RATE}))", "sent"),
            Query(f"sum(rate(shadowline_kafka_failed_total{RATE}))", "failed"),
            Query(f"sum(rate(shadowline_kafka_dropped_total{RATE}))", "dropped"),
        ),
    ),
    Panel(
        "Bytes held for Kafka",
        "Record bytes queued in the scorer plus in flight in the producer (at most "
        "SHADOWLINE_KAFKA_BUFFER_BYTES); it grows while the broker is slow or down.",
        "bytes",
        (Query("sum by (instance) (shadowline_kafka_buffered_bytes)", "{{instance}}"),),
    ),
    Panel(
        "Records failed by kind",
        "Records sent without their inputs (unencodable_inputs), not sent (lost), or held "
        "by a sidecar that ended (sidecar_gone).",
        "ops",
        (Query(f"sum by (kind) (rate(shadowline_records_failed_total{RATE}))", "{{kind}}"),),
    ),
    Panel(
        "Sidecar and producer restarts",
        "Sidecar processes started again after one ended, and Kafka producers recreated.",
        "none",
        (
            Query(f"sum(increase(shadowline_sidecar_restarts_total{RATE}))", "sidecar"),
            Query(f"sum(increase(shadowline_kafka_producer_restarts_total{RATE}))", "producer"),
        ),
    ),
)

LOADED_ROW = (
    Panel(
        "Loaded models",
        "Each version every scorer holds, by role; the value is when it was loaded.",
        "dateTimeFromNow",
        (Query("shadowline_model_info", "{{role}} {{version}} {{instance}}"),),
        kind="stat",
        width=6,
    ),
    Panel(
        "Scorers up",
        "Scorer replicas Prometheus scraped successfully (job shadowline-scorer).",
        "none",
        (Query(f'sum(up{{job="{SCORER_JOB}"}})', "up"),),
        kind="stat",
        width=4,
        thresholds=((1.0, "green"),),
    ),
    Panel(
        "Production model age",
        "Time since the production model was created; the retrain schedule is weekly.",
        "s",
        (Query("max(shadowline_model_age_seconds)", "age"),),
        kind="stat",
        width=4,
        thresholds=((8 * DAY, "yellow"), (15 * DAY, "red")),
    ),
    Panel(
        "Registry reachable",
        "1 while every scorer's last registry (Redis) read succeeded; scoring goes on "
        "without it, model changes do not arrive.",
        "none",
        (Query("min(shadowline_registry_reachable)", "reachable"),),
        kind="stat",
        width=4,
        thresholds=((1.0, "green"),),
    ),
    Panel(
        "Model swaps and failed loads",
        "Model sets swapped in, and versions that failed to load (the previous model kept "
        "serving), by role.",
        "none",
        (
            Query(f"sum by (role) (increase(shadowline_model_swaps_total{RATE}))", "{{role}}"),
            Query(
                f"sum by (role) (increase(shadowline_model_swap_failures_total{RATE}))",
                "failed {{role}}",
            ),
        ),
        width=6,
    ),
)

RETRAIN_ROW = (
    Panel(
        "Retrain runs in the last 7 days",
        "Runs by outcome; a failed run also fires ShadowlineRetrainRunFailed.",
        "none",
        (Query("sum by (outcome) (increase(shadowline_retrain_runs_total[7d]))", "{{outcome}}"),),
        kind="stat",
        width=6,
    ),
    Panel(
        "Worker up",
        "1 while Prometheus scrapes the retrain worker (job shadowline-retrain).",
        "none",
        (Query(f'max(up{{job="{RETRAIN_JOB}"}})', "up"),),
        kind="stat",
        width=4,
        thresholds=((1.0, "green"),),
    ),
    Panel(
        "Since the last successful run",
        "Time since a run last ended with a candidate (in shadow, or rejected by a gate).",
        "s",
        (Query("time() - max(shadowline_retrain_last_success_timestamp_seconds > 0)", "since"),),
        kind="stat",
        width=4,
        thresholds=((8 * DAY, "yellow"), (15 * DAY, "red")),
        no_value="never",
    ),
    Panel(
        "Run in progress",
        "1 while the worker is executing a run.",
        "none",
        (Query("max(shadowline_retrain_run_in_progress)", "running"),),
        kind="stat",
        width=4,
    ),
    Panel(
        "Mean step duration, last 7 days",
        "Seconds per pipeline step, averaged over the runs of the last 7 days.",
        "s",
        (
            Query(
                "sum by (step) (increase(shadowline_retrain_step_duration_seconds_sum[7d]))"
                " / sum by (step)"
                " (increase(shadowline_retrain_step_duration_seconds_count[7d]))",
                "{{step}}",
            ),
        ),
        kind="stat",
        width=6,
    ),
)

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Requests", REQUESTS_ROW),
    ("Production and shadow models", MODELS_ROW),
    ("Shadow pipeline", SHADOW_ROW),
    ("Score records and Kafka", KAFKA_ROW),
    ("Loaded models and registry", LOADED_ROW),
    ("Retrain worker", RETRAIN_ROW),
)


def _thresholds(spec: Panel) -> dashboard.ThresholdsConfig:
    """Colour steps; without any, one neutral step (Grafana's default turns 80 red)."""
    if not spec.thresholds:
        steps = [model.Threshold(value=None, color="blue")]
    else:
        # Below the first step: green, unless reaching that step is the good news (reachable).
        base = "red" if spec.thresholds[0][1] == "green" else "green"
        steps = [model.Threshold(value=None, color=base)]
        steps += [model.Threshold(value=value, color=color) for value, color in spec.thresholds]
    return dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def _visual(spec: Panel) -> timeseries.Panel | stat.Panel:
    """A time series (legend below, every series in the tooltip) or a last-value stat."""
    if spec.kind == "timeseries":
        return (
            timeseries.Panel()
            .legend(
                common.VizLegendOptions()
                .display_mode(common_model.LegendDisplayMode.LIST)
                .placement(common_model.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(
                common.VizTooltipOptions()
                .mode(common_model.TooltipDisplayMode.MULTI)
                .sort(common_model.SortOrder.DESCENDING)
            )
        )
    return (
        stat.Panel()
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common_model.BigValueGraphMode.NONE)
        .color_mode(common_model.BigValueColorMode.VALUE)
        .text_mode(common_model.BigValueTextMode.AUTO)
    )


def _panel(spec: Panel, panel_id: int) -> Builder[model.Panel]:
    """The SDK panel for ``spec``: its queries get refIds A, B, ... (Grafana needs them)."""
    built = (
        _visual(spec)
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .span(spec.width)
        .height(8)
        .thresholds(_thresholds(spec))
    )
    if spec.no_value is not None:
        built = built.no_value(spec.no_value)
    for ref_id, query in zip(string.ascii_uppercase, spec.queries, strict=False):
        target = (
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(ref_id)
            .datasource(DATASOURCE)
        )
        built = built.with_target(target.instant() if spec.kind == "stat" else target.range())
    return built


def build() -> dict[str, model.Dashboard]:
    """Every dashboard, by the file name it is written to."""
    board = (
        dashboard.Dashboard("Shadowline")
        .uid("shadowline")
        .description("Fraud scorer, shadow models, score records and the retrain worker.")
        .tags(["shadowline"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
    )
    panel_id = 0
    for title, panels in ROWS:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for spec in panels:
            panel_id += 1
            board = board.with_panel(_panel(spec, panel_id))
    return {"shadowline.json": board.build()}


def render(board: model.Dashboard) -> str:
    """The dashboard as the JSON text Grafana loads (stable key order, newline at the end)."""
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write(out: Path) -> list[Path]:
    """Write every dashboard into ``out`` (created if needed); returns the files written.

    Raises ``NotADirectoryError`` naming ``out`` when it exists and is not a folder.
    """
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in build().items():
        path = out / name
        path.write_text(render(board))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shadowline.dashboards --out DIR``: write the dashboards; 1 on a bad ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m shadowline.dashboards", description="Write the Grafana dashboards."
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON files")
    args = parser.parse_args(argv)
    try:
        written = write(args.out)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover - the module's command line
    sys.exit(main())
