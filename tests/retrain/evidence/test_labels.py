"""Label files: JSON Lines and CSV accepted, every bad line refused by line and field."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry.records import LabelRecord
from retrain.evidence.labels import LabelFileError, read_labels

NOV_20 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_lines_with_unix_or_iso_times_and_a_default_source(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "labels.jsonl",
        '{"transaction_id": "tx-1", "is_fraud": true, "label_time": 1795000000, '
        '"source": "chargeback"}\n'
        "\n"
        '{"transaction_id": "tx-2", "is_fraud": false, "label_time": "2026-11-20T10:00:00Z"}\n'
        '{"schema_version": 1, "transaction_id": "tx-3", "is_fraud": 0, '
        '"label_time": "2026-11-20T10:00:00"}\n',
    )
    assert read_labels(path, source="review") == [
        LabelRecord(
            transaction_id="tx-1", is_fraud=True, label_time=1795000000.0, source="chargeback"
        ),
        LabelRecord(transaction_id="tx-2", is_fraud=False, label_time=NOV_20, source="review"),
        LabelRecord(transaction_id="tx-3", is_fraud=False, label_time=NOV_20, source="review"),
    ]


def test_csv_with_a_header(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "labels.CSV",
        "\ufefftransaction_id,is_fraud,label_time,source\n"
        "tx-1,true,1795000000.5,chargeback\n"
        ",,,\n"
        "tx-2,0,2026-11-20T11:00:00+01:00,\n",
    )
    assert read_labels(path) == [
        LabelRecord(
            transaction_id="tx-1", is_fraud=True, label_time=1795000000.5, source="chargeback"
        ),
        LabelRecord(transaction_id="tx-2", is_fraud=False, label_time=NOV_20, source="manual"),
    ]


def test_every_bad_json_line_is_named_with_its_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "labels.jsonl",
        '{"transaction_id": "ok", "is_fraud": true, "label_time": 1}\n'
        '{"transaction_id": "tx-2", "is_fraud": "maybe", "label_time": 1}\n'
        '{"transaction_id": "", "is_fraud": true, "label_time": "yesterday"}\n'
        "[1, 2]\n"
        "{not json\n"
        '{"transaction_id": "tx-6", "is_fraud": true, "label_time": true, "amount": 5}\n'
        '{"transaction_id": "tx-7", "is_fraud": true}\n',
    )
    with pytest.raises(LabelFileError) as caught:
        read_labels(path)
    message = str(caught.value)
    assert message.startswith(f"label file {path} has 6 bad line(s): line 2: is_fraud: ")
    assert (
        "; line 3: transaction_id: String should have at least 1 character; label_time: Value "
        "error, 'yesterday' is neither unix seconds nor an ISO 8601 time "
        "(e.g. 2026-11-20T10:00:00Z); line 4: not a JSON object; line 5: not valid JSON ("
    ) in message
    assert (
        "; line 6: label_time: Value error, must be unix seconds or an ISO 8601 time, not a "
        "boolean; amount: Extra inputs are not permitted; line 7: label_time: Field required"
    ) in message


def test_bad_csv_rows_name_their_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "labels.csv",
        "transaction_id,is_fraud,label_time\ntx-1,true,nan\ntx-2,yes,-5\ntx-3,true,1,extra\n",
    )
    with pytest.raises(LabelFileError) as caught:
        read_labels(path)
    assert str(caught.value) == (
        f"label file {path} has 3 bad line(s): "
        "line 2: label_time: Value error, nan is not a finite number of seconds; "
        "line 3: label_time: Input should be greater than or equal to 0; "
        "line 4: the row has more cells than the header"
    )


def test_csv_rows_the_csv_module_cannot_read_are_errors_not_tracebacks(tmp_path: Path) -> None:
    empty_cells_then_extra = _write(
        tmp_path, "extra.csv", "transaction_id,is_fraud,label_time\n,,,x\n"
    )
    huge_cell = _write(
        tmp_path, "huge.csv", "transaction_id,is_fraud,label_time\n" + "x" * 200_000 + ",1,1\n"
    )
    with pytest.raises(LabelFileError) as caught:
        read_labels(empty_cells_then_extra)
    assert str(caught.value).endswith("line 2: the row has more cells than the header")
    with pytest.raises(LabelFileError) as caught:
        read_labels(huge_cell)
    assert "line 2: not valid CSV (field larger than field limit" in str(caught.value)


def test_labels_in_the_future_are_refused_naming_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "labels.jsonl",
        '{"transaction_id": "skew", "is_fraud": true, "label_time": "2026-11-20T10:04:59Z"}\n'
        '{"transaction_id": "later", "is_fraud": true, "label_time": "2026-11-21T00:00:00Z"}\n'
        # milliseconds where seconds were meant: tens of thousands of years ahead
        '{"transaction_id": "ms", "is_fraud": false, "label_time": 1795000000000}\n',
    )
    with pytest.raises(LabelFileError) as caught:
        read_labels(path, now=NOV_20, clock_skew_s=300)
    assert str(caught.value) == (
        f"label file {path} has 2 bad line(s): "
        "line 2: label_time: 2026-11-21T00:00:00Z is in the future "
        "(now 2026-11-20T10:00:00Z; clock skew allowed 300 s); "
        "line 3: label_time: 1.795e+12 (unix seconds) is in the future "
        "(now 2026-11-20T10:00:00Z; clock skew allowed 300 s)"
    )
    # By default "now" is the current time: a label of a minute from now is within the skew.
    soon = _write(
        tmp_path,
        "soon.jsonl",
        f'{{"transaction_id": "t", "is_fraud": true, "label_time": {time.time() + 60}}}\n',
    )
    assert [label.transaction_id for label in read_labels(soon)] == ["t"]


def test_many_bad_lines_are_summarised(tmp_path: Path) -> None:
    path = _write(tmp_path, "labels.jsonl", "{}\n" * 12)
    with pytest.raises(LabelFileError, match=r"has 12 bad line\(s\): line 1: .* \(and 2 more\)$"):
        read_labels(path)


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(LabelFileError) as caught:
        read_labels(missing)
    assert str(caught.value) == f"cannot read label file {missing}: No such file or directory"
    binary = tmp_path / "labels.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(
        LabelFileError, match=r"labels.bin is not UTF-8 text \(invalid start byte\)"
    ):
        read_labels(binary)
    with pytest.raises(LabelFileError, match=r"empty.jsonl has no labels$"):
        read_labels(_write(tmp_path, "empty.jsonl", "\n\n"))
