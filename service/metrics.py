"""The scorer's Prometheus metrics, on a :class:`CollectorRegistry` the app factory is given.

Nothing is registered at import time: each app (and each test) builds its own
:class:`ServiceMetrics`.  Hot-path children (per route, per model version) are bound once and
reused, because ``.labels(...)`` costs about a microsecond per call.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.values import MutexValue

from service.exposition import Exposition

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
# Labelled counters an alert counts with rate()/increase() exist from the start at 0: a series
# born at 1 shows no increase, and its first event would never alert.
RECORD_FAILURE_KINDS = ("unencodable_inputs", "lost", "sidecar_gone")
GUARD_RULES = ("error_ratio", "p99", "block_rate", "score_psi")


class ServiceMetrics:
    """Every ``shadowline_*`` metric of the scorer (docs/operations.md lists them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._exposition = Exposition(registry)
        self.request_seconds = Histogram(
            "shadowline_request_duration_seconds",
            "HTTP request latency in the server, by route template and status code.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "shadowline_inference_duration_seconds",
            "Model inference latency per call (a shadow call scores a whole batch).",
            ["role", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.scores = Histogram(
            "shadowline_score",
            "Distribution of fraud scores, by role and model version.",
            ["role", "version"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "shadowline_decisions_total",
            "Decisions taken (production) or that would have been taken (shadow).",
            ["role", "version", "decision"],
            registry=registry,
        )
        self.explored = Counter(
            "shadowline_explored_total",
            "Would-be blocks answered review instead (SHADOWLINE_EXPLORATION_SHARE), by "
            "production version; shadowline_decisions_total counts them as the model's block.",
            ["version"],
            registry=registry,
        )
        self.labels = Counter(
            "shadowline_labels_total",
            "Labels taken by POST /v1/labels, by outcome: written (acknowledged by the broker) "
            "or duplicate (already taken within the dedupe window: a retry).",
            ["outcome"],
            registry=registry,
        )
        self.shadow_queue_depth = Gauge(
            "shadowline_shadow_queue_depth",
            "Scored transactions waiting to be handed to the sidecar (shadows, records, Kafka).",
            registry=registry,
        )
        self.shadow_shed = Counter(
            "shadowline_shadow_shed_total",
            "Scored transactions dropped because the sidecar could not keep up while Kafka "
            "was fine (their records are not sent; see shadowline_kafka_dropped_total).",
            registry=registry,
        )
        self.shadow_errors = Counter(
            "shadowline_shadow_errors_total",
            "Shadow results recorded as errors, by version and kind (error, timeout, busy, input, "
            "shed, load).",
            ["version", "kind"],
            registry=registry,
        )
        self.records = Counter(
            "shadowline_records_total",
            "Score records built by the sidecar and handed to its Kafka producer.",
            registry=registry,
        )
        self.records_failed = Counter(
            "shadowline_records_failed_total",
            "Score records that could not be built or sent as usual, by kind: "
            "unencodable_inputs (sent with inputs replaced by the reason), lost (not sent at "
            "all), sidecar_gone (held by a sidecar that ended, by crash or kill).",
            ["kind"],
            registry=registry,
        )
        for kind in RECORD_FAILURE_KINDS:
            self.records_failed.labels(kind)
        self.kafka_sent = Counter(
            "shadowline_kafka_sent_total",
            "Score records the broker acknowledged (sent straight or from the spool).",
            registry=registry,
        )
        self.kafka_failed = Counter(
            "shadowline_kafka_failed_total",
            "Score records neither delivered nor spooled: the broker refused the record itself, "
            "the spool was full or off, or they were written off when the sidecar stopped "
            "without a broker or a spool.",
            registry=registry,
        )
        self.kafka_dropped = Counter(
            "shadowline_kafka_dropped_total",
            "Scored transactions dropped, their records never sent, because Kafka held the "
            "sidecar back (broker slow or down, and the spool full or off) and the scorer's "
            "queue was full.",
            registry=registry,
        )
        self.kafka_buffered_bytes = Gauge(
            "shadowline_kafka_buffered_bytes",
            "Bytes of score records held for Kafka: queued in the scorer plus in flight in the "
            "producer (bounded by SHADOWLINE_KAFKA_BUFFER_BYTES).",
            registry=registry,
        )
        self.kafka_connected = Gauge(
            "shadowline_kafka_connected",
            "1 when the sidecar's Kafka producer has a broker and its deliveries succeed.",
            registry=registry,
        )
        self.spool_written = Counter(
            "shadowline_spool_written_total",
            "Score records written to the local spool: the producer could not take them, or "
            "their delivery failed (SHADOWLINE_SPOOL_*; docs/reliability.md).",
            registry=registry,
        )
        self.spool_replayed = Counter(
            "shadowline_spool_replayed_total",
            "Spooled score records sent again and acknowledged by the broker.",
            registry=registry,
        )
        self.spool_records = Gauge(
            "shadowline_spool_records",
            "Score records waiting in the spool for the broker.",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "shadowline_spool_bytes",
            "Bytes of the score records waiting in the spool.",
            registry=registry,
        )
        self.kafka_restarts = Counter(
            "shadowline_kafka_producer_restarts_total",
            "Kafka producers (re)created by the sidecar.",
            registry=registry,
        )
        self.sidecar_restarts = Counter(
            "shadowline_sidecar_restarts_total",
            "Sidecar processes started again after one ended unexpectedly.",
            registry=registry,
        )
        self.model_info = Gauge(
            "shadowline_model_info",
            "Loaded model versions; the value is the unix time the version was loaded.",
            ["role", "version", "sha256"],
            registry=registry,
        )
        self.model_age = Gauge(
            "shadowline_model_age_seconds",
            "Age of the production model (now minus its manifest's created_at).",
            registry=registry,
        )
        self.swaps = Counter(
            "shadowline_model_swaps_total",
            "Model sets swapped in (production or shadows).",
            ["role"],
            registry=registry,
        )
        self.swap_failures = Counter(
            "shadowline_model_swap_failures_total",
            "Model versions that failed to load; the previous model kept serving.",
            ["role"],
            registry=registry,
        )
        self.degraded = Gauge(
            "shadowline_degraded",
            "1 while this scorer serves another production version than the registry names "
            "(its last-known-good model, because the registry's cannot be loaded; /readyz "
            "says which and why), else 0.",
            registry=registry,
        )
        self.registry_up = Gauge(
            "shadowline_registry_reachable",
            "1 when the last registry read (Redis) succeeded, else 0.",
            registry=registry,
        )
        # Written once a second by service.watch (the drift monitor and the rollback guard).
        self.production_block_rate = Gauge(
            "shadowline_production_block_rate",
            "Share of transactions production blocked, over its first hour in this process "
            "(period=reference) and over the recent window (period=recent).",
            ["version", "period"],
            registry=registry,
        )
        self.production_psi = Gauge(
            "shadowline_production_score_psi",
            "PSI of production's recent score histogram against its first hour's.",
            ["version"],
            registry=registry,
        )
        self.guard_probation = Gauge(
            "shadowline_guard_probation",
            "1 while this process's rollback guard watches a promotion on probation.",
            registry=registry,
        )
        self.guard_rollbacks = Counter(
            "shadowline_guard_rollbacks_total",
            "Promotions this process's rollback guard rolled back, by the rule broken.",
            ["rule"],
            registry=registry,
        )
        for rule in GUARD_RULES:
            self.guard_rollbacks.labels(rule)
        self._production_created: float | None = None
        self.model_age.set_function(self._age)

    def render(self) -> bytes:
        """Everything on ``registry`` (this process's metrics, and any registered beside them,
        such as the lag probe's) in Prometheus's text format (:mod:`service.exposition`)."""
        return self._exposition.render()

    def set_production_created(self, created_at: float | None) -> None:
        """Record when the production model was created (None: no production model)."""
        self._production_created = created_at

    def _age(self) -> float:
        created = self._production_created
        return 0.0 if created is None else max(0.0, time.time() - created)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Report the shadow queue depth by asking ``depth`` at scrape time."""
        self.shadow_queue_depth.set_function(lambda: float(depth()))


def add_to_histogram(histogram: Histogram, counts: list[int], total: float) -> None:
    """Add per-bucket ``counts`` (in the histogram's bucket order, +Inf last) and their sum to
    one labelled histogram, as if each value had been observed here.

    prometheus_client has no public way to add many observations at once; this uses its
    per-bucket values (``_buckets``, ``_sum``), which ``observe`` itself increments.
    ``tests/service/test_tally.py`` checks the result against ``observe``.
    """
    buckets = histogram._buckets
    if len(counts) != len(buckets):
        raise ValueError(f"{len(counts)} bucket counts for {len(buckets)} buckets")
    for bucket, n in zip(buckets, counts, strict=True):
        if n:
            bucket.inc(n)
    histogram._sum.inc(total)


def observer(child: Histogram) -> Callable[[float], None]:
    """``child.observe`` for the request path (``child``: a labelled histogram's child that
    only the event loop's thread writes: the scorer's production series, the request
    latencies).

    It finds the bucket by bisection where ``observe`` walks the bounds in Python, and adds to
    the bucket's and the sum's values without the lock ``observe`` takes for each: one writer
    cannot race itself, and a scrape on another thread reads each float whole under the GIL.
    0.14 against 0.52 us a call in-process.  In pinned A/Bs (``benchmarks.ab``) the request
    path's metrics cost the scorer 8 us of CPU a request (of 91-97), and dropping the locks
    won back 2-4 us, 2-5% of its throughput (docs/loadtest.md).  The counts are the same as
    ``observe``'s (``tests/service/test_metrics.py``).  Like :func:`add_to_histogram`, it
    changes the per-bucket values ``observe`` changes.  Where prometheus_client keeps its
    values elsewhere (its multiprocess mode), it takes the locked path.
    """
    bounds, buckets, total = child._upper_bounds, child._buckets, child._sum
    if not all(type(value) is MutexValue for value in (total, *buckets)):
        return child.observe

    def observe(value: float) -> None:
        if value == value:  # observe() puts a NaN in no bucket
            buckets[bisect_left(bounds, value)]._value += 1.0
        total._value += value

    return observe


def incrementer(child: Counter) -> Callable[[], None]:
    """``child.inc`` (by one) for a labelled counter's child that only the event loop's thread
    writes, without the lock (as :func:`observer`)."""
    value = child._value
    if type(value) is not MutexValue:
        return child.inc

    def inc() -> None:
        value._value += 1.0

    return inc
