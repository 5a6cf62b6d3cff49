"""The Kafka producer of score records, as the sidecar process uses it.

kafka-python spends 29 us of Python per record (measured on the 2-core machine with the
``crc32c`` C package; 60-120 us without it), which is why it runs in the sidecar process
(:mod:`service.sidecar_loop`), never in the scorer's.  :class:`KafkaOut` owns the client: it
creates it once a bootstrap server accepts connections, counts deliveries into a
:class:`service.tally.Tally`, holds at most ``max_in_flight`` records (and
``max_in_flight_bytes``) unacknowledged, and recreates the client when nothing was delivered
for ``restart_after_s`` while deliveries fail.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

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


class KafkaOut:
    """The kafka-python producer of one sidecar; counts go to ``tally`` (see the module
    docstring).  ``send`` is called from one thread; delivery callbacks come from
    kafka-python's sender thread."""

    def __init__(self, config: ProducerConfig, tally: Tally) -> None:
        self._config = config
        self._tally = tally
        self._lock = threading.Lock()
        self._producer: Any = None
        self._generation = 0
        self._in_flight = 0
        self._last_ok = time.monotonic()
        self._failing = False

    @property
    def ready(self) -> bool:
        """A client exists (the broker accepted a connection once)."""
        return self._producer is not None

    def full(self) -> bool:
        """It holds its limit of unacknowledged records or bytes (the caller waits)."""
        config = self._config
        full = (
            self._in_flight >= config.max_in_flight
            or self._tally.in_flight_bytes >= config.max_in_flight_bytes
        )
        self._tally.kafka_full = full
        return full

    def send(self, key: bytes, value: bytes) -> None:
        """Hand one record to the client; its fate is counted when the broker answers."""
        generation, size = self._generation, len(key) + len(value)
        with self._lock:
            self._in_flight += 1
            self._tally.in_flight_bytes += size
        try:
            future = self._producer.send(self._config.topic, key=key, value=value)
        except Exception as exc:  # KafkaError (buffer full, no metadata) or a closed producer
            self._delivered(generation, size, ok=False, error=exc)
            return
        future.add_callback(lambda _meta: self._delivered(generation, size, ok=True))
        future.add_errback(lambda exc: self._delivered(generation, size, ok=False, error=exc))

    def write_off(self, n: int) -> None:
        """Count ``n`` records that never reached the client as failed."""
        with self._lock:
            self._tally.failed += n

    def _delivered(self, generation: int, size: int, *, ok: bool, error: object = None) -> None:
        tally = self._tally
        with self._lock:
            # A closed producer's records no longer count against the limits (close() reset
            # them); their fate is still counted, once, here.
            if generation == self._generation:
                self._in_flight -= 1
                tally.in_flight_bytes -= size
            if ok:
                tally.sent += 1
            else:
                tally.failed += 1
        if generation != self._generation:
            return  # an old producer's late answer says nothing about the current one
        if ok:
            self._last_ok = time.monotonic()
            self._failing = False
        else:
            if not self._failing:
                log.warning("kafka producer: delivery to %s failed: %s", self._config.topic, error)
            self._failing = True
        tally.connected = self._producer is not None and not self._failing

    def ensure(self) -> bool:
        """Create the client if there is none and a broker accepts; True when one exists."""
        if self._producer is not None:
            return True
        if not broker_accepts(self._config.servers):
            return False
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        config = self._config
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=list(config.servers),
                acks=config.acks,
                enable_idempotence=False,  # an idempotent producer never recovers a restart
                linger_ms=config.linger_ms,
                batch_size=256 * 1024,  # fewer sender wake-ups per record
                max_block_ms=100,
                delivery_timeout_ms=config.delivery_timeout_ms,
                request_timeout_ms=min(10_000, config.delivery_timeout_ms // 2),
                reconnect_backoff_max_ms=1000,
                bootstrap_timeout_ms=2000,
                **config.client_options,
            )
        except (KafkaError, OSError) as exc:
            log.warning("kafka producer: cannot connect to %s: %s", config.servers, exc)
            return False
        self._last_ok = time.monotonic()
        self._failing = False
        self._tally.connected = True
        self._tally.restarts += 1
        return True

    def maybe_restart(self) -> None:
        """Drop a client that has delivered nothing for ``restart_after_s`` while failing."""
        stale = time.monotonic() - self._last_ok > self._config.restart_after_s
        if self._producer is not None and self._failing and stale:
            log.warning("kafka producer: nothing delivered for %.0fs; recreating it",
                        self._config.restart_after_s)  # fmt: skip
            self.close(timeout_s=0.0)

    def close(self, timeout_s: float) -> None:
        """Flush (up to ``timeout_s``) and close.  What is still unacknowledged then is
        aborted: each such record's callback counts it as failed."""
        producer, self._producer = self._producer, None
        self._tally.connected = False
        if producer is None:
            return
        try:
            if timeout_s > 0:
                producer.flush(timeout=timeout_s)
        except Exception as exc:  # KafkaTimeoutError: what is left is aborted below
            log.warning("kafka producer: flush incomplete: %s", exc)
        with self._lock:
            self._generation += 1
            self._in_flight = 0
            self._tally.in_flight_bytes = 0
        close_client(producer)


def close_client(producer: Any) -> None:
    """Close a kafka-python producer now, whatever it holds.

    ``close(timeout=0)`` flushes first and, with records pending, raises before it stops its
    sender thread (kafka-python 3.0.12): the thread and its buffers would outlive the producer.
    So on that error the sender is force-closed (its pending batches fail, which their callbacks
    count) and ``close`` is called again, with nothing left to flush.
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
