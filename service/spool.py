"""The local spool: an append-only file of score records the broker could not take yet.

A spool is one directory, ``<spool_dir>/<topic>/<created_ns>-<pid>/``, owned by one sidecar
process (an exclusive ``flock`` on its ``lock`` file, held as long as the process lives):

* ``<seq>.seg`` segments of framed records, appended in order; a new segment starts once the
  last one holds :data:`SEGMENT_BYTES` (16 MiB).  Each record is a 12-byte header (key length, value
  length, CRC-32 of key and value, big-endian) then the key and the value.
* ``cursor``: the position (segment, offset) up to which the broker acknowledged the records,
  replaced atomically (write, then rename).  Reading starts there after a restart; segments
  wholly before it are deleted.

Crash safety.  :meth:`Spool.append` writes each batch with one ``write`` call, so what was
appended survives the death of the process (kill -9, the OOM killer) at once: it is in the
page cache.  It reaches the disk at the next :meth:`Spool.sync`, at most every
``fsync_interval_s`` (the caller's policy, see ``docs/reliability.md``), so a power loss or
kernel crash can cost what was appended in the last interval.  A torn record at the end of a
segment (a crash in the middle of a ``write``) fails its CRC or length check and is cut off
when the spool is opened again.  The cursor is written after the records it covers were
acknowledged, so a crash re-sends (never loses) what was acknowledged since the last cursor.

A spool whose owner died is *adopted* by the next sidecar that finds it unlocked
(:meth:`Spool.adopt`): it replays it, then removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from service.errors import ServiceError

log = logging.getLogger(__name__)

HEADER = struct.Struct(">III")  # key length, value length, crc32(key + value)
SEGMENT_BYTES = 16 << 20
CURSOR = struct.Struct(">QQ")  # segment number, offset in it
_SUFFIX = ".seg"


class SpoolError(ServiceError):
    """The spool directory cannot be created, locked or written; the message names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"spool {path}: {reason}")


@dataclass(frozen=True, order=True)
class Position:
    """A place in a spool: segment number and byte offset in that segment."""

    segment: int
    offset: int


@dataclass(frozen=True)
class Entry:
    """One spooled record and the position just after it."""

    key: bytes
    value: bytes
    end: Position


def _segment_name(seq: int) -> str:
    return f"{seq:012d}{_SUFFIX}"


def _lock(path: Path) -> int | None:
    """An exclusive, non-blocking flock on ``path`` (created if needed): its fd, or None
    when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Spool:
    """One spool directory (see the module docstring).  Not thread-safe: the sidecar loop's
    thread is the only one that calls it."""

    def __init__(self, path: Path, lock_fd: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._segment_bytes = segment_bytes
        self._segments: list[int] = []  # numbers of the segment files, in order
        self._sizes: dict[int, int] = {}
        self._cursor = Position(1, 0)  # acknowledged up to here
        self._read = Position(1, 0)  # read (handed out) up to here
        self.records = 0  # records after the cursor
        self._unread = 0  # records after the read position
        self._tail_fd: int | None = None
        self._dirty = False
        self._last_sync = time.monotonic()

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def create(cls, parent: Path, segment_bytes: int = SEGMENT_BYTES) -> Spool:
        """A new, empty spool of this process under ``parent``.  It is made under a hidden
        name, locked, then renamed, so no other process adopts it half made."""
        try:
            parent.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}"
            hidden = parent / f".{name}"
            hidden.mkdir()
            fd = _lock(hidden / "lock")
            if fd is None:  # nobody else knows the hidden name
                raise SpoolError(hidden, "its lock is held by another process")
            hidden.rename(parent / name)
        except OSError as exc:
            raise SpoolError(parent, f"cannot create a spool here: {exc}") from exc
        return cls(parent / name, fd, segment_bytes)

    @classmethod
    def adopt(cls, path: Path) -> Spool | None:
        """The spool in ``path`` if no live process holds it, recovered (torn tail cut off);
        None while its owner (or another adopter) holds its lock."""
        try:
            fd = _lock(path / "lock")
        except OSError as exc:
            log.warning("spool: cannot lock %s: %s", path, exc)
            return None
        if fd is None:
            return None
        spool = cls(path, fd)
        try:
            spool._recover()
        except OSError as exc:
            spool.close()
            raise SpoolError(path, f"cannot be read: {exc}") from exc
        return spool

    def _recover(self) -> None:
        raw = self._read_file("cursor")
        if len(raw) == CURSOR.size:
            self._cursor = Position(*CURSOR.unpack(raw))
        self._segments = sorted(int(p.name[: -len(_SUFFIX)]) for p in self.path.glob(f"*{_SUFFIX}"))
        for seq in [s for s in self._segments if s < self._cursor.segment]:
            (self.path / _segment_name(seq)).unlink(missing_ok=True)  # wholly acknowledged
        self._segments = [s for s in self._segments if s >= self._cursor.segment]
        if self._segments and self._segments[0] > self._cursor.segment:
            self._cursor = Position(self._segments[0], 0)  # its segment was removed already
        for seq in self._segments:
            start = self._cursor.offset if seq == self._cursor.segment else 0
            self._sizes[seq], count = self._scan(seq, start)
            self.records += count
        self._read = self._cursor
        self._unread = self.records

    def _read_file(self, name: str) -> bytes:
        with contextlib.suppress(FileNotFoundError):
            return (self.path / name).read_bytes()
        return b""

    def _scan(self, seq: int, start: int) -> tuple[int, int]:
        """Check the records of segment ``seq`` from ``start``; cut it at the first torn or
        corrupt record.  Returns its (possibly cut) size and the records after ``start``."""
        path = self.path / _segment_name(seq)
        data = path.read_bytes()
        offset, count = start, 0
        while offset < len(data):
            record = _decode(data, offset)
            if record is None:
                log.error(
                    "spool: %s is torn or corrupt at byte %d of %d; cutting it there",
                    path,
                    offset,
                    len(data),
                )
                os.truncate(path, offset)
                return offset, count
            offset = record[2]
            count += 1
        return len(data), count

    # -- writing --------------------------------------------------------------------------
    @property
    def disk_bytes(self) -> int:
        """Bytes of every segment file (what the size bound counts)."""
        return sum(self._sizes.values())

    @property
    def pending_bytes(self) -> int:
        """Bytes of the records after the cursor."""
        done = self._cursor.offset if self._cursor.segment in self._sizes else 0
        return max(0, self.disk_bytes - done)  # (a segment cut after a crash: below the cursor)

    def append(self, records: list[tuple[bytes, bytes]]) -> None:
        """Append ``records`` with one ``write`` (a new segment first when the last is full).
        Raises :class:`SpoolError` when the write fails (disk full, I/O error)."""
        chunks = []
        for key, value in records:
            chunks.append(HEADER.pack(len(key), len(value), zlib.crc32(value, zlib.crc32(key))))
            chunks.append(key)
            chunks.append(value)
        blob = b"".join(chunks)
        try:
            fd = self._tail()
            written = os.write(fd, blob)
        except OSError as exc:
            raise SpoolError(self.path, f"cannot append: {exc}") from exc
        seq = self._segments[-1]
        if written != len(blob):  # a short write (disk full): drop the partial record
            os.ftruncate(fd, self._sizes[seq])
            raise SpoolError(self.path, f"short write ({written} of {len(blob)} bytes)")
        self._sizes[seq] += written
        self.records += len(records)
        self._unread += len(records)
        self._dirty = True

    def _tail(self) -> int:
        """The fd of the segment to append to, starting a new one when needed."""
        if self._tail_fd is not None and self._sizes[self._segments[-1]] < self._segment_bytes:
            return self._tail_fd
        if self._tail_fd is not None:
            os.fsync(self._tail_fd)  # a full segment goes to disk whole
            os.close(self._tail_fd)
        seq = self._segments[-1] + 1 if self._segments else self._cursor.segment
        self._tail_fd = os.open(
            self.path / _segment_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self._segments.append(seq)
        self._sizes[seq] = 0
        return self._tail_fd

    def sync(self, interval_s: float = 0.0) -> None:
        """fsync what was appended, unless the last sync was less than ``interval_s`` ago."""
        now = time.monotonic()
        if not self._dirty or self._tail_fd is None or now - self._last_sync < interval_s:
            return
        os.fsync(self._tail_fd)
        self._dirty = False
        self._last_sync = now

    # -- reading --------------------------------------------------------------------------
    @property
    def unread(self) -> int:
        """Records not handed out by :meth:`read` yet."""
        return self._unread

    def read(self, max_records: int, max_bytes: int) -> list[Entry]:
        """The next records after the read position (at least one when any is left, however
        large), moving the read position past them."""
        entries: list[Entry] = []
        size = 0
        while self._unread and len(entries) < max_records and size < max_bytes:
            seq, offset = self._read.segment, self._read.offset
            if offset >= self._sizes[seq]:  # this segment is read: on to the next one
                self._read = Position(self._segments[self._segments.index(seq) + 1], 0)
                continue
            data = self._pread(seq, offset, max(max_bytes - size, 1 << 16))
            at = 0
            while at < len(data) and len(entries) < max_records and size < max_bytes:
                record = _decode(data, at)
                if record is None and at == 0:  # one record larger than the read
                    key_len, value_len, _ = HEADER.unpack_from(data)
                    data = self._pread(seq, offset, HEADER.size + key_len + value_len)
                    record = _decode(data, 0)
                if record is None:
                    break  # the rest is beyond what was read
                key, value, at = record
                size += len(key) + len(value)
                entries.append(Entry(key=key, value=value, end=Position(seq, offset + at)))
                self._unread -= 1
            self._read = Position(seq, offset + at)
        return entries

    def _pread(self, seq: int, offset: int, size: int) -> bytes:
        with (self.path / _segment_name(seq)).open("rb") as segment:
            return os.pread(segment.fileno(), min(size, self._sizes[seq] - offset), offset)

    def commit(self, position: Position, count: int) -> None:
        """The broker acknowledged the ``count`` records up to ``position``: move the cursor
        there (atomically on disk) and delete the segments wholly before it."""
        self._cursor = position
        self.records -= count
        for seq in [s for s in self._segments if s < position.segment]:
            self._remove_segment(seq)
        if (
            position.segment == self._segments[-1]
            and position.offset >= self._sizes[position.segment]
            and self._tail_fd is None  # an adopted spool: nothing appends to it
        ):
            self._remove_segment(position.segment)
        tmp = self.path / "cursor.tmp"
        tmp.write_bytes(CURSOR.pack(position.segment, position.offset))
        tmp.replace(self.path / "cursor")

    def _remove_segment(self, seq: int) -> None:
        (self.path / _segment_name(seq)).unlink(missing_ok=True)
        self._segments.remove(seq)
        self._sizes.pop(seq, None)

    # -- closing --------------------------------------------------------------------------
    def close(self, *, remove_if_empty: bool = False) -> None:
        """fsync, release the lock; with ``remove_if_empty``, delete the directory when no
        record is left in it."""
        if self._tail_fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._tail_fd)
            os.close(self._tail_fd)
            self._tail_fd = None
        if remove_if_empty and self.records == 0:
            for child in self.path.iterdir():
                child.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.rmdir()
        os.close(self._lock_fd)


def _decode(data: bytes, offset: int) -> tuple[bytes, bytes, int] | None:
    """The record at ``offset`` in ``data`` and the offset after it, or None when it is
    incomplete or fails its CRC."""
    end = offset + HEADER.size
    if end > len(data):
        return None
    key_len, value_len, crc = HEADER.unpack_from(data, offset)
    stop = end + key_len + value_len
    if stop > len(data):
        return None
    key, value = data[end : end + key_len], data[end + key_len : stop]
    if zlib.crc32(value, zlib.crc32(key)) != crc:
        return None
    return key, value, stop
