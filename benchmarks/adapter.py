"""The input adapter's cost per call: the benchmark model natively packed, against the same
trees exported in the layouts registration adapts.

    python -m benchmarks.adapter [--seconds 6] [--rounds 5]

The variants are built from the benchmark model's own graph, so only the input side differs:

* ``per-column float``: 30 inputs ``[N, 1]`` concatenated into the matrix (what skl2onnx makes
  of a frame with named float32 columns);
* ``per-column double``: 30 double inputs, each cast to float, then concatenated (a float64
  frame);
* ``single matrix``: one input ``[N, 30]`` named ``input`` (onnxmltools' LightGBM);
* ``per-column, no concat``: 30 inputs, each read on its own (the adapter cannot fold it:
  one Gather per column).

Each is registered through :func:`registry.validation.prepare_model` and its composed graph is
timed like the scorer calls it: one row, packed feeds, the scorer's session options.  Rounds
interleave the variants; the result is the median of the rounds' microseconds per call and its
ratio to the native model.  ``per-column, fed natively`` is the exported graph fed its 30
arrays directly: what the call would cost without packing.  The target: composed within 10%
of native.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from benchmarks.model import FIELD_NAMES, manifest_for, sample_rows

TARGET_RATIO = 1.10


def _variant(native: bytes, kind: str) -> bytes:
    """The benchmark graph behind another input layout (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_model_from_string(native)
    graph = model.graph
    if kind == "single matrix":
        graph.input[0].name = "input"
        for node in graph.node:
            node.input[:] = ["input" if name == "numeric" else name for name in node.input]
        return bytes(model.SerializeToString())
    elem = TensorProto.DOUBLE if kind == "per-column double" else TensorProto.FLOAT
    front: list[onnx.NodeProto] = []
    columns = list(FIELD_NAMES)
    if elem == TensorProto.DOUBLE:
        front += [helper.make_node("Cast", [n], [f"{n}_f"], to=TensorProto.FLOAT) for n in columns]
        columns = [f"{n}_f" for n in columns]
    if kind == "per-column, no concat":
        # Each column scaled by one before the concatenation, as a per-column scaler would.
        graph.initializer.append(helper.make_tensor("bench_one", TensorProto.FLOAT, [], [1.0]))
        front += [helper.make_node("Mul", [c, "bench_one"], [f"{c}_s"]) for c in columns]
        columns = [f"{c}_s" for c in columns]
    front.append(helper.make_node("Concat", columns, ["matrix"], axis=1))
    for node in graph.node:
        node.input[:] = ["matrix" if name == "numeric" else name for name in node.input]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*front, *nodes])
    del graph.input[:]
    graph.input.extend(helper.make_tensor_value_info(n, elem, [None, 1]) for n in FIELD_NAMES)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _per_call_us(session: Any, feeds: list[dict[str, Any]], seconds: float) -> float:
    calls, stop = 0, time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < stop:
        session.run(["probability"], feeds[calls % len(feeds)])
        calls += 1
    return (time.perf_counter() - began) / calls * 1e6


def adapter_cost(native: bytes, seconds: float = 6.0, rounds: int = 5) -> dict[str, Any]:
    """Microseconds per single-row call of each variant's composed graph and of the native
    model (``seconds`` of calls per variant, split over ``rounds`` interleaved rounds)."""
    import onnx
    import onnxruntime as ort

    from registry.contract import RowCodec
    from registry.validation import prepare_model
    from service.models import session_options

    manifest: Any = manifest_for(native, "adapter-bench")
    codec = RowCodec(manifest.input_schema)
    rows = sample_rows(64, seed=5)
    packed = [codec.encode([row]) for row in rows]
    per_column = [{n: np.array([[row[n]]], dtype=np.float32) for n in FIELD_NAMES} for row in rows]
    kinds = ["per-column float", "per-column double", "single matrix", "per-column, no concat"]
    exported = {kind: _variant(native, kind) for kind in kinds}
    graphs = {"native": native} | {
        k: prepare_model(v, manifest).artifact for k, v in exported.items()
    }
    sessions = {
        name: ort.InferenceSession(graph, session_options(), providers=["CPUExecutionProvider"])
        for name, graph in graphs.items()
    }
    sessions["per-column, fed natively"] = ort.InferenceSession(
        exported["per-column float"], session_options(), providers=["CPUExecutionProvider"]
    )
    feeds = {name: per_column if "natively" in name else packed for name in sessions}
    for name, session in sessions.items():  # warm-up
        _per_call_us(session, feeds[name], 0.05)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            times[name].append(_per_call_us(session, feeds[name], seconds / rounds))
    median = {name: float(np.median(values)) for name, values in times.items()}
    base = median["native"]
    nodes = {
        name: len(onnx.load_model_from_string(graph).graph.node) for name, graph in graphs.items()
    }
    nodes["per-column, fed natively"] = len(
        onnx.load_model_from_string(exported["per-column float"]).graph.node
    )
    return {
        "native_us": round(base, 2),
        "variants": {
            name: {
                "us": round(us, 2),
                "ratio": round(us / base, 3),
                "nodes_more_than_native": nodes[name] - nodes["native"],
            }
            for name, us in median.items()
            if name != "native"
        },
        "rounds": {name: [round(v, 2) for v in values] for name, values in times.items()},
        "target_ratio": TARGET_RATIO,
        "met": all(median[kind] / base <= TARGET_RATIO for kind in kinds[:3]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="Timed seconds per variant.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds.")
    args = parser.parse_args()
    from benchmarks.model import train

    result = adapter_cost(train().onnx_bytes, seconds=args.seconds, rounds=args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
