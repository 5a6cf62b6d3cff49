"""The archive's columns: both ways of building them agree, and no input kind is lost."""

from __future__ import annotations

import pyarrow as pa
import pytest

from registry.manifest import Decision
from registry.records import ProductionScore, encode
from retrain.evidence import layout
from tests.retrain.evidence.archive_helpers import messy_traffic
from tests.retrain.evidence.records import scored, shadow

DEFAULTS = ProductionScore(version="-", score=0.0, decision=Decision.ALLOW, latency_ms=0.0)


def test_arrow_json_parsing_builds_the_same_columns_as_the_records() -> None:
    scores, _ = messy_traffic(500)
    rows = [layout.Located(record=s, partition=2, offset=i) for i, s in enumerate(scores)]
    by_records = layout.score_table(rows)
    by_json = layout.score_table_json(
        [encode(s) for s in scores], [2] * len(scores), list(range(len(scores))), DEFAULTS
    )
    assert by_json.to_pylist() == by_records.to_pylist()
    assert by_json.schema.remove_metadata() == by_records.schema.remove_metadata()


def test_a_field_that_changes_kind_is_refused_by_arrow_and_kept_as_json_text() -> None:
    records = [
        scored("a", 0.1, shadow("v2", 0.2)).model_copy(update={"inputs": {"x": 1.5, "y": True}}),
        scored("b", 0.1, shadow("v2", 0.2)).model_copy(update={"inputs": {"x": "DE"}}),
    ]
    with pytest.raises(pa.ArrowInvalid):
        layout.score_table_json([encode(r) for r in records], [0, 0], [0, 1], DEFAULTS)
    table = layout.score_table(
        [layout.Located(record=r, partition=0, offset=i) for i, r in enumerate(records)]
    )
    assert layout.json_columns(table.schema) == {"input_x"}
    assert table["input_x"].to_pylist() == ["1.5", '"DE"']
    assert layout.input_rows(table, ["x", "y", "z"]) == [
        {"x": 1.5, "y": True, "z": None},
        {"x": "DE", "y": None, "z": None},
    ]


def test_chunks_of_one_file_whose_types_differ_become_json_text() -> None:
    first = scored("a", 0.1).model_copy(update={"inputs": {"x": 2.0, "k": "US"}})
    second = scored("b", 0.1).model_copy(update={"inputs": {"x": "two", "k": "DE"}})
    chunks = [
        layout.score_table([layout.Located(record=r, partition=0, offset=i)])
        for i, r in enumerate((first, second))
    ]
    table = layout.concat(chunks)
    assert layout.json_columns(table.schema) == {"input_x"}
    assert layout.input_rows(table, ["x", "k"]) == [{"x": 2.0, "k": "US"}, {"x": "two", "k": "DE"}]
    assert layout.concat(chunks[:1]) is chunks[0]


def test_a_time_range_maps_to_the_days_that_can_hold_it() -> None:
    from datetime import UTC, datetime

    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    assert layout.days_of(datetime(2026, 3, 1, 5, tzinfo=UTC), midnight) == (
        midnight.date().replace(day=1),
        midnight.date().replace(day=1),
    )
    assert layout.days_of(None, None) == (None, None)
