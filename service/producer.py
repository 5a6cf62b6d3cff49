"""The Kafka producer of score records, as the sidecar process uses it.

:func:`open_producer` gives the client ``SHADOWLINE_KAFKA_CLIENT`` names: :class:`KafkaOut` on
kafka-python (here) or ``RdKafkaOut`` on confluent-kafka (:mod:`service.producer_rdkafka`, the
default), the same public methods and the same rules below.

kafka-python spends 29 us of Python per record (measured on the 2-core machine with the
``crc32c`` C package; 60-120 us without it), which is why it runs in the sidecar process
(:mod:`service.sidecar_loop`), never in the scorer's.  :class:`KafkaOut` owns the client: it
creates it once a bootstrap server accepts connections and the topic exists, reports each
record's fate to a :class:`DeliveryListener` (:class:`service.outbox.Outbox`), holds at most
``max_in_flight`` records (and ``max_in_flight_bytes``) unacknowledged, and drops the client
(every record it holds then fails) when told to, when the broker stops accepting connections
while records wait, or when nothing was acknowledged for ``restart_after_s`` while it held
records.

Two ways to hand records over.  :meth:`KafkaOut.send` takes one record with a tag, and the
listener hears of that tag once, acknowledged or failed (the spool's replays, which must know
which record came back).  :meth:`KafkaOut.send_records` takes a batch of untagged records
(every record sent straight): an acknowledged one is only counted (:attr:`KafkaOut.acked`,
which the outbox reads on its own thread), a failed one is given back to the listener as a
:class:`FailedRecord`.  Why: reporting each acknowledgement to the listener (a closure and a
tag made per record, two locks per answer, taken by two threads in turn) cost the sidecar
more CPU per record than building, encoding and producing it.  The sidecar's loop alone on one
core, against a real broker, spent 22-29 us a record with those reports and 9-12 us this way
(unpickling, building and encoding included).  Under the bench's pinned load the sidecar's
share fell less, from 32-46 to 28-40 us a request (four interleaved pairs on a slow 2-core
VM): there its cost per batch (waking up, reading the pipe) weighs more than its cost per
record.

In-flight counts live in a :class:`_Ledger` per client: records and bytes handed to it (written
by the thread that sends) and answered (by the thread that hears the answers, under a lock
that only answers take), so the sending thread never waits on the answering one.  A dropped
client keeps its own ledger: its late answers are still reported, and never count against its
successor's limits.

The client never retries by itself (``retries=0``): a failed record goes back to its listener
at once, which spools it and sends it again through a new client.  A client that lived through
a broker restart is never reused: an idempotent one never recovers (its producer id is gone),
and the stand-in broker acknowledges and drops what is sent to a topic it lost.  It also
never creates the topic: a topic made by a produce request gets the broker's default layout.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from service.tally import Tally

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerConfig:
    """What the producer needs; picklable, so it can be handed to a spawned process."""

    servers: tuple[str, ...]
    topic: str
    max_in_flight: int
    max_in_flight_bytes: int = 32 << 20
    linger_ms: int = 50
    delivery_timeout_ms: int = 30_000
    restart_after_s: float = 10.0
    # "all" waits for min.insync.replicas copies, 1 for the leader's (docs/production.md).
    acks: int | str = 1
    # Security options from registry.connections.kafka_options, passed to the client as they
    # are; out of the repr, because they may hold the SASL password.
    client_options: dict[str, Any] = field(default_factory=dict, repr=False)
    # Which client library sends the records (SHADOWLINE_KAFKA_CLIENT; open_producer).
    client: str = "confluent-kafka"


# While records wait unacknowledged this long, check that the broker still accepts
# connections (at most every _PROBE_EVERY_S); if not, drop the client at once rather than let
# the records wait out the delivery timeout.
_PROBE_AFTER_S = 1.0
_PROBE_EVERY_S = 0.5
# Least time between two attempts to create a client: while no broker accepts connections (the
# sidecar's loop asks at every step), and once one does: each attempt asks for its topics and
# can block the loop for up to 2 s when the broker accepts but does not answer, so the wait
# doubles after each failed attempt, up to _RETRY_CREATE_MAX_S.
_RETRY_CONNECT_S = 0.1
_RETRY_CREATE_S = 1.0
_RETRY_CREATE_MAX_S = 10.0


# Errors about the record itself (kafka.errors names): sending it again cannot succeed, and
# they say nothing about the broker.
_REFUSED = frozenset(
    {"MessageSizeTooLargeError", "RecordListTooLargeError", "InvalidRecordError",
     "CorruptRecordError"}
)  # fmt: skip


def record_refused(error: BaseException) -> bool:
    """The record itself was refused (too large, invalid), not the broker unavailable."""
    return isinstance(error, RecordRefused) or type(error).__name__ in _REFUSED


class CannotConnect(Exception):
    """No client could be created (the reason is the message)."""


class RecordRefused(Exception):
    """The client or the broker refused a record for what it is (too large, invalid): sending
    it again cannot succeed."""


class FailedRecord(NamedTuple):
    """A record handed over with :meth:`KafkaOut.send_records` that failed: the tag the
    listener's ``on_failed`` is given for it."""

    key: bytes
    value: bytes


class DeliveryListener(Protocol):
    """Told the fate of each record handed to :meth:`KafkaOut.send`, once, from any thread; and
    of each record of :meth:`KafkaOut.send_records` that failed (as a :class:`FailedRecord`)."""

    def on_acked(self, tag: Hashable) -> None: ...

    def on_failed(self, tag: Hashable, error: BaseException) -> None: ...


def broker_accepts(servers: tuple[str, ...] | list[str], timeout_s: float = 1.0) -> bool:
    """True if one bootstrap server accepts a TCP connection.

    Checked before creating a client: kafka-python retries a refused bootstrap and leaks the
    socket (a ResourceWarning), and its constructor blocks until it has bootstrapped.
    """
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
        except OSError:
            continue
        return True
    return False


def topic_exists(
    servers: tuple[str, ...],
    topic: str,
    timeout_s: float = 2.0,
    client_options: Mapping[str, Any] | None = None,
) -> bool:
    """True if the broker lists ``topic`` (a metadata request that never creates topics);
    ``client_options`` are the Kafka security settings (``registry.connections.kafka_options``).

    Raises ``KafkaError``/``OSError`` when the broker does not answer."""
    from kafka import KafkaAdminClient

    timeout_ms = int(timeout_s * 1000)  # a broker that accepts but never answers: 30 s else
    admin = KafkaAdminClient(
        bootstrap_servers=list(servers),
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        **(client_options or {}),
    )
    try:
        return topic in set(admin.list_topics())
    finally:
        admin.close()


class _Ledger:
    """Records and bytes handed to one client, and answered (acknowledged or failed)."""

    __slots__ = ("answered", "answered_bytes", "sent", "sent_bytes")

    def __init__(self) -> None:
        self.sent = self.sent_bytes = 0  # by the sending thread
        self.answered = self.answered_bytes = 0  # by the answering one, under KafkaOut._lock

    def in_flight(self) -> tuple[int, int]:
        """Records and bytes not answered yet."""
        return self.sent - self.answered, self.sent_bytes - self.answered_bytes


class KafkaOut:
    """The kafka-python producer of one sidecar (see the module docstring).  ``send``,
    ``send_records``, ``ensure``, ``check`` and ``close`` are called from one thread; delivery
    callbacks come from kafka-python's sender thread (or from the calls themselves)."""

    def __init__(self, config: ProducerConfig, tally: Tally, listener: DeliveryListener) -> None:
        self._config = config
        self._tally = tally
        self._listener = listener
        self._lock = threading.Lock()  # taken by answers only (the ledger, acked)
        self._producer: Any = None
        self._ledger = _Ledger()  # the current client's
        # Records of send_records acknowledged, by every client this object had.
        self.acked = 0
        # The last acknowledgement, or when records began to wait after none did: check()
        # measures the quiet from here, so an idle spell is never taken for a dead client.
        self._last_ok = time.monotonic()
        self._next_probe = 0.0
        self._next_create = 0.0
        self._create_wait = _RETRY_CREATE_S
        self._failing = False
        self._broken = False  # a record of this client failed since it was created

    @property
    def ready(self) -> bool:
        """A client exists (the broker accepted a connection once)."""
        return self._producer is not None

    def full(self) -> bool:
        """It holds its limit of unacknowledged records or bytes (the caller waits).  A batch
        of :meth:`send_records` is taken whole when there was room before it, so the limits
        can be passed by one batch."""
        config = self._config
        records, size = self._ledger.in_flight()
        self._tally.in_flight_bytes = size
        full = records >= config.max_in_flight or size >= config.max_in_flight_bytes
        self._tally.kafka_full = full
        return full

    @property
    def failing(self) -> bool:
        """The last record that came back failed (and no later one was acknowledged)."""
        return self._failing

    @property
    def broken(self) -> bool:
        """A record sent through the current client failed (late answers of a client already
        dropped do not count): the caller drops it, so what it holds fails in order."""
        return self._broken and self._producer is not None

    def send(self, key: bytes, value: bytes, tag: Hashable) -> None:
        """Hand one record to the client; the listener hears of ``tag`` when the broker
        answers, or at once when the client refuses it."""
        size = len(key) + len(value)
        ledger = self._admit(1, size)
        try:
            future = self._producer.send(self._config.topic, key=key, value=value)
        except Exception as exc:  # KafkaError (too large, no metadata) or a closed producer
            self._delivered(ledger, size, tag, exc)
            return
        future.add_callback(lambda _meta: self._delivered(ledger, size, tag, None))
        future.add_errback(lambda exc: self._delivered(ledger, size, tag, exc))

    def send_records(self, records: list[tuple[bytes, bytes]]) -> None:
        """Hand ``records`` to the client: each acknowledged one is counted in :attr:`acked`,
        each failed one is given back to the listener as a :class:`FailedRecord`."""
        ledger = self._admit(len(records), sum(len(k) + len(v) for k, v in records))
        topic = self._config.topic
        for key, value in records:
            size = len(key) + len(value)
            try:
                future = self._producer.send(topic, key=key, value=value)
            except Exception as exc:  # as in send()
                self._answered(ledger, size, exc, key, value)
                continue
            future.add_callback(lambda _meta, n=size: self._answered(ledger, n, None, b"", b""))
            future.add_errback(
                lambda exc, n=size, k=key, v=value: self._answered(ledger, n, exc, k, v)
            )

    def _admit(self, records: int, size: int) -> _Ledger:
        """Count ``records`` of ``size`` bytes in flight on the current client (both clients'
        ``send`` and ``send_records``); its ledger, which their answers are counted in."""
        ledger = self._ledger
        if ledger.sent == ledger.answered:
            self._last_ok = time.monotonic()  # the quiet clock of check() starts now
        ledger.sent += records
        ledger.sent_bytes += size
        self._tally.in_flight_bytes = ledger.sent_bytes - ledger.answered_bytes
        return ledger

    def _delivered(
        self, ledger: _Ledger, size: int, tag: Hashable, error: BaseException | None
    ) -> None:
        """The answer for a record of :meth:`send`."""
        with self._lock:
            ledger.answered += 1
            ledger.answered_bytes += size
        if error is None:
            self._listener.on_acked(tag)
        else:
            self._listener.on_failed(tag, error)
        self._judge(ledger, error)

    def _answered(
        self, ledger: _Ledger, size: int, error: BaseException | None, key: bytes, value: bytes
    ) -> None:
        """The answer for a record of :meth:`send_records` (its key and value matter only when
        it failed)."""
        with self._lock:
            ledger.answered += 1
            ledger.answered_bytes += size
            if error is None:
                self.acked += 1
        if error is not None:
            self._listener.on_failed(FailedRecord(key, value), error)
        self._judge(ledger, error)

    def _judge(self, ledger: _Ledger, error: BaseException | None) -> None:
        """What an answer says of the client, unless it came from one already dropped."""
        if ledger is not self._ledger:
            return  # an old client's late answer says nothing about the current one
        if error is None:
            self._last_ok = time.monotonic()
            self._failing = False
        elif not record_refused(error):
            if not self._failing:
                log.warning("kafka producer: delivery to %s failed: %r", self._config.topic, error)
            self._failing = True
            self._broken = True
        self._tally.connected = self._producer is not None and not self._failing

    def ensure(self) -> bool:
        """Create the client if there is none, a broker accepts and the topic exists; True
        when one exists."""
        if self._producer is not None:
            return True
        if time.monotonic() < self._next_create:
            return False
        if not broker_accepts(self._config.servers):
            self._next_create = time.monotonic() + _RETRY_CONNECT_S
            return False
        from kafka.errors import KafkaError

        config = self._config
        self._next_create = time.monotonic() + self._create_wait
        self._create_wait = min(2 * self._create_wait, _RETRY_CREATE_MAX_S)
        try:
            if not topic_exists(config.servers, config.topic, client_options=config.client_options):
                log.warning("kafka producer: the broker has no topic %s (yet)", config.topic)
                return False
            self._producer = self._connect()
        except (CannotConnect, KafkaError, OSError) as exc:  # KafkaError, OSError: the topic check
            log.warning("kafka producer: cannot connect to %s: %s", config.servers, exc)
            return False
        self._last_ok = time.monotonic()
        self._failing = self._broken = False
        self._create_wait = _RETRY_CREATE_S
        self._tally.connected = True
        self._tally.restarts += 1
        return True

    def _connect(self) -> Any:
        """A new kafka-python client; :class:`CannotConnect` when there is none to be had."""
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        config = self._config
        try:
            return KafkaProducer(
                bootstrap_servers=list(config.servers),
                acks=config.acks,
                enable_idempotence=False,  # an idempotent producer never recovers a restart
                retries=0,  # a failed record is spooled and sent again by a new client
                allow_auto_create_topics=False,
                linger_ms=config.linger_ms,
                batch_size=256 * 1024,  # fewer sender wake-ups per record
                max_block_ms=100,
                delivery_timeout_ms=config.delivery_timeout_ms,
                request_timeout_ms=min(10_000, config.delivery_timeout_ms // 2),
                # After a lost connection, wait before reconnecting: a broker restarted at once
                # (`shadowline stack up`) has its topics again by then, and check() has
                # usually dropped this client first.
                reconnect_backoff_ms=1000,
                reconnect_backoff_max_ms=1000,
                bootstrap_timeout_ms=2000,
                **config.client_options,
            )
        except (KafkaError, OSError) as exc:
            raise CannotConnect(str(exc)) from exc

    def check(self) -> None:
        """Drop the client (its records fail) when it holds records and either nothing was
        acknowledged for ``restart_after_s`` while they waited or, after a second without an
        acknowledgement, no broker accepts a connection."""
        records, self._tally.in_flight_bytes = self._ledger.in_flight()
        if self._producer is None or records == 0:
            return
        now = time.monotonic()
        quiet = now - self._last_ok
        if quiet > self._config.restart_after_s:
            log.warning("kafka producer: nothing acknowledged for %.0fs; recreating it", quiet)
            self.close(timeout_s=0.0)
        elif quiet > _PROBE_AFTER_S and now >= self._next_probe:
            self._next_probe = now + _PROBE_EVERY_S
            if not broker_accepts(self._config.servers, timeout_s=0.5):
                log.warning("kafka producer: the broker is gone; dropping the client")
                self.close(timeout_s=0.0)

    def close(self, timeout_s: float) -> None:
        """Flush (up to ``timeout_s``) and close.  What is still unacknowledged then is
        aborted: the listener hears of each such record as failed before this returns
        (unless kafka-python's sender does not stop within 5 s)."""
        producer, self._producer = self._producer, None
        self._tally.connected = False
        if producer is None:
            return
        self._flush(producer, timeout_s)
        self._ledger = _Ledger()  # what the old client still holds no longer counts
        self._tally.in_flight_bytes = 0
        self._abort(producer)

    def _flush(self, producer: Any, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for what ``producer`` holds to be acknowledged."""
        try:
            if timeout_s > 0:
                producer.flush(timeout=timeout_s)
        except Exception as exc:  # KafkaTimeoutError: what is left is aborted next
            log.warning("kafka producer: flush incomplete: %s", exc)

    def _abort(self, producer: Any) -> None:
        """Stop ``producer`` now; each record it still holds is reported failed."""
        close_client(producer)


def close_client(producer: Any) -> None:
    """Close a kafka-python producer now, whatever it holds.

    ``close(timeout=0)`` flushes first and, with records pending, raises before it stops its
    sender thread (kafka-python 3.0.12): the thread and its buffers would outlive the producer.
    So on that error the sender is force-closed (its pending batches fail, which their callbacks
    report) and ``close`` is called again, with nothing left to flush.
    """
    try:
        producer.close(timeout=0)
        return
    except Exception as exc:  # KafkaTimeoutError with records pending
        log.info("kafka producer: closing with records pending (%s); aborting them", exc)
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5.0)
    try:
        producer.close(timeout=0)
    except Exception as exc:  # a producer that cannot even do this is left to the collector
        log.warning("kafka producer: close failed: %s", exc)


KAFKA_CLIENTS = ("confluent-kafka", "kafka-python")


def open_producer(config: ProducerConfig, tally: Tally, listener: DeliveryListener) -> KafkaOut:
    """The producer of ``config.client``: :class:`KafkaOut` (kafka-python) or
    :class:`service.producer_rdkafka.RdKafkaOut` (confluent-kafka, librdkafka), the same
    public methods and the same reports to ``listener``.  Nothing connects yet
    (:meth:`KafkaOut.ensure` does)."""
    if config.client == "kafka-python":
        return KafkaOut(config, tally, listener)
    if config.client == "confluent-kafka":
        from service.producer_rdkafka import RdKafkaOut

        return RdKafkaOut(config, tally, listener)
    raise ValueError(f"unknown Kafka client {config.client!r}; one of {', '.join(KAFKA_CLIENTS)}")
