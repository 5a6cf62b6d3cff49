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
    # Added to the sidecar process's nice value (0 to 19): under CPU contention production's
    # requests run first and the shadows fall behind, then are shed.
    sidecar_niceness: int = Field(default=10, ge=0, le=19)
    reconcile_interval_s: float = Field(default=1.0, gt=0, le=2.0)
    # Answer the scoring routes below FastAPI's middleware stack (service.fastpath); false
    # routes them through FastAPI, with the same responses.
    fast_path: bool = True
    access_log: bool = False
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")

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
