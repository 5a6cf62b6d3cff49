"""Where the sidecar's score records go: the Kafka producer, or the spool until it can take them.

:class:`Outbox` sits between the sidecar loop (:mod:`service.sidecar_loop`) and the producer
(:func:`service.producer.open_producer`, or what the loop's ``ProducerFactory`` builds).  With
a spool (``SpoolConfig``; see ``docs/reliability.md``):

* A record goes straight to the producer when the producer has a broker, room, and every
  older record has been handed to it; otherwise it is appended to this process's spool
  (:class:`service.spool.Spool`), so records are sent in the order they were spooled and new
  ones never overtake spooled ones.
* A record whose delivery fails (broker gone, timeout, connection lost) is appended too, and
  the producer is dropped at once, so everything it held fails together and is spooled in its
  send order (per partition) before anything newer.  A record the broker refuses for what it
  is (too large, invalid) is counted as failed and never spooled: resending cannot help.
* When a producer exists again (broker accepts, topic exists), the spool is replayed in
  chunks of up to ``REPLAY_RECORDS``: a chunk is read, sent, and the spool's cursor moves past
  it once every record in it was acknowledged; a record of the chunk that fails is sent again
  (alone) through the next producer, so a broker failure during replay sends nothing twice.
* Spools left by processes that died (kill -9, a scorer stopped during an outage) are adopted
  at start and every ``_RESCAN_S`` while idle, replayed before this process's own, then removed.
* Beyond ``max_bytes`` (this process's spool plus adopted ones, on disk), records cannot be
  spooled: those of the batch at hand are counted as failed, then :meth:`Outbox.accepting`
  says no (until a tenth of the bound is free again), the loop stops reading, and the scorer
  drops and counts further transactions (``shadowline_kafka_dropped_total``).

Without a spool, a record the producer cannot take or that fails is counted as failed.

Records sent straight go to the producer a batch at a time (``send_records``): their
acknowledgements are counted by the producer and added to ``sent`` at each :meth:`Outbox.tick`,
and only a failed one comes back (as a :class:`service.producer.FailedRecord`).  A replayed
record is sent alone with its place in its chunk as the tag, so the cursor moves only past
records acknowledged.

Counts (:class:`service.tally.Tally`): ``sent`` (acknowledged, sent straight), ``spooled``
(written to the spool), ``replayed`` (acknowledged from the spool), ``failed`` (neither sent
nor spooled); ``spool_records`` and ``spool_bytes`` are what waits.  Every record handed to
:meth:`Outbox.put` ends as exactly one of sent, spooled or failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from service.producer import FailedRecord, ProducerConfig, open_producer, record_refused
from service.spool import HEADER, Entry, Spool, SpoolError
from service.tally import Tally

if TYPE_CHECKING:  # the loop imports this module: the protocol only as a type
    from service.sidecar_loop import ProducerFactory

log = logging.getLogger(__name__)
REPLAY_RECORDS = 1024
REPLAY_BYTES = 4 << 20
_RESCAN_S = 30.0
_UNSENT, _IN_FLIGHT, _DONE = 0, 1, 2
Record = tuple[bytes, bytes]


@dataclass(frozen=True)
class SpoolConfig:
    """Where and how much to spool; picklable, handed to the sidecar process."""

    directory: str
    max_bytes: int
    fsync_interval_s: float = 1.0


class _Replayed(NamedTuple):
    """The tag of a spooled record sent again: its chunk and place in it."""

    chunk: int
    slot: int


class _Chunk:
    """Records read from one spool, sent, waiting for their acknowledgements."""

    def __init__(self, number: int, spool: Spool, entries: list[Entry]) -> None:
        self.number = number
        self.spool = spool
        self.entries = entries
        self.state = [_UNSENT] * len(entries)

    def done(self) -> bool:
        return all(s == _DONE for s in self.state)

    def acked_prefix(self) -> int:
        """How many records from the start of the chunk are done."""
        for n, state in enumerate(self.state):
            if state != _DONE:
                return n
        return len(self.state)


class Outbox:
    """The producer plus the spool of one sidecar (module docstring).  ``put``, ``tick``,
    ``accepting`` and ``close`` are called from the sidecar loop's thread; ``on_acked`` and
    ``on_failed`` from any thread."""

    def __init__(
        self,
        producer: ProducerConfig,
        spool: SpoolConfig | None,
        tally: Tally,
        *,
        factory: ProducerFactory = open_producer,
    ) -> None:
        self._tally = tally
        self._kafka = factory(producer, tally, self)
        self._dir = Path(spool.directory) / producer.topic if spool else None
        self._max_bytes = spool.max_bytes if spool else 0
        self._fsync_s = spool.fsync_interval_s if spool else 0.0
        self._own: Spool | None = None
        self._adopted: list[Spool] = []
        self._lock = threading.Lock()  # the tally and what the callbacks change
        self._failed: deque[Record] = deque()  # live records whose delivery failed
        self._chunk: _Chunk | None = None
        self._chunks = 0
        self._acked = 0  # of the producer's acknowledgements of straight records, in ``sent``
        self._full = False  # a record did not fit the bound; until a tenth of it is free
        self._next_scan = 0.0

    # -- starting -------------------------------------------------------------------------
    def open(self) -> None:
        """Create this process's spool and adopt orphaned ones (no spool configured: no-op).
        A spool directory that cannot be created is logged; the sidecar then runs without."""
        if self._dir is None:
            return
        try:
            self._own = Spool.create(self._dir)
        except SpoolError as exc:
            log.error("%s; records the broker cannot take are counted as failed", exc)
            self._tally.spool_error = str(exc)
            return
        self._adopt(self._dir, self._own)
        self._gauges()

    def _adopt(self, directory: Path, own: Spool) -> None:
        """Adopt every spool in ``directory`` that no live process holds and that has records
        (empty ones are removed)."""
        self._next_scan = time.monotonic() + _RESCAN_S
        held = {own.path, *(spool.path for spool in self._adopted)}
        for path in sorted(directory.iterdir()):
            if path in held or path.name.startswith(".") or not path.is_dir():
                continue
            try:
                spool = Spool.adopt(path)
            except SpoolError as exc:
                log.error("%s; left as it is", exc)
                continue
            if spool is None:
                continue  # its owner lives
            if spool.records == 0:
                spool.close(remove_if_empty=True)
                continue
            log.warning("spool: adopted %s with %d records to send", path, spool.records)
            self._adopted.append(spool)

    # -- the loop's calls ---------------------------------------------------------------------
    @property
    def spooling(self) -> bool:
        """A spool is open (records the producer cannot take are kept, not failed)."""
        return self._own is not None

    def deliverable(self) -> bool:
        """A producer exists, or one was created now."""
        return self._kafka.ensure()

    def accepting(self) -> bool:
        """The loop may read the next batch: the producer can take it, or the spool can."""
        kafka_can = self._kafka.ready and not self._kafka.full()
        if kafka_can and not self._waiting():
            return True
        if self._own is not None and not self._full:
            self._tally.kafka_full = False  # (full() set it) the spool takes the records
            return True
        return self._own is None and kafka_can

    def put(self, records: list[Record]) -> None:
        """Send ``records`` (one batch's) or spool them, in order (module docstring)."""
        kafka = self._kafka
        if not kafka.ready:
            self._keep(records)
        elif self._own is None:
            kafka.send_records(records)
        elif self._waiting() or kafka.full():
            self._keep(records)
        else:  # a whole batch, when there was room before it (KafkaOut.full)
            kafka.send_records(records)

    def tick(self) -> None:
        """Each loop step: drop a failing producer, spool what failed, create a producer when a
        broker is back, replay, move the cursor, fsync on schedule, update the gauges."""
        kafka = self._kafka
        if kafka.broken:
            kafka.close(timeout_s=0.0)  # what it holds fails now, in order, into _failed
        else:
            kafka.check()
        with self._lock:
            failed = list(self._failed)
            self._failed.clear()
        if failed:
            self._keep(failed)
        self._count_acked()
        if not kafka.ready:
            kafka.ensure()
        own, directory = self._own, self._dir
        if own is not None and directory is not None:
            if kafka.ready and not kafka.failing:
                self._replay()
            if not self._pending() and time.monotonic() >= self._next_scan:
                self._adopt(directory, own)
            if self._full and self._room() >= self._max_bytes // 10:
                self._full = False
            try:
                own.sync(self._fsync_s)
            except OSError as exc:
                log.error("spool: fsync of %s failed: %s", own.path, exc)
        self._gauges()

    def write_off(self, n: int) -> None:
        """Count ``n`` records that were never built as failed (stopping without a broker or a
        spool)."""
        with self._lock:
            self._tally.failed += n

    def close(self, flush_timeout_s: float) -> None:
        """Flush the producer (up to ``flush_timeout_s``); spool what it still held; keep the
        spool's acknowledged prefix; close the spools (removing empty ones)."""
        self._kafka.close(timeout_s=flush_timeout_s)
        with self._lock:
            failed = list(self._failed)
            self._failed.clear()
        if failed:
            self._keep(failed)
        self._count_acked()
        chunk, self._chunk = self._chunk, None
        if chunk is not None and chunk.acked_prefix():
            done = chunk.acked_prefix()
            chunk.spool.commit(chunk.entries[done - 1].end, done)
        for spool in self._adopted:
            spool.close(remove_if_empty=True)
        self._adopted = []
        if self._own is not None:
            self._own.close(remove_if_empty=True)
            self._own = None
        self._gauges()

    def _count_acked(self) -> None:
        """Add the straight records the producer saw acknowledged since the last call to
        ``sent`` (this thread is the only one that writes it)."""
        acked = self._kafka.acked
        self._tally.sent += acked - self._acked
        self._acked = acked

    # -- the producer's calls (any thread) -----------------------------------------------------
    def on_acked(self, tag: Hashable) -> None:
        """A replayed record (only those are sent with a tag) was acknowledged."""
        with self._lock:
            if isinstance(tag, _Replayed):
                chunk = self._chunk
                if chunk is not None and chunk.number == tag.chunk:
                    chunk.state[tag.slot] = _DONE
            self._tally.replayed += 1

    def on_failed(self, tag: Hashable, error: BaseException) -> None:
        refused = record_refused(error)
        with self._lock:
            if isinstance(tag, _Replayed):
                chunk = self._chunk
                if chunk is not None and chunk.number == tag.chunk:
                    chunk.state[tag.slot] = _DONE if refused else _UNSENT
                if refused:
                    self._tally.failed += 1
            elif isinstance(tag, FailedRecord) and self._own is not None and not refused:
                self._failed.append(tag)
            else:
                self._tally.failed += 1
        if refused:
            log.error("kafka producer: the broker refuses a record: %r", error)

    # -- the spool ------------------------------------------------------------------------------
    def _spools(self) -> list[Spool]:
        own = [self._own] if self._own is not None else []
        return [*self._adopted, *own]

    def _waiting(self) -> bool:
        """Older records have not been handed to the producer yet: failed ones not spooled
        yet, unread spooled ones, or ones of the replay chunk to send (again).  Until then a
        new record is spooled behind them; after, it may follow them into the producer, which
        keeps their order (no retries) and fails them together."""
        chunk = self._chunk
        return (
            bool(self._failed)
            or (chunk is not None and _UNSENT in chunk.state)
            or any(spool.unread for spool in self._spools())
        )

    def _pending(self) -> bool:
        """Records wait: in a replay chunk, failed and not yet spooled, or in a spool."""
        return (
            self._chunk is not None
            or bool(self._failed)
            or any(spool.records for spool in self._spools())
        )

    def _room(self) -> int:
        """Bytes the spool bound leaves (this process's spool plus adopted ones, on disk)."""
        return self._max_bytes - sum(spool.disk_bytes for spool in self._spools())

    def _keep(self, records: list[Record]) -> None:
        """Spool ``records`` (as many as fit the bound); count the rest as failed."""
        own, fit = self._own, 0
        if own is not None:
            room = self._room()
            for key, value in records:
                room -= HEADER.size + len(key) + len(value)
                if room < 0:
                    break
                fit += 1
            try:
                if fit:
                    own.append(records[:fit])
            except SpoolError as exc:
                log.error("%s; %d records counted as failed", exc, fit)
                fit = 0
            if fit < len(records) and not self._full:
                log.error(
                    "spool: full (%d bytes); records are counted as failed, then dropped",
                    self._max_bytes,
                )
                self._full = True
        with self._lock:
            self._tally.spooled += fit
            self._tally.failed += len(records) - fit

    def _replay(self) -> None:
        """Finish (commit) the current chunk when every record in it is done; read the next;
        send what in it is not sent yet while the producer has room."""
        chunk = self._chunk
        if chunk is not None and chunk.done():
            chunk.spool.commit(chunk.entries[-1].end, len(chunk.entries))
            self._chunk = chunk = None
        if chunk is None:
            chunk = self._next_chunk()
            if chunk is None:
                return
        kafka = self._kafka
        for index, entry in enumerate(chunk.entries):
            if chunk.state[index] != _UNSENT:
                continue
            if kafka.full() or not kafka.ready:
                break
            chunk.state[index] = _IN_FLIGHT
            kafka.send(entry.key, entry.value, _Replayed(chunk.number, index))

    def _next_chunk(self) -> _Chunk | None:
        for spool in list(self._adopted):
            if spool.records == 0:  # replayed whole: remove it
                spool.close(remove_if_empty=True)
                self._adopted.remove(spool)
        for spool in self._spools():
            if spool.unread:
                self._chunks += 1
                entries = spool.read(REPLAY_RECORDS, REPLAY_BYTES)
                self._chunk = _Chunk(self._chunks, spool, entries)
                return self._chunk
        return None

    def _gauges(self) -> None:
        spools = self._spools()
        self._tally.spool_records = sum(spool.records for spool in spools)
        self._tally.spool_bytes = sum(spool.pending_bytes for spool in spools)
