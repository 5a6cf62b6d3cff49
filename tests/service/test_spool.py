"""The spool file on its own: order, segments, the cursor, torn tails, locks (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.spool import HEADER, Spool, SpoolError


def records(n: int, start: int = 0, size: int = 100) -> list[tuple[bytes, bytes]]:
    return [(f"tx-{i}".encode(), bytes([i % 251]) * size) for i in range(start, start + n)]


def read_all(spool: Spool) -> list[tuple[bytes, bytes]]:
    entries = []
    while spool.unread:
        entries.extend(spool.read(7, 1000))
    return [(e.key, e.value) for e in entries]


def only_dir(parent: Path) -> Path:
    [path] = [p for p in parent.iterdir() if p.is_dir()]
    return path


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, segment_bytes=1000)
    sent = records(30)
    spool.append(sent[:2])
    for record in sent[2:]:
        spool.append([record])
    assert spool.records == 30
    assert len(list(spool.path.glob("*.seg"))) > 3  # rotated at 1000 bytes
    assert spool.disk_bytes == 30 * (HEADER.size + 4 + 100) + sum(n >= 10 for n in range(30))
    assert read_all(spool) == sent
    spool.close()


def test_read_returns_at_least_one_record_however_large(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    big = [(b"k", b"x" * 200_000), (b"k2", b"y")]
    spool.append(big)
    first = spool.read(10, 1000)
    assert [(e.key, e.value) for e in first] == big[:1]
    assert [(e.key, e.value) for e in spool.read(10, 1000)] == big[1:]
    spool.close()


def test_the_cursor_survives_and_acknowledged_segments_go(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, segment_bytes=1000)
    for record in records(20):
        spool.append([record])  # 9 to a segment
    entries = spool.read(12, 1 << 20)
    spool.commit(entries[-1].end, len(entries))
    assert spool.records == 8
    assert len(list(spool.path.glob("*.seg"))) == 2  # the wholly acknowledged ones are gone
    spool.close()  # as a process that stops with records left
    adopted = Spool.adopt(only_dir(tmp_path))
    assert adopted is not None
    assert adopted.records == 8
    assert read_all(adopted) == records(8, start=12)
    adopted.close(remove_if_empty=True)
    assert only_dir(tmp_path)  # records are left: the directory stays


def test_a_replayed_adopted_spool_is_removed(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    spool.append(records(5))
    spool.close()
    adopted = Spool.adopt(only_dir(tmp_path))
    assert adopted is not None
    entries = adopted.read(100, 1 << 20)
    adopted.commit(entries[-1].end, len(entries))
    assert adopted.records == 0
    assert adopted.pending_bytes == 0
    adopted.close(remove_if_empty=True)
    assert list(tmp_path.iterdir()) == []


def test_a_torn_tail_is_cut_off(tmp_path: Path) -> None:
    # A crash in the middle of a write leaves part of a record at the end of a segment.
    spool = Spool.create(tmp_path)
    spool.append(records(3))
    spool.close()
    [segment] = only_dir(tmp_path).glob("*.seg")
    whole = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(HEADER.pack(4, 100, 0) + b"tx-3" + b"\0" * 10)
    adopted = Spool.adopt(only_dir(tmp_path))
    assert adopted is not None
    assert adopted.records == 3
    assert segment.stat().st_size == whole
    assert read_all(adopted) == records(3)
    adopted.close()


def test_a_corrupt_record_ends_what_is_read(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    spool.append(records(4))
    spool.close()
    [segment] = only_dir(tmp_path).glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[2 * (HEADER.size + 104) + HEADER.size + 10] ^= 0xFF  # in the third record's value
    segment.write_bytes(bytes(data))
    adopted = Spool.adopt(only_dir(tmp_path))
    assert adopted is not None
    assert read_all(adopted) == records(2)
    adopted.close()


def test_a_live_owners_spool_is_not_adopted(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    spool.append(records(1))
    assert Spool.adopt(spool.path) is None  # its lock is held
    spool.close()
    adopted = Spool.adopt(spool.path)
    assert adopted is not None
    assert Spool.adopt(spool.path) is None  # now the adopter holds it
    adopted.close()


def test_an_unusable_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match=rf"^spool {blocker}: cannot create a spool here: "):
        Spool.create(blocker)
