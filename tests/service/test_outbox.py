"""The outbox against the real broker, with each Kafka client: records wait in the spool while
it cannot take them and arrive once, in order, when it can; a bound; orphaned spools; records
the broker refuses."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient

from service.outbox import Outbox, SpoolConfig
from service.producer import ProducerConfig
from service.tally import Tally
from shadowline.stack import ensure_topics, free_port
from tests.service.kafka_helpers import read_raw
from tests.service.processes import dedicated


def records(n: int, prefix: str = "tx") -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}-{i}".encode(), f'{{"n":{i}}}'.encode()) for i in range(n)]


def make_outbox(
    servers: str,
    topic: str,
    spool_dir: Path,
    client: str,
    max_bytes: int = 1 << 20,
    **producer: object,
) -> tuple[Outbox, Tally]:
    tally = Tally()
    options = {"max_in_flight": 10_000, "client": client, **producer}
    config = ProducerConfig(servers=(servers,), topic=topic, **options)  # type: ignore[arg-type]
    outbox = Outbox(
        config,
        SpoolConfig(directory=str(spool_dir), max_bytes=max_bytes, fsync_interval_s=0.0),
        tally,
    )
    outbox.open()
    return outbox, tally


def pump(outbox: Outbox, until: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Run the outbox's loop steps until ``until()`` holds; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outbox.tick()
        if until():
            return True
        time.sleep(0.01)
    return False


def test_records_wait_for_the_broker_and_its_topic_then_arrive_once_in_order(
    tmp_path: Path, kafka_client: str
) -> None:
    port = free_port()
    topic = "scores.spooled"
    outbox, tally = make_outbox(f"127.0.0.1:{port}", topic, tmp_path / "spool", kafka_client)
    sent = records(300)
    for n in range(0, 300, 50):
        outbox.tick()
        assert outbox.accepting()
        outbox.put(sent[n : n + 50])
    outbox.tick()
    assert (tally.spooled, tally.spool_records, tally.sent, tally.failed) == (300, 300, 0, 0)
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        # The restarted stand-in broker has no topics: nothing is sent until it has ours
        # (it would acknowledge and drop it), and the outbox does not create it.
        assert not pump(outbox, lambda: tally.replayed > 0, timeout_s=1.5)
        admin = KafkaAdminClient(bootstrap_servers=broker.address)
        assert topic not in admin.list_topics()
        admin.close()
        ensure_topics(port, [topic], partitions=1)
        assert pump(outbox, lambda: tally.spool_records == 0)
        outbox.put(records(5, prefix="live"))  # the spool is empty: straight to the producer
        assert pump(outbox, lambda: tally.sent == 5)
        outbox.close(flush_timeout_s=3.0)
        got = read_raw(broker.address, topic, until=lambda r: len(r) >= 305)
    assert [key for key, _ in got] == [key for key, _ in sent + records(5, prefix="live")]
    assert tally.replayed == 300
    assert list((tmp_path / "spool" / topic).iterdir()) == []  # empty spools are removed


def test_records_a_stalled_broker_never_acknowledged_are_sent_again_at_least_once(
    tmp_path: Path, kafka_client: str
) -> None:
    # The broker stops answering (SIGSTOP) with records in flight: they time out, are spooled
    # and sent again once it answers.  It may still write the requests it had received, so
    # those records can arrive twice: Kafka's at-least-once, and the only duplicates.
    port = free_port()
    topic = "scores.stalled"
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        ensure_topics(port, [topic], partitions=1)
        outbox, tally = make_outbox(
            broker.address, topic, tmp_path / "spool", kafka_client, delivery_timeout_ms=2000
        )  # (a request times out after 1 s)
        assert pump(outbox, lambda: outbox.deliverable())
        outbox.put(records(100, prefix="acked"))
        assert pump(outbox, lambda: tally.sent == 100)
        broker.pause()
        outbox.put(records(100, prefix="in-flight"))
        assert pump(outbox, lambda: tally.spooled == 100)
        outbox.put(records(50, prefix="later"))
        outbox.tick()
        assert tally.spool_records == 150
        broker.resume()
        assert pump(outbox, lambda: tally.spool_records == 0, timeout_s=30.0)
        outbox.close(flush_timeout_s=3.0)
        got = read_raw(broker.address, topic, until=lambda r: len(r) >= 250)
    keys = [key.decode() for key, _ in got]
    expected = [
        key.decode()
        for key, _ in records(100, "acked") + records(100, "in-flight") + records(50, "later")
    ]
    assert sorted(set(keys)) == sorted(expected)  # every record, at least once
    twice = {key for key in keys if keys.count(key) > 1}
    assert all(key.startswith("in-flight-") for key in twice)
    assert (tally.sent, tally.replayed, tally.failed) == (100, 150, 0)


def test_beyond_the_bound_records_fail_and_the_outbox_holds_back(
    tmp_path: Path, kafka_client: str
) -> None:
    outbox, tally = make_outbox(
        f"127.0.0.1:{free_port()}", "t", tmp_path, kafka_client, max_bytes=1000
    )
    outbox.tick()
    outbox.put(records(40))  # 980 bytes on disk with their headers
    assert outbox.accepting()
    outbox.put(records(40, prefix="more"))
    assert (tally.spooled, tally.failed) == (40, 40)
    assert not outbox.accepting()  # the loop stops reading; the scorer drops and counts
    outbox.close(flush_timeout_s=0.0)


def test_an_orphaned_spool_is_adopted_and_sent(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path, kafka_client: str
) -> None:
    topic = make_topic("scores")
    first, first_tally = make_outbox(f"127.0.0.1:{free_port()}", topic, tmp_path, kafka_client)
    first.put(records(50))
    first.tick()
    assert first_tally.spool_records == 50
    first.close(flush_timeout_s=0.0)  # stopped during an outage: its spool stays
    second, tally = make_outbox(kafka_bootstrap, topic, tmp_path, kafka_client)
    assert tally.spool_records == 50  # adopted when it opened
    assert pump(second, lambda: tally.spool_records == 0)
    second.close(flush_timeout_s=3.0)
    got = read_raw(kafka_bootstrap, topic, until=lambda r: len(r) >= 50)
    assert [key for key, _ in got] == [key for key, _ in records(50)]
    assert list((tmp_path / topic).iterdir()) == []


def test_a_spool_that_cannot_be_created_is_reported_and_records_fail(
    tmp_path: Path, kafka_client: str
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    outbox, tally = make_outbox(f"127.0.0.1:{free_port()}", "t", blocker, kafka_client)
    assert tally.spool_error == (
        f"spool {blocker}/t: cannot create a spool here: [Errno 20] Not a directory: '{blocker}/t'"
    )
    assert not outbox.spooling
    outbox.put(records(3))
    assert (tally.spooled, tally.failed) == (0, 3)
    outbox.close(flush_timeout_s=0.0)


def test_a_record_the_broker_refuses_is_failed_not_spooled(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path, kafka_client: str
) -> None:
    outbox, tally = make_outbox(kafka_bootstrap, make_topic("scores"), tmp_path, kafka_client)
    assert pump(outbox, lambda: outbox.deliverable())
    outbox.put([(b"huge", b"x" * (2 << 20))])  # beyond the producer's 1 MiB request size
    outbox.tick()
    assert (tally.failed, tally.spooled, tally.spool_records) == (1, 0, 0)
    outbox.close(flush_timeout_s=1.0)
