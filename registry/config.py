"""Settings shared by every Shadowline process, and the one place that turns env into settings.

Each process has exactly one settings class (the scorer's lives in ``service``, the retrain
worker's in ``retrain``, the local stack's in ``shadowline``); they all derive from
:class:`SharedSettings`, so the connection settings are spelled the same everywhere, including in
``docker-compose.yml``.  Values come from ``SHADOWLINE_*`` environment variables first, then from
the file that ``shadowline stack up`` writes (``.shadowline/stack.env``), then the defaults.
Nothing else in the code base reads ``os.environ``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWLINE_"
STACK_ENV_FILE = ".shadowline/stack.env"


class SettingsError(Exception):
    """A setting has a bad value.  The message names each variable and what is wrong with it."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class SharedSettings(BaseSettings):
    """Connection settings every process needs.  Subclass it once per process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=STACK_ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    # One DSN for Redis (it may carry a password, hence SecretStr); parsed in one place,
    # registry.connections.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    kafka_bootstrap: str = "127.0.0.1:9092"
    scores_topic: str = Field(default="shadowline.scores", min_length=1)
    labels_topic: str = Field(default="shadowline.labels", min_length=1)
    artifact_dir: str = Field(default=".shadowline/artifacts", min_length=1)
    artifact_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # The topic archive (day-partitioned Parquet; docs/archive.md): written by
    # `shadowline archive`, read by analysis, replay and the retrain `archive` data source.
    archive_dir: str = Field(default=".shadowline/archive", min_length=1)
    # The model name commands and processes act on by default (one fraud model per deployment).
    model_name: str = Field(default="fraud", min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    # The approval policy (registry.policy.ApprovalPolicy): every process that approves
    # (CLI, admin API, worker) judges evidence by the same rules.
    policy_min_shadow_records: int = Field(default=1000, ge=0)
    policy_min_live_records: int = Field(default=0, ge=0)
    policy_min_matured_frauds: int = Field(default=50, ge=0)
    policy_min_label_maturity: float = Field(default=0.8, ge=0.0, le=1.0)
    policy_tolerance: float = Field(default=0.02, ge=0.0, le=1.0)
    policy_alpha: float = Field(default=0.05, gt=0.0, lt=0.5)

    # Where artifacts live: "file" under artifact_dir (one host, or a shared filesystem), "s3"
    # in an S3-compatible bucket (several hosts).  S3 credentials come from boto3's own chain
    # (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a web identity token, an instance role), so no
    # key is ever a Shadowline setting.
    artifact_backend: Literal["file", "s3"] = "file"
    artifact_s3_bucket: str = ""
    artifact_s3_prefix: str = Field(default="artifacts/", pattern=r"^([^/].*/)?$")
    artifact_s3_endpoint_url: str | None = None  # MinIO, Ceph, ...; None means AWS itself
    artifact_s3_region: str | None = None

    # Kafka security, given to every Kafka client the project creates
    # (registry.connections.kafka_options).  PLAINTEXT is the local stack's broker.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str | None = None  # the cluster's CA (PEM); None: the system's CAs
    kafka_ssl_certfile: str | None = None  # client certificate, for mutual TLS
    kafka_ssl_keyfile: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_a_redis_dsn(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("must name a host, e.g. redis://127.0.0.1:6379/0")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_is_host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server.strip()!r} is not host:port (comma-separate several)")
        return value

    @model_validator(mode="after")
    def _production_connections_are_complete(self) -> SharedSettings:
        if self.artifact_backend == "s3" and not self.artifact_s3_bucket:
            raise ValueError(
                "SHADOWLINE_ARTIFACT_S3_BUCKET must be set when SHADOWLINE_ARTIFACT_BACKEND=s3"
            )
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                "SHADOWLINE_KAFKA_SASL_USERNAME and SHADOWLINE_KAFKA_SASL_PASSWORD must be set "
                f"when SHADOWLINE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError(
                "SHADOWLINE_KAFKA_SSL_CERTFILE and SHADOWLINE_KAFKA_SSL_KEYFILE go together "
                "(mutual TLS needs both)"
            )
        dsn = urlsplit(self.redis_url.get_secret_value())
        if self.environment is Environment.PRODUCTION and dsn.scheme != "unix" and not dsn.password:
            raise ValueError(
                "SHADOWLINE_REDIS_URL has no password; production needs one "
                "(redis://:PASSWORD@host:6379/0, or rediss:// for TLS)"
            )
        return self

    @property
    def kafka_servers(self) -> list[str]:
        """The bootstrap servers as the list Kafka clients take."""
        return [server.strip() for server in self.kafka_bootstrap.split(",")]


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build a settings object once at start-up; turn validation errors into one clear message.

    Raises :class:`SettingsError` naming each bad variable (``SHADOWLINE_PORT``), the value
    it had, and what is wrong with it.  Secret values are never echoed.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(cls, exc)) from None


def _describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    secret_fields = {
        name for name, field in cls.model_fields.items() if field.annotation is SecretStr
    }
    lines = [f"invalid settings for {cls.__name__}:"]
    for error in exc.errors():
        if not error["loc"]:
            # A check across several settings: its input is every value, secrets included, so
            # only the message (which names the variables concerned) is shown.
            lines.append(f"  {error['msg']}")
            continue
        field = ".".join(str(part) for part in error["loc"])
        variable = f"{prefix}{field}".upper()
        shown = "<hidden>" if field in secret_fields else repr(error.get("input"))
        lines.append(f"  {variable}={shown}: {error['msg']}")
    return "\n".join(lines)
