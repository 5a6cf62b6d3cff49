"""The archive reader builds exactly what pair_records builds from the same records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from registry.records import LabelRecord, ScoreRecord
from retrain.evidence.archive_read import pair_archive
from retrain.evidence.frame import Paired, Sampling, pair_records
from tests.retrain.evidence.archive_helpers import DAY, messy_traffic, write_archive
from tests.retrain.evidence.records import T0

FIELDS = [f for f in Paired.__dataclass_fields__ if f != "transaction_id"]


def _same(
    got: tuple[Paired, Sampling, str | None], want: tuple[Paired, Sampling, str | None]
) -> None:
    (paired, sampling, production), (paired_w, sampling_w, production_w) = got, want
    assert production == production_w
    assert paired.transaction_id == paired_w.transaction_id
    for name in FIELDS:
        np.testing.assert_allclose(
            getattr(paired, name), getattr(paired_w, name), rtol=0, atol=1e-6, err_msg=name
        )
    assert sorted(sampling.labels_before_score) == sorted(sampling_w.labels_before_score)
    delays, delays_w = sorted(sampling.fraud_delays), sorted(sampling_w.fraud_delays)
    assert len(delays) == len(delays_w)
    np.testing.assert_allclose(np.array(delays), np.array(delays_w), rtol=0, atol=1e-5)
    for name in (
        "sampled",
        "errors",
        "other_production",
        "other_model",
        "duplicates",
        "scores_read",
        "labels_read",
        "labels_superseded",
        "labels_without_score",
    ):
        assert getattr(sampling, name) == getattr(sampling_w, name), name


@pytest.mark.parametrize("split", [1.0, 0.6, 0.0])
@pytest.mark.parametrize(("model", "production"), [("fraud", None), (None, "v0")])
def test_archive_and_tail_pair_as_the_records_do(
    tmp_path: Path, split: float, model: str | None, production: str | None
) -> None:
    scores, labels = messy_traffic(3000)
    cut_s, cut_l = int(len(scores) * split), int(len(labels) * split)
    write_archive(tmp_path, scores[:cut_s], labels[:cut_l])
    got = pair_archive(
        tmp_path,
        "v2",
        model_name=model,
        production_version=production,
        amount_field="amount",
        tail_scores=scores[cut_s:],
        tail_labels=labels[cut_l:],
    )
    want = pair_records(
        scores,
        labels,
        "v2",
        model_name=model,
        production_version=production,
        amount_field="amount",
    )
    _same(got, want)
    assert len(got[0]) > (1000 if production is None else 10)  # v0 answered few of them
    assert got[1].errors["timeout"] > 0
    assert got[1].duplicates > 0
    assert got[1].other_production


def test_a_time_range_reads_only_the_records_scored_within_it(tmp_path: Path) -> None:
    scores, labels = messy_traffic(3000)
    write_archive(tmp_path, scores, labels)
    since = datetime.fromtimestamp(T0 + 0.5 * DAY, UTC)
    until = datetime.fromtimestamp(T0 + 1.0 * DAY, UTC)
    inside = [s for s in scores if since.timestamp() <= s.scored_at < until.timestamp()]
    got = pair_archive(tmp_path, "v2", since=since, until=until)
    _same(got, pair_records(inside, labels, "v2"))


def test_an_empty_archive_pairs_nothing(tmp_path: Path) -> None:
    paired, sampling, production = pair_archive(tmp_path, "v2", production_version="v1")
    assert (len(paired), sampling.scores_read, production) == (0, 0, "v1")


def test_an_amount_that_mixes_kinds_in_one_file_keeps_numbers_apart_from_text(
    tmp_path: Path,
) -> None:
    scores, labels = messy_traffic(400)
    odd: list[ScoreRecord] = [
        s.model_copy(update={"inputs": {"amount": "12.5" if i % 2 else 3.0}})
        for i, s in enumerate(scores[:100])
    ]
    write_archive(tmp_path, odd + scores[100:], labels, batch=100)
    paired, _, _ = pair_archive(tmp_path, "v2", amount_field="amount")
    want, _, _ = pair_records(
        odd + scores[100:], list[LabelRecord](labels), "v2", amount_field="amount"
    )
    np.testing.assert_allclose(paired.amount, want.amount)
