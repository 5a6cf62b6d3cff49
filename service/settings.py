"""Settings of the scorer process (``shadowline serve``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from registry.config import Environment, SharedSettings
from registry.records import DEFAULT_LABEL_CLOCK_SKEW_S

PLACEHOLDER_TOKEN = "change-me"  # noqa: S105 - the placeholder that is refused outside development
# Each explored transaction is a payment the model wanted to block that goes to manual review
# (docs/evidence.md "Exploration"): more than half would no longer be a model deciding.
MAX_EXPLORATION_SHARE = 0.5


class ServiceSettings(SharedSettings):
    """Everything the scorer reads at start-up; built once and passed down."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    model_name: str = Field(default="fraud", min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    admin_token: SecretStr = SecretStr(PLACEHOLDER_TOKEN)
    # Scoring input limits (service.scorer.InputLimits): the body of POST /v1/score, and per
    # transaction of a batch; keys the model does not know; characters of any string.
    max_transaction_bytes: int = Field(default=32_768, ge=1024)
    max_extra_fields: int = Field(default=256, ge=0)
    max_string_chars: int = Field(default=1024, ge=16)
    # The largest body of POST /v1/score/batch, whatever its length (its limit is otherwise
    # max_transaction_bytes per transaction, up to max_batch).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Admin request bodies (JSON of a few fields), read only after the token was checked.
    admin_max_body_bytes: int = Field(default=65_536, ge=1024)
    max_batch: int = Field(default=500, ge=1, le=100_000)
    # Scored transactions waiting for the sidecar (shadows, records, Kafka) before shedding.
    shadow_queue_size: int = Field(default=10_000, ge=1)
    shadow_time_budget_ms: float = Field(default=50.0, gt=0)
    # Batches older than this when the sidecar gets to them skip their shadows (counted).
    shadow_max_lag_ms: float = Field(default=1000.0, gt=0)
    # The hand-over to the sidecar: a message at most every shadow_batch_wait_ms (sooner when
    # shadow_batch_max transactions gathered).  Each message costs both processes a wake-up
    # and a few context switches whatever its size: on a slow 2-core VM, 20 ms instead of 5
    # took the sidecar's CPU from 27-47 to 23-32 us a request and the writer thread's from
    # 4-10 to 2.5-3.5 at ~3,000 req/s pinned (four interleaved pairs).  A record reaches
    # Kafka that much later (the producer lingers 50 ms more); shadows shed only past 750 ms.
    shadow_batch_max: int = Field(default=128, ge=1, le=10_000)
    shadow_batch_wait_ms: float = Field(default=20.0, ge=0, le=1000)
    kafka_buffer_records: int = Field(default=100_000, ge=2)
    # Bytes held while the broker is slow or down, half queued here (request bytes), half in
    # flight in the producer (record bytes): records are up to ~1 MiB, so the count alone
    # does not bound memory (measured: 300 requests of 0.5 MB grew the producer from 86 to
    # 417 MB).
    kafka_buffer_bytes: int = Field(default=64 << 20, ge=64 << 10)
    kafka_linger_ms: int = Field(default=50, ge=0, le=1000)  # bigger batches: less producer CPU
    kafka_delivery_timeout_ms: int = Field(default=30_000, ge=1000)
    kafka_restart_after_s: float = Field(default=10.0, gt=0)
    # Acknowledgement the score records' producer waits for: "1" (the partition leader has
    # the record) or "all" (min.insync.replicas copies have it; no loss when a leader dies).
    # Not idempotent either way: a retry can duplicate a record, and readers key on the
    # transaction id.  docs/production.md weighs the two.
    kafka_acks: Literal["1", "all"] = "1"
    # The score records' client library (service.producer.open_producer): librdkafka does in C
    # what kafka-python does in Python (~30 us of the sidecar's CPU a record).
    kafka_client: Literal["confluent-kafka", "kafka-python"] = "confluent-kafka"
    # Records the broker cannot take wait in an append-only file here (one directory per
    # sidecar process, under the topic's name), up to spool_max_bytes on disk (0: no spool,
    # they are counted as failed); fsync at most this often (0: after every write).
    # docs/reliability.md explains the policy.
    spool_dir: str = Field(default=".shadowline/spool", min_length=1)
    spool_max_bytes: int = Field(default=1 << 30, ge=0)
    spool_fsync_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    # Shadows, records and the Kafka producer run in a sidecar process (their Python work
    # would hold this process's GIL); False runs the sidecar in a thread (tests, debugging).
    sidecar_process: bool = True
    # Added to the sidecar process's nice value (0 to 19).  0 by default: the sidecar's own
    # thread sends production's records, one per request, and at +10 on a core shared with
    # the scorer it got a tenth of that core and records were dropped (make bench, pinned).
    sidecar_niceness: int = Field(default=0, ge=0, le=19)
    # Added again for the threads that run the shadow models: under CPU contention
    # production's requests and records run first, the shadows fall behind, then are shed.
    shadow_niceness: int = Field(default=10, ge=0, le=19)
    # The share of would-be blocks answered review instead, so their outcome is observed.
    exploration_share: float = Field(default=0.0, ge=0.0, le=MAX_EXPLORATION_SHARE)
    # POST /v1/labels (docs/evidence.md "Labels over HTTP"): its own bearer token (unset: the
    # route answers 404), at most labels_max_batch labels a request (the body at most
    # max_body_bytes), label times at most labels_clock_skew_s ahead of this clock, a repeat
    # of a (transaction id, label time) within labels_dedupe_window_s not written again, and
    # the broker's acknowledgement awaited at most labels_ack_timeout_s.
    labels_token: SecretStr | None = None
    labels_max_batch: int = Field(default=1000, ge=1, le=100_000)
    labels_clock_skew_s: float = Field(default=DEFAULT_LABEL_CLOCK_SKEW_S, ge=0, le=86_400)
    labels_dedupe_window_s: int = Field(default=3 * 86_400, ge=60, le=90 * 86_400)
    labels_ack_timeout_s: float = Field(default=10.0, ge=0.5, le=120)
    reconcile_interval_s: float = Field(default=1.0, gt=0, le=2.0)
    # The last-known-good copy of the production model (service.model_cache), served when the
    # registry's production cannot be loaded; "" turns it off.  Local disk, one per host.
    model_cache_dir: str = ".shadowline/model-cache"
    # While degraded, how often the registry's production is tried again.
    degraded_retry_s: float = Field(default=30.0, gt=0)
    # Answer the scoring routes below FastAPI's middleware stack (service.fastpath); false
    # routes them through FastAPI, with the same responses.
    fast_path: bool = True
    # The event-loop lag probe (service/lagprobe.py): a task that sleeps this often and
    # records how late it wakes (shadowline_event_loop_lag_seconds); the bench turns it on.
    lag_probe: bool = False
    lag_probe_interval_ms: float = Field(default=1.0, ge=0.1, le=1000)
    access_log: bool = False
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")
    # The rollback guard (service/guard.py): a promoted model is on probation for
    # guard_probation_s and rolled back if it breaks a bound against the version it replaced.
    guard: bool = True
    guard_probation_s: float = Field(default=900.0, gt=0)
    guard_interval_s: float = Field(default=1.0, gt=0, le=60)
    guard_cooldown_s: float = Field(default=3600.0, ge=0)
    guard_min_requests: int = Field(default=200, ge=1)  # per version, before any rule is judged
    guard_max_error_ratio: float = Field(default=0.02, gt=0, lt=1)  # rise of the 5xx share
    guard_max_p99_ratio: float = Field(default=3.0, gt=1)  # model-call p99, new / previous
    guard_p99_floor_ms: float = Field(default=25.0, ge=0)  # ... and above this
    guard_max_block_rate: float = Field(default=0.05, gt=0, lt=1)  # rise of the block share
    guard_max_psi: float = Field(default=0.5, gt=0)  # score histogram, new against previous
    # A rise of the 5xx or block share, or the score PSI, breaks its bound only this many
    # standard errors beyond it: the guard looks every interval, and chance alone must not
    # roll back a good model.
    guard_noise_sigmas: float = Field(default=3.0, ge=0, le=10)
    # The drift gauges (service/drift.py): production's recent window against its first period.
    drift_reference_s: float = Field(default=3600.0, gt=0)
    drift_window_s: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _no_placeholder_token_outside_development(self) -> ServiceSettings:
        token = self.admin_token.get_secret_value()
        if self.environment is not Environment.DEVELOPMENT and token == PLACEHOLDER_TOKEN:
            raise ValueError(
                "SHADOWLINE_ADMIN_TOKEN is still the placeholder; set a real secret "
                f"when SHADOWLINE_ENVIRONMENT={self.environment.value}"
            )
        if len(token) < 8:
            raise ValueError("SHADOWLINE_ADMIN_TOKEN must be at least 8 characters")
        if self.labels_token is not None:
            labels = self.labels_token.get_secret_value()
            if len(labels) < 8:
                raise ValueError("SHADOWLINE_LABELS_TOKEN must be at least 8 characters")
            if labels == token:
                # Label senders (chargeback and review systems) must not hold the keys to
                # approve and promote models.
                raise ValueError("SHADOWLINE_LABELS_TOKEN must differ from SHADOWLINE_ADMIN_TOKEN")
        return self

    @model_validator(mode="after")
    def _guard_can_judge_within_probation(self) -> ServiceSettings:
        if self.guard and self.guard_probation_s <= self.guard_interval_s:
            raise ValueError(
                f"SHADOWLINE_GUARD_PROBATION_S ({self.guard_probation_s:g}) must be longer than "
                f"SHADOWLINE_GUARD_INTERVAL_S ({self.guard_interval_s:g}): the guard would "
                "never look at a promotion during its probation"
            )
        return self
