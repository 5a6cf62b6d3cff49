"""Production connection settings: Redis with a password over TLS (a real redis-server that
speaks only TLS), and the Kafka security options every client is given."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from registry import SettingsError, SharedSettings, load_settings, model_registry
from registry.connections import async_redis_client, kafka_options, redis_client
from registry.manifest import Manifest
from tests.servers import secure_redis

PASSWORD = "s3cret-redis-pass"


@pytest.fixture(scope="module")
def tls_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with secure_redis(tmp_path_factory.mktemp("redis-tls"), PASSWORD) as dsn:
        yield dsn


def test_the_registry_works_over_tls_with_a_password(
    tls_dsn: str, tmp_path: Path, model_for: Callable[..., tuple[bytes, Manifest]]
) -> None:
    settings = load_settings(
        SharedSettings, redis_url=tls_dsn, artifact_dir=str(tmp_path), environment="production"
    )
    registry = model_registry(settings)
    model, manifest = model_for("v1")
    registry.register(model, manifest, actor="alice")
    assert [status.version for status in registry.list("fraud")] == ["v1"]

    async def ping() -> bool:
        client = async_redis_client(settings)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert asyncio.run(ping())


def test_a_missing_password_or_certificate_is_refused(tls_dsn: str) -> None:
    no_password = tls_dsn.replace(f":{PASSWORD}@", "")
    with (
        redis_client(load_settings(SharedSettings, redis_url=no_password)) as client,
        pytest.raises(redis.AuthenticationError),
    ):
        client.ping()
    no_ca = tls_dsn.split("?", 1)[0]
    with (
        redis_client(load_settings(SharedSettings, redis_url=no_ca)) as client,
        pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.ping()


def test_production_needs_a_redis_password(in_tmp_cwd: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            SharedSettings, environment="production", redis_url="rediss://redis.example:6380/0"
        )
    assert str(caught.value).splitlines()[1:] == [
        "  Value error, SHADOWLINE_REDIS_URL has no password; production needs one "
        "(redis://:PASSWORD@host:6379/0, or rediss:// for TLS)"
    ]
    staging = load_settings(SharedSettings, environment="staging", redis_url="redis://r:6379/0")
    assert staging.environment.value == "staging"


def test_plaintext_kafka_adds_no_option(in_tmp_cwd: Path) -> None:
    assert kafka_options(load_settings(SharedSettings)) == {}


def test_sasl_ssl_options_reach_the_client_arguments(in_tmp_cwd: Path) -> None:
    settings = load_settings(
        SharedSettings,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="shadowline-scorer",
        kafka_sasl_password="kafka-pass-1",
        kafka_ssl_cafile="/etc/kafka-ca/ca.crt",
    )
    assert kafka_options(settings) == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/kafka-ca/ca.crt",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "shadowline-scorer",
        "sasl_plain_password": "kafka-pass-1",
    }
    assert "kafka-pass-1" not in repr(settings)
    mutual = load_settings(
        SharedSettings,
        kafka_security_protocol="SSL",
        kafka_ssl_certfile="/tls/user.crt",
        kafka_ssl_keyfile="/tls/user.key",
    )
    assert kafka_options(mutual) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": True,
        "ssl_certfile": "/tls/user.crt",
        "ssl_keyfile": "/tls/user.key",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"},
            "SHADOWLINE_KAFKA_SASL_USERNAME and SHADOWLINE_KAFKA_SASL_PASSWORD must be set when "
            "SHADOWLINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/tls/user.crt"},
            "SHADOWLINE_KAFKA_SSL_CERTFILE and SHADOWLINE_KAFKA_SSL_KEYFILE go together "
            "(mutual TLS needs both)",
        ),
    ],
)
def test_incomplete_kafka_security_is_refused(
    in_tmp_cwd: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(SharedSettings, **overrides)
    assert str(caught.value).splitlines()[1:] == [f"  Value error, {message}"]
