"""A loaded model version: one onnxruntime session, its row codec and thresholds, warmed up.

:func:`load_model` is the only way to get a :class:`LoadedModel`; it checks the graph against
the manifest's input convention and replays the golden examples, so a model that reaches the
request path has already scored real rows correctly.  Loading is CPU work of tens of
milliseconds: callers run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from registry.constants import GOLDEN_TOLERANCE
from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT, FieldProblem, RowCodec
from registry.contract import scores_from_output as _scores_from_output
from registry.manifest import Decision, Manifest
from service.errors import ModelLoadError

Feeds = dict[str, npt.NDArray[np.generic]]
_INPUT_TYPES = {NUMERIC_INPUT: "tensor(float)", CATEGORICAL_INPUT: "tensor(string)"}


class LoadedModel:
    """A model version ready to score.  Immutable after loading; shared by concurrent requests
    (an onnxruntime session's ``run`` is thread-safe)."""

    __slots__ = (
        "_column",
        "_output",
        "_session",
        "artifact",
        "codec",
        "created_at",
        "decide",
        "field_names",
        "loaded_at",
        "manifest",
        "name",
        "ref",
        "schema_key",
        "sha256",
        "version",
    )

    def __init__(
        self,
        manifest: Manifest,
        session: ort.InferenceSession,
        loaded_at: float,
        artifact: bytes = b"",
    ):
        self.manifest = manifest
        # The ONNX bytes, kept so the sidecar process can load the same version as a shadow.
        self.artifact = artifact
        self.name = manifest.name
        self.version = manifest.version
        self.ref = manifest.ref
        self.sha256 = manifest.sha256 or ""
        self.created_at = manifest.created_at.timestamp() if manifest.created_at else None
        self.codec = RowCodec(manifest.input_schema)
        # Equal keys mean equal input schemas: rows production checked need no second check.
        self.schema_key = schema_key(manifest)
        self.field_names = frozenset(f.name for f in manifest.input_schema.fields)
        self.decide: Callable[[float], Decision] = manifest.thresholds.decide
        self.loaded_at = loaded_at
        self._session = session
        self._output = [manifest.output.name]
        self._column = manifest.output.column

    def check(self, row: Mapping[str, object]) -> list[FieldProblem]:
        """Every problem of ``row`` against this model's input schema (empty when valid)."""
        return self.codec.check(row)

    def encode(self, rows: Sequence[Mapping[str, object]]) -> Feeds:
        """The graph inputs for already-checked ``rows``."""
        return self.codec.encode(rows)

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        """Fraud probabilities for encoded rows (onnxruntime releases the GIL meanwhile)."""
        output = self._session.run(self._output, feeds)[0]
        return _scores_from_output(self.manifest.output, np.asarray(output))

    def run_one(self, feeds: Feeds) -> float:
        """:meth:`run` for one encoded row, its probability as a float: the request path's
        call, without the array handling a batch needs (~2 us of the scorer's request)."""
        output = self._session.run(self._output, feeds)[0]
        shape, column = output.shape, self._column
        if column is None:
            if shape == (1,) or shape == (1, 1):
                return float(output.item(0))
        elif len(shape) == 2 and shape[0] == 1 and shape[1] > column:
            return float(output.item(column))
        return float(_scores_from_output(self.manifest.output, np.asarray(output))[0])  # raises

    def score(self, rows: Sequence[Mapping[str, object]]) -> npt.NDArray[np.float64]:
        """Fraud probabilities for already-checked ``rows``, in order."""
        return self.run(self.codec.encode(rows))

    def __repr__(self) -> str:
        return f"LoadedModel({self.ref}, sha256={self.sha256[:12]})"


@dataclass(frozen=True, slots=True)
class ModelBytes:
    """A version as the registry verified it (its manifest and its checksum-checked ONNX bytes)
    and not loaded: what the scorer holds of a shadow.

    Only the sidecar process runs shadows, so only it builds their sessions (and replays their
    golden examples, :func:`load_model`); the scorer hands these bytes over.  Building a session
    in the scorer would cost its event loop: the loading thread's share of the interpreter lock,
    and on a busy machine its CPU, in the very second the shadow set changes."""

    manifest: Manifest
    artifact: bytes
    loaded_at: float  # when the scorer fetched it (``shadowline_model_info``)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def sha256(self) -> str:
        return self.manifest.sha256 or ""

    @classmethod
    def of(cls, model: LoadedModel) -> ModelBytes:
        """What the scorer needs of ``model`` to hand it to the sidecar as a shadow."""
        return cls(model.manifest, model.artifact, model.loaded_at)


def schema_key(manifest: Manifest) -> str:
    """A short digest of ``manifest``'s input schema."""
    encoded = manifest.input_schema.model_dump_json().encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def session_options() -> ort.SessionOptions:
    """One intra-op and one inter-op thread: a single-row call gains nothing from more, and
    the default pool spins a thread on the other core (measured: it halves throughput on 2
    cores under load)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def load_model(
    manifest: Manifest,
    artifact: bytes,
    *,
    clock: Callable[[], float] = time.time,
    tolerance: float = GOLDEN_TOLERANCE,
) -> LoadedModel:
    """Build the session for ``artifact``, check it follows ``manifest``, warm it up.

    The artifact's checksum is the registry's job (``ModelRegistry.artifact`` verifies it).
    Raises :class:`ModelLoadError` naming the model and the reason: the graph does not load,
    its inputs or output differ from the manifest's convention, or a golden example scores
    differently from its expected score by more than ``tolerance``.
    """
    ref = manifest.ref
    try:
        session = ort.InferenceSession(
            artifact, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
        raise ModelLoadError(ref, f"onnxruntime cannot load the artifact ({exc})") from exc
    codec = RowCodec(manifest.input_schema)
    declared = {node.name: node.type for node in session.get_inputs()}
    if set(declared) != set(codec.input_names):
        raise ModelLoadError(
            ref,
            f"graph inputs {sorted(declared)} do not match the manifest's "
            f"{sorted(codec.input_names)}",
        )
    for name, kind in declared.items():
        if kind != _INPUT_TYPES[name]:
            raise ModelLoadError(
                ref, f"graph input {name} is {kind}, expected {_INPUT_TYPES[name]}"
            )
    outputs = [node.name for node in session.get_outputs()]
    if manifest.output.name not in outputs:
        raise ModelLoadError(ref, f"graph has no output {manifest.output.name!r} (has {outputs})")
    model = LoadedModel(manifest, session, loaded_at=clock(), artifact=artifact)
    _warm_up(model, tolerance)
    return model


def _warm_up(model: LoadedModel, tolerance: float) -> None:
    """Score the golden examples as a batch and one by one (the request path's shape)."""
    rows = [example.inputs for example in model.manifest.golden_examples]
    expected = np.array([example.expected_score for example in model.manifest.golden_examples])
    for row in rows:
        problems = model.check(row)
        if problems:
            raise ModelLoadError(model.ref, f"golden example is invalid: {problems[0]}")
    try:
        batch = model.score(rows)
        single = np.array([model.run_one(model.encode([row])) for row in rows])
    except (ValueError, RuntimeError) as exc:  # bad output shape, onnxruntime failure
        raise ModelLoadError(model.ref, f"warm-up failed: {exc}") from exc
    for got in (batch, single):
        worst = int(np.argmax(np.abs(got - expected)))
        if not abs(got[worst] - expected[worst]) <= tolerance:
            raise ModelLoadError(
                model.ref,
                f"golden example {worst} scored {got[worst]:.6f}, "
                f"expected {expected[worst]:.6f} (tolerance {tolerance:g})",
            )
