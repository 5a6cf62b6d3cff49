"""The sidecar's Kafka producer on confluent-kafka (librdkafka): ``SHADOWLINE_KAFKA_CLIENT``.

kafka-python builds, checksums and partitions every record in Python: ~30 us of the sidecar's
CPU a record (its sender thread included), as much as the scorer's whole request path spends
above the bare floor server.  Pinned on one core with the scorer, that alone kept the scorer
under the throughput bound of the performance issue.  librdkafka does that work in C, on its
own threads; what is left in Python is one ``produce`` call and one delivery callback a record.

:class:`RdKafkaOut` keeps :class:`service.producer.KafkaOut`'s contract (its limits, its
reports to the listener, its restart and outage rules) and only swaps the client:

* Delivery reports come from a thread of this class that polls the client (librdkafka calls
  them only from ``poll``/``flush``), as kafka-python's come from its sender thread.
* ``retries`` are off, as with kafka-python: a failed record goes back to the listener, which
  spools it and sends it again through a new client.
* librdkafka reconnects by itself; a client that lost every broker connection
  (``_ALL_BROKERS_DOWN``) is reported ``broken``, so the caller drops it: a client that lived
  through a broker restart is never reused (module docstring of :mod:`service.producer`).
* Closing purges what the client still holds; each purged record is reported failed before
  :meth:`close` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from typing import Any

from service.producer import CannotConnect, KafkaOut, RecordRefused

log = logging.getLogger(__name__)
# librdkafka's own log lines go through Python logging rather than straight to stderr.
_LIBRDKAFKA_LOG = logging.getLogger("service.producer.librdkafka")
_POLL_S = 0.05
_ABORT_WAIT_S = 5.0

# kafka-python's security options (registry.connections.kafka_options) under librdkafka's
# names; ssl_check_hostname is translated on its own.
_OPTION_NAMES = {
    "security_protocol": "security.protocol",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
}


def librdkafka_options(options: dict[str, Any]) -> dict[str, Any]:
    """kafka-python client options as librdkafka configuration; ValueError naming an option
    that has no counterpart."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "ssl_check_hostname":
            out["ssl.endpoint.identification.algorithm"] = "https" if value else "none"
        elif name in _OPTION_NAMES:
            out[_OPTION_NAMES[name]] = value
        else:
            raise ValueError(f"Kafka client option {name!r} has no librdkafka counterpart")
    return out


def _refused_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError

    # INVALID_MSG is the broker's CORRUPT_MESSAGE; MSG_SIZE_TOO_LARGE is the client's own
    # refusal too.
    codes = (
        "MSG_SIZE_TOO_LARGE",
        "INVALID_MSG",
        "INVALID_MSG_SIZE",
        "INVALID_RECORD",
        "RECORD_LIST_TOO_LARGE",
    )
    return frozenset(getattr(KafkaError, code) for code in codes)


def delivery_error(error: Any, refused: frozenset[int]) -> BaseException:
    """A librdkafka ``KafkaError`` as the exception the listener is given:
    :class:`RecordRefused` when it is about the record itself."""
    from confluent_kafka import KafkaException

    if error.code() in refused:
        return RecordRefused(error.str())
    return KafkaException(error)


class RdKafkaOut(KafkaOut):
    """:class:`KafkaOut` on a confluent-kafka ``Producer`` (module docstring).  ``send``,
    ``ensure``, ``check`` and ``close`` are called from one thread; delivery reports come from
    this object's polling thread (or from ``send`` and ``close`` themselves)."""

    _refused: frozenset[int] = frozenset()
    _report: Any = None  # the delivery callback of send_records' records, one per client
    _poller: threading.Thread | None = None
    _stop_polling: threading.Event | None = None

    def send(self, key: bytes, value: bytes, tag: Hashable) -> None:
        size = len(key) + len(value)
        ledger = self._admit(1, size)
        delivered, refused = self._delivered, self._refused

        def report(error: Any, _message: Any) -> None:
            delivered(ledger, size, tag, None if error is None else delivery_error(error, refused))

        try:
            self._producer.produce(self._config.topic, value, key, on_delivery=report)
        except Exception as exc:  # BufferError, KafkaException: see _refusal
            self._delivered(ledger, size, tag, self._refusal(exc))

    def send_records(self, records: list[tuple[bytes, bytes]]) -> None:
        # One callback for every record of this client (made in _connect): no closure or tag
        # per record, and the record's key and value come back with a failure.
        ledger = self._admit(len(records), sum(len(k) + len(v) for k, v in records))
        produce, topic, report = self._producer.produce, self._config.topic, self._report
        for key, value in records:
            try:
                produce(topic, value, key, on_delivery=report)
            except Exception as exc:  # as in send()
                self._answered(ledger, len(key) + len(value), self._refusal(exc), key, value)

    def _refusal(self, exc: Exception) -> BaseException:
        """What ``produce`` raised, as the record's failure: BufferError (its queue is full;
        our own limits come first), KafkaException (too large, unknown topic, a closed
        client)."""
        error = exc.args[0] if exc.args and hasattr(exc.args[0], "code") else None
        return exc if error is None else delivery_error(error, self._refused)

    def _connect(self) -> Any:
        from confluent_kafka import KafkaError, KafkaException, Producer

        config = self._config
        self._refused = refused = _refused_codes()
        ledger, answered = self._ledger, self._answered

        def on_error(error: Any) -> None:
            # Every broker connection is gone (a broker restart looks the same): the caller
            # drops this client rather than let librdkafka reconnect it.
            if error.code() == KafkaError._ALL_BROKERS_DOWN and ledger is self._ledger:
                log.warning("kafka producer: %s", error.str())
                self._broken = True

        def report(error: Any, message: Any) -> None:  # a record of send_records answered
            if error is None:  # len(message) is its value's: no copy of the value
                answered(ledger, len(message) + len(message.key()), None, b"", b"")
                return
            key, value = message.key(), message.value()
            answered(ledger, len(key) + len(value), delivery_error(error, refused), key, value)

        self._report = report

        try:
            options = librdkafka_options(config.client_options)
            producer = Producer(
                {
                    "bootstrap.servers": ",".join(config.servers),
                    "acks": str(config.acks),
                    "enable.idempotence": False,  # an idempotent producer never recovers a restart
                    "retries": 0,  # a failed record is spooled and sent again by a new client
                    "allow.auto.create.topics": False,
                    # The Java client's (and kafka-python's) partitioner: a transaction's score
                    # lands in the partition its label does (co-partitioned topics).
                    "partitioner": "murmur2_random",
                    "linger.ms": config.linger_ms,
                    # The largest record kafka-python takes (its max_request_size default).
                    "message.max.bytes": 1_048_576,
                    "message.timeout.ms": config.delivery_timeout_ms,
                    "request.timeout.ms": min(10_000, config.delivery_timeout_ms // 2),
                    # Our limits (KafkaOut.full) come first; the client's queue only backs them.
                    "queue.buffering.max.messages": max(config.max_in_flight + 1024, 100_000),
                    "reconnect.backoff.ms": 1000,
                    "reconnect.backoff.max.ms": 1000,
                    "error_cb": on_error,
                    "logger": _LIBRDKAFKA_LOG,
                    **options,
                }
            )
        except (KafkaException, ValueError) as exc:
            raise CannotConnect(str(exc)) from exc
        stop = threading.Event()
        self._stop_polling = stop
        self._poller = threading.Thread(
            target=_poll, args=(producer, stop), name="kafka-delivery", daemon=True
        )
        self._poller.start()
        return producer

    def _stop_poller(self) -> None:
        poller, stop = self._poller, self._stop_polling
        self._poller = self._stop_polling = None
        if poller is not None and stop is not None:
            stop.set()
            poller.join()

    def _flush(self, producer: Any, timeout_s: float) -> None:
        self._stop_poller()  # from here on, reports come from this thread
        if timeout_s > 0 and producer.flush(timeout_s):
            log.warning("kafka producer: flush incomplete: %d records left", len(producer))

    def _abort(self, producer: Any) -> None:
        self._stop_poller()
        producer.purge()  # queued and in-flight records fail (_PURGE_QUEUE/_PURGE_INFLIGHT)
        deadline = time.monotonic() + _ABORT_WAIT_S
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0.01)
        if len(producer):
            log.warning("kafka producer: %d records not reported after closing", len(producer))


def _poll(producer: Any, stop: threading.Event) -> None:
    """Serve ``producer``'s delivery reports until ``stop`` is set."""
    while not stop.is_set():
        producer.poll(_POLL_S)
