"""The sidecar study: a real sidecar loop and producer, a broker on 127.0.0.1, CPU by part."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.model import train
from benchmarks.sidecar_batch import WARM_UP_BATCHES, measure, shadows_of


def test_a_shadow_scores_every_batch_on_its_own_thread_and_its_cpu_is_counted_there(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    models = shadows_of(train(rows=2_000, trees=20).onnx_bytes, 1)
    topic = make_topic("sidecar")
    none = measure(kafka_bootstrap, models, 0, rate=500, seconds=1.0, topic=topic)
    one = measure(kafka_bootstrap, models, 1, rate=500, seconds=1.0, topic=topic)
    # 10 transactions a batch (500 a second, a batch every 20 ms), 50 batches in the second.
    assert none["transactions"] == one["transactions"] == 500
    assert none["shadow_calls"] == {}
    assert none["us_per_transaction"]["shadows"] == 0
    # Every batch scored by the shadow, none shed, busy or timed out.
    assert one["shadow_calls"] == {"s1": 50 + WARM_UP_BATCHES}
    assert one["shadow_errors"] == {}
    assert one["us_per_transaction"]["shadows"] > 0
    assert one["us_per_transaction"]["loop"] > 0
