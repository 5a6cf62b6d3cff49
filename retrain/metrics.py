"""Prometheus metrics of the retrain worker, on an injected ``CollectorRegistry``.

``shadowline_retrain_runs_total{outcome="failed"}`` is what deploy/prometheus/alerts.yml
pages on: keep the name and the label.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

OUTCOMES = ("succeeded", "rejected", "skipped", "failed")
# Why a scheduled analysis failed (retrain/scheduled_analysis.py): the kind of error.
ANALYSIS_FAILURES = ("analysis", "registry", "redis", "unexpected")
ESTIMATES = ("point", "low", "high")
_STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class RetrainMetrics:
    """The worker's counters; one instance per process, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runs = Counter(
            "shadowline_retrain_runs_total",
            "Retrain runs by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.runs.labels(outcome=outcome)  # every series exists from the start (at 0)
        self.last_success = Gauge(
            "shadowline_retrain_last_success_timestamp_seconds",
            "Unix time of the last run that ended in shadow or rejected (not failed).",
            registry=registry,
        )
        self.step_seconds = Histogram(
            "shadowline_retrain_step_duration_seconds",
            "Time spent per pipeline step.",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.running = Gauge(
            "shadowline_retrain_run_in_progress", "1 while a run is executing.", registry=registry
        )
        # The scheduled shadow analysis: one series per shadow version with evidence.
        self.evidence_age = Gauge(
            "shadowline_evidence_age_seconds",
            "Seconds since the shadow evidence of each version was last recorded.",
            ["version"],
            registry=registry,
        )
        self.evidence_difference = Gauge(
            "shadowline_evidence_difference",
            "Latest primary difference (challenger minus production, fraud caught at "
            "production's block rate): estimate=point, and low/high of its 95% interval.",
            ["version", "estimate"],
            registry=registry,
        )
        self.evidence_matured_frauds = Gauge(
            "shadowline_evidence_matured_frauds",
            "Labeled frauds among the matured transactions behind the latest evidence.",
            ["version"],
            registry=registry,
        )
        self.analysis_failures = Counter(
            "shadowline_evidence_analysis_failures_total",
            "Scheduled shadow analyses that failed, by kind of error.",
            ["reason"],
            registry=registry,
        )
        for reason in ANALYSIS_FAILURES:
            self.analysis_failures.labels(reason=reason)
        # A late or missing scheduled run: the due slot moves ahead of the handled one.
        self.due_slot = Gauge(
            "shadowline_retrain_due_slot_timestamp_seconds",
            "Unix time of the latest slot of the schedule at or before now (what should have "
            "run by now).",
            registry=registry,
        )
        self.handled_slot = Gauge(
            "shadowline_retrain_handled_slot_timestamp_seconds",
            "Unix time of the latest schedule slot the worker handled (ran, whatever the "
            "outcome); 0 before the first.",
            registry=registry,
        )
        self.rollouts = Counter(
            "shadowline_retrain_rollouts_total",
            "Approved versions the worker promoted (roll-out).",
            registry=registry,
        )
        self.rollout_waiting = Gauge(
            "shadowline_retrain_rollout_waiting",
            "1 while an approved version waits for the deployment window.",
            registry=registry,
        )

    def value(self, outcome: str) -> float:
        """Current count of runs with ``outcome`` (for tests and `--json` output)."""
        sample = self.registry.get_sample_value(
            "shadowline_retrain_runs_total", {"outcome": outcome}
        )
        return 0.0 if sample is None else sample


def serve_metrics(metrics: RetrainMetrics, port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Serve ``/metrics`` for ``metrics`` in a daemon thread; ``shutdown()`` the result to stop.

    Port 0 picks a free port (``server.server_port``).
    """
    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
