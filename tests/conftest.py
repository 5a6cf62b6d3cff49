"""Session fixtures: a real redis-server and a real Kafka-protocol broker on free ports.

They are started with the same code as ``shadowline stack up`` (in a temporary state folder) and
stopped when the session ends.  Each test gets clean Redis keys (``redis_client`` flushes its
database) and topics of its own (``make_topic``).  A test that uses one of these fixtures is
marked ``redis`` or ``kafka`` automatically, so ``pytest -m "not redis and not kafka"`` runs
without any service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from shadowline.stack import Component, LocalStack
from tests.servers import s3_server

REDIS_FIXTURES = {"local_stack", "redis_url", "redis_client"}
KAFKA_FIXTURES = {"local_stack", "kafka_bootstrap", "make_topic"}
S3_FIXTURES = {"s3_endpoint", "s3_bucket"}


def pytest_addoption(parser: pytest.Parser) -> None:
    # `make test` asserts that timed things happen, with room for a busy shared machine;
    # `make deploy-check` passes this flag to hold them to the bounds the issues promise.
    parser.addoption(
        "--strict-timing",
        action="store_true",
        help="assert the promised time bounds (e.g. 2 s to serve a promotion) exactly",
    )


@pytest.fixture(scope="session")
def time_bound(request: pytest.FixtureRequest) -> Callable[[float], float]:
    """``time_bound(2.0)``: the bound a timed assertion uses, the promised one under
    ``--strict-timing``, five times it (at least 10 s) otherwise."""
    strict = bool(request.config.getoption("--strict-timing"))
    return lambda promised: promised if strict else max(5 * promised, 10.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)
        if names & KAFKA_FIXTURES:
            item.add_marker(pytest.mark.kafka)
        if names & S3_FIXTURES:
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Component]]:
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    components = stack.up()
    yield {comp.name: comp for comp in components}
    stack.down()


@pytest.fixture(scope="session")
def redis_url(local_stack: dict[str, Component]) -> str:
    return f"redis://{local_stack['redis'].address}/0"


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack: dict[str, Component]) -> str:
    return local_stack["kafka"].address


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database: every test starts with no keys."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def make_topic(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Factory: ``make_topic("scores")`` creates a topic only this test uses; deleted afterwards."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)
    created: list[str] = []

    def make(stem: str = "t", partitions: int = 1) -> str:
        name = f"{stem}.{request.node.name[:40]}.{uuid.uuid4().hex[:8]}".replace("[", "-")
        name = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name)
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    yield make
    if created:
        admin.delete_topics(created)
    admin.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real S3-compatible server (moto_server) on 127.0.0.1, for the whole session."""
    with s3_server(tmp_path_factory.mktemp("s3")) as url:
        yield url


@pytest.fixture
def s3_bucket(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the S3 server.  boto3 finds test credentials in the environment
    (its own chain, as in production) and never reads the machine's AWS files."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "shadowline-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shadowline-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"shadowline-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.close()
    return bucket


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in an empty folder so no ``.shadowline/stack.env`` leaks into settings."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
