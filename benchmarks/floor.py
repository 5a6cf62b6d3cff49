"""The inference floor: the benchmark model called in-process, one row per call."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.model import FIELD_NAMES, sample_rows


def inference_floor(onnx_bytes: bytes, seconds: float = 2.0) -> dict[str, Any]:
    """Microseconds per single-row ``session.run`` (median of 5 timed slices), for onnxruntime
    with one intra-op thread (what a tuned server uses) and with default options."""
    import onnxruntime as ort

    rows = sample_rows(64, seed=3)
    feeds = [np.array([[r[n] for n in FIELD_NAMES]], dtype=np.float32) for r in rows]
    out: dict[str, Any] = {"onnxruntime": ort.__version__}
    tuned = ort.SessionOptions()
    tuned.intra_op_num_threads = 1
    tuned.inter_op_num_threads = 1
    for label, options in (("one_thread", tuned), ("default_options", None)):
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        for feed in feeds:  # warm-up
            session.run(["probability"], {"numeric": feed})
        slices = []
        for _ in range(5):
            calls, stop = 0, time.perf_counter() + seconds / 5
            t0 = time.perf_counter()
            while time.perf_counter() < stop:
                session.run(["probability"], {"numeric": feeds[calls % 64]})
                calls += 1
            slices.append((time.perf_counter() - t0) / calls * 1e6)
        out[f"{label}_us_per_call"] = round(float(np.median(slices)), 2)
    return out
