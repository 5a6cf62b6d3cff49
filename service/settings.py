"""Settings of the scorer process (``shadowline serve``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from registry.config import Environment, SharedSettings

PLACEHOLDER_TOKEN = "change-me"  # noqa: S105 - the placeholder that is refused outside development


class ServiceSettings(SharedSettings):
    """Everything the scorer reads at start-up; built once and passed down."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    model_name: str = Field(default="fraud", min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    admin_token: SecretStr = SecretStr(PLACEHOLDER_TOKEN)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch: int = Field(default=500, ge=1, le=100_000)
    # Scored transactions waiting for the sidecar (shadows, records, Kafka) before shedding.
    shadow_queue_size: int = Field(default=10_000, ge=1)
    shadow_time_budget_ms: float = Field(default=50.0, gt=0)
    # Batches older than this when the sidecar gets to them skip their shadows (counted).
    shadow_max_lag_ms: float = Field(default=1000.0, gt=0)
    shadow_batch_max: int = Field(default=128, ge=1, le=10_000)
    shadow_batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    kafka_buffer_records: int = Field(default=100_000, ge=2)
    # Bytes held while the broker is slow or down, half queued here (request bytes), half in
    # flight in the producer (record bytes): records are up to ~1 MiB, so the count alone
    # does not bound memory (measured: 300 requests of 0.5 MB grew the producer from 86 to
    # 417 MB).
    kafka_buffer_bytes: int = Field(default=64 << 20, ge=64 << 10)
    kafka_linger_ms: int = Field(default=50, ge=0, le=1000)  # bigger batches: less producer CPU
    kafka_delivery_timeout_ms: int = Field(default=30_000, ge=1000)
    kafka_restart_after_s: float = Field(default=10.0, gt=0)
    # Shadows, records and the Kafka producer run in a sidecar process (their Python work
    # would hold this process's GIL); False runs the sidecar in a thread (tests, debugging).
    sidecar_process: bool = True
    # Added to the sidecar process's nice value (0 to 19): under CPU contention production's
    # requests run first and the shadows fall behind, then are shed.
    sidecar_niceness: int = Field(default=10, ge=0, le=19)
    reconcile_interval_s: float = Field(default=1.0, gt=0, le=2.0)
    # Answer the scoring routes below FastAPI's middleware stack (service.fastpath); false
    # routes them through FastAPI, with the same responses.
    fast_path: bool = True
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
