"""What the Shadowline dashboard shows: every panel as data, PromQL over the real metric names.

Design: a panel is a title, a description, a unit and its queries (:class:`Panel`); the rows
are tuples of panels (:data:`ROWS`).  ``shadowline.dashboards`` turns them into Grafana JSON,
so adding a panel is adding a few lines here and running ``make dashboards``.  Tests check
that every ``shadowline_*`` name used here is one the scorer or the retrain worker exports.

Rates and increases use ``$__rate_interval``, as Grafana expects, so a window always spans
several scrapes whatever the zoom; the retrain worker runs weekly, so its panels look at 7 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        title=title,
        description=description,
        unit="s",
        queries=tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{RATE})))",
                f"p{round(q * 100)} {legend}",
            )
            for q in (0.5, 0.99)
        ),
    )


REQUESTS_ROW = (
    Panel(
        title="Request rate by route and status",
        description="HTTP requests per second answered by the scorers, by route template and "
        "status.",
        unit="reqps",
        queries=(
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
        title="Client and server errors",
        description="Share of requests answered 4xx (a client's mistake: bad fields, too large) "
        "and 5xx (ours: no production model loaded, registry unreachable during an admin call).",
        unit="percentunit",
        queries=tuple(
            Query(
                # 0 (not an empty series) when none; no value at all when there is no traffic
                f'(sum(rate({REQUESTS}{{{HTTP}, status=~"{c}.."}}{RATE})) or vector(0))'
                f" / (sum(rate({REQUESTS}{{{HTTP}}}{RATE})) > 0)",
                f"{c}xx",
            )
            for c in (4, 5)
        ),
        width=24,
    ),
)

MODELS_ROW = (
    Panel(
        title="Score quantiles by model",
        description="Median and 90th percentile of the fraud score per role and version: a "
        "challenger whose distribution moves away from production's shows here before any label "
        "arrives.",
        unit="none",
        queries=tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, role, version)"
                f" (rate(shadowline_score_bucket{RATE})))",
                f"p{round(q * 100)} {{{{role}}}} {{{{version}}}}",
            )
            for q in (0.5, 0.9)
        ),
    ),
    Panel(
        title="Mean score by model",
        description="Average fraud score per role and version.",
        unit="none",
        queries=(
            Query(
                f"sum by (role, version) (rate(shadowline_score_sum{RATE}))"
                f" / sum by (role, version) (rate(shadowline_score_count{RATE}))",
                "{{role}} {{version}}",
            ),
        ),
    ),
    Panel(
        title="Decisions by model",
        description="Decisions per second taken by production and those the shadows would have "
        "taken.",
        unit="ops",
        queries=(
            Query(
                f"sum by (role, version, decision) (rate(shadowline_decisions_total{RATE}))",
                "{{role}} {{version}} {{decision}}",
            ),
        ),
    ),
    Panel(
        title="Explored would-be blocks",
        description="Would-be blocks answered review instead (SHADOWLINE_EXPLORATION_SHARE), "
        "against all of production's blocks: the share should match the setting "
        "(docs/evidence.md).",
        unit="ops",
        queries=(
            Query(
                f"sum by (version) (rate(shadowline_explored_total{RATE}))", "explored {{version}}"
            ),
            Query(
                'sum by (version) (rate(shadowline_decisions_total{role="production", '
                f'decision="block"}}{RATE}))',
                "blocks {{version}}",
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
        title="Shadow queue depth",
        description="Scored transactions waiting in each scorer for the sidecar (at most "
        "SHADOWLINE_SHADOW_QUEUE_SIZE).",
        unit="none",
        queries=(Query("sum by (instance) (shadowline_shadow_queue_depth)", "{{instance}}"),),
        width=8,
    ),
    Panel(
        title="Shed transactions",
        description="Transactions dropped because the sidecar could not keep up while Kafka was "
        "fine: their records are not sent.",
        unit="ops",
        queries=(Query(f"sum(rate(shadowline_shadow_shed_total{RATE}))", "shed"),),
        width=8,
    ),
    Panel(
        title="Shadow errors by kind",
        description="Shadow results recorded as errors: error, timeout, busy, input, shed, load.",
        unit="ops",
        queries=(
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
        title="Kafka deliveries",
        description="Score records built, acknowledged by the broker (straight or from the spool), "
        "failed (neither sent nor spooled), and dropped because Kafka held the sidecar back "
        "with the spool full.",
        unit="ops",
        queries=(
            Query(f"sum(rate(shadowline_records_total{RATE}))", "built"),
            Query(f"sum(rate(shadowline_kafka_sent_total{RATE}))", "sent"),
            Query(f"sum(rate(shadowline_kafka_failed_total{RATE}))", "failed"),
            Query(f"sum(rate(shadowline_kafka_dropped_total{RATE}))", "dropped"),
        ),
    ),
    Panel(
        title="Bytes held for Kafka",
        description="Record bytes queued in the scorer plus in flight in the producer (at most "
        "SHADOWLINE_KAFKA_BUFFER_BYTES); it grows while the broker is slow or down.",
        unit="bytes",
        queries=(Query("sum by (instance) (shadowline_kafka_buffered_bytes)", "{{instance}}"),),
    ),
    Panel(
        title="Spooled records",
        description="Score records waiting in the local spool for the broker "
        "(SHADOWLINE_SPOOL_MAX_BYTES bounds its bytes), and whether each sidecar's producer "
        "reaches the broker.",
        unit="none",
        queries=(
            Query("sum by (instance) (shadowline_spool_records)", "waiting {{instance}}"),
            Query("sum by (instance) (shadowline_spool_bytes)", "bytes {{instance}}"),
            Query("min by (instance) (shadowline_kafka_connected)", "connected {{instance}}"),
        ),
    ),
    Panel(
        title="Spool writes and replays",
        description="Records written to the spool (broker down or slow, delivery failed) and "
        "spooled records the broker acknowledged when sent again.",
        unit="ops",
        queries=(
            Query(f"sum(rate(shadowline_spool_written_total{RATE}))", "written"),
            Query(f"sum(rate(shadowline_spool_replayed_total{RATE}))", "replayed"),
        ),
    ),
    Panel(
        title="Records failed by kind",
        description="Records sent without their inputs (unencodable_inputs), not sent (lost), or "
        "held by a sidecar that ended (sidecar_gone).",
        unit="ops",
        queries=(
            Query(f"sum by (kind) (rate(shadowline_records_failed_total{RATE}))", "{{kind}}"),
        ),
    ),
    Panel(
        title="Labels taken",
        description="Labels received by POST /v1/labels: written to the labels topic, or "
        "duplicates of labels already taken (webhook retries), not written again.",
        unit="ops",
        queries=(Query(f"sum by (outcome) (rate(shadowline_labels_total{RATE}))", "{{outcome}}"),),
    ),
    Panel(
        title="Sidecar and producer restarts",
        description="Sidecar processes started again after one ended, and Kafka producers "
        "recreated.",
        unit="none",
        queries=(
            Query(f"sum(increase(shadowline_sidecar_restarts_total{RATE}))", "sidecar"),
            Query(f"sum(increase(shadowline_kafka_producer_restarts_total{RATE}))", "producer"),
        ),
    ),
)

LOADED_ROW = (
    Panel(
        title="Loaded models",
        description="Each version every scorer holds, by role; the value is when it was loaded.",
        unit="dateTimeFromNow",
        # The gauge holds unix seconds; Grafana's time units read milliseconds.
        queries=(Query("shadowline_model_info * 1000", "{{role}} {{version}} {{instance}}"),),
        kind="stat",
        width=6,
    ),
    Panel(
        title="Scorers up",
        description="Scorer replicas Prometheus scraped successfully (job shadowline-scorer).",
        unit="none",
        queries=(Query(f'sum(up{{job="{SCORER_JOB}"}})', "up"),),
        kind="stat",
        width=4,
        thresholds=((1.0, "green"),),
    ),
    Panel(
        title="Production model age",
        description="Time since the production model was created; the retrain schedule is weekly.",
        unit="s",
        queries=(Query("max(shadowline_model_age_seconds)", "age"),),
        kind="stat",
        width=4,
        thresholds=((8 * DAY, "yellow"), (15 * DAY, "red")),
    ),
    Panel(
        title="Registry reachable",
        description="1 while every scorer's last registry (Redis) read succeeded; scoring goes on "
        "without it, model changes do not arrive.",
        unit="none",
        queries=(Query("min(shadowline_registry_reachable)", "reachable"),),
        kind="stat",
        width=4,
        thresholds=((1.0, "green"),),
    ),
    Panel(
        title="Model swaps and failed loads",
        description="Model sets swapped in, and versions that failed to load (the previous model "
        "kept serving), by role; degraded scorers serve a last-known-good model instead of the "
        "registry's production (ShadowlineScorerDegraded).",
        unit="none",
        queries=(
            Query(f"sum by (role) (increase(shadowline_model_swaps_total{RATE}))", "{{role}}"),
            Query(
                f"sum by (role) (increase(shadowline_model_swap_failures_total{RATE}))",
                "failed {{role}}",
            ),
            Query("sum(shadowline_degraded)", "degraded scorers"),
        ),
        width=6,
    ),
)

RETRAIN_ROW = (
    Panel(
        title="Retrain runs in the last 7 days",
        description="Runs by outcome; a failed run also fires ShadowlineRetrainRunFailed.",
        unit="none",
        queries=(
            Query("sum by (outcome) (increase(shadowline_retrain_runs_total[7d]))", "{{outcome}}"),
        ),
        kind="stat",
        width=6,
    ),
    Panel(
        title="Worker up",
        description="1 while Prometheus scrapes the retrain worker (job shadowline-retrain).",
        unit="none",
        queries=(Query(f'max(up{{job="{RETRAIN_JOB}"}})', "up"),),
        kind="stat",
        width=4,
        thresholds=((1.0, "green"),),
    ),
    Panel(
        title="Since the last successful run",
        description="Time since a run last ended with a candidate (in shadow, or rejected by a "
        "gate).",
        unit="s",
        queries=(
            Query("time() - max(shadowline_retrain_last_success_timestamp_seconds > 0)", "since"),
        ),
        kind="stat",
        width=4,
        thresholds=((8 * DAY, "yellow"), (15 * DAY, "red")),
        no_value="never",
    ),
    Panel(
        title="Run in progress",
        description="1 while the worker is executing a run.",
        unit="none",
        queries=(Query("max(shadowline_retrain_run_in_progress)", "running"),),
        kind="stat",
        width=4,
    ),
    Panel(
        title="Mean step duration, last 7 days",
        description="Seconds per pipeline step, averaged over the runs of the last 7 days.",
        unit="s",
        queries=(
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

EVIDENCE_ROW = (
    Panel(
        title="Evidence age by shadow version",
        description="Time since each shadow version's evidence was last recorded; the retrain "
        "worker analyses every shadow daily (SHADOWLINE_ANALYSIS_SCHEDULE).",
        unit="s",
        queries=(Query("max by (version) (shadowline_evidence_age_seconds)", "{{version}}"),),
        kind="stat",
        width=6,
        thresholds=((1.5 * DAY, "yellow"), (3 * DAY, "red")),
    ),
    Panel(
        title="Primary difference with its 95% interval",
        description="Challenger minus production on fraud caught at production's block rate, as "
        "last recorded: the point and the bounds of its 95% interval. Approval needs the "
        "looks-corrected lower bound above minus the tolerance (docs/evidence.md).",
        unit="percentunit",
        queries=(
            Query(
                "max by (version, estimate) (shadowline_evidence_difference)",
                "{{version}} {{estimate}}",
            ),
        ),
        width=8,
    ),
    Panel(
        title="Matured frauds behind the evidence",
        description="Labeled frauds among the matured transactions of each version's latest "
        "evidence (the policy asks for SHADOWLINE_POLICY_MIN_MATURED_FRAUDS).",
        unit="none",
        queries=(Query("max by (version) (shadowline_evidence_matured_frauds)", "{{version}}"),),
        kind="stat",
        width=4,
    ),
    Panel(
        title="Failed scheduled analyses, last 7 days",
        description="Shadow analyses the worker could not run, by kind: analysis (Kafka, topics, "
        "report), registry, redis, unexpected. The worker and the retrain runs go on regardless.",
        unit="none",
        queries=(
            Query(
                "sum by (reason) (increase(shadowline_evidence_analysis_failures_total[7d]))",
                "{{reason}}",
            ),
        ),
        kind="stat",
        width=6,
        thresholds=((1.0, "red"),),
    ),
)

GUARDRAILS_ROW = (
    Panel(
        title="Production block rate against its first hour",
        description="Share of payments production blocks, over its first hour in each scorer "
        "(reference) and the last 15 minutes (recent); ShadowlineBlockRateDrift fires when they "
        "part.",
        unit="percentunit",
        queries=(
            Query(
                "max by (version, period) (shadowline_production_block_rate)",
                "{{version}} {{period}}",
            ),
        ),
        width=8,
    ),
    Panel(
        title="Production score PSI against its first hour",
        description="Population stability index of production's recent scores against its first "
        "hour; above 0.25 the scored population changed (ShadowlineScoreDrift).",
        unit="none",
        queries=(Query("max by (version) (shadowline_production_score_psi)", "{{version}}"),),
        width=8,
        thresholds=((0.25, "yellow"), (0.5, "red")),
    ),
    Panel(
        title="Guard rollbacks by rule",
        description="Promotions the rollback guard pulled, by the rule broken "
        "(docs/operations.md).",
        unit="none",
        queries=(
            Query(f"sum by (rule) (increase(shadowline_guard_rollbacks_total{RATE}))", "{{rule}}"),
        ),
        width=8,
    ),
    Panel(
        title="On probation",
        description="1 while a scorer's rollback guard watches a fresh promotion.",
        unit="none",
        queries=(Query("max(shadowline_guard_probation)", "on probation"),),
        kind="stat",
        width=6,
    ),
    Panel(
        title="Roll-outs in the last 7 days",
        description="Approved versions the retrain worker promoted.",
        unit="none",
        queries=(Query("sum(increase(shadowline_retrain_rollouts_total[7d]))", "roll-outs"),),
        kind="stat",
        width=6,
    ),
    Panel(
        title="Approval waiting for the window",
        description="1 while an approved version waits for SHADOWLINE_ROLLOUT_WINDOW.",
        unit="none",
        queries=(Query("max(shadowline_retrain_rollout_waiting)", "waiting"),),
        kind="stat",
        width=6,
    ),
    Panel(
        title="Scheduled run overdue by",
        description="Time between the latest slot of the schedule and the latest slot the worker "
        "handled; ShadowlineRetrainRunLate fires past an hour.",
        unit="s",
        queries=(
            Query(
                "max(shadowline_retrain_due_slot_timestamp_seconds)"
                " - max(shadowline_retrain_handled_slot_timestamp_seconds)",
                "overdue",
            ),
        ),
        kind="stat",
        width=6,
        thresholds=((3600.0, "red"),),
    ),
)

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Requests", REQUESTS_ROW),
    ("Production and shadow models", MODELS_ROW),
    ("Shadow pipeline", SHADOW_ROW),
    ("Score records and Kafka", KAFKA_ROW),
    ("Loaded models and registry", LOADED_ROW),
    ("Retrain worker", RETRAIN_ROW),
    ("Shadow evidence", EVIDENCE_ROW),
    ("Guardrails: drift, rollback guard, roll-out", GUARDRAILS_ROW),
)
