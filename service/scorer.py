"""The scoring data plane: request bytes in, response bytes out.  No HTTP, no I/O.

Routes hand the raw body to :class:`Scorer` and return what it gives back, so the hot path
parses JSON once (orjson), checks the row once, encodes it once, runs one onnxruntime call, and
encodes the response once.  The check: a complete, valid row of a numeric-only model is checked
and laid out in contract order in one pass (:func:`fast_transaction`,
``RowCodec.numeric_row``); any other goes through :func:`check_transaction`
(``RowCodec.check`` and the input limits), which names every problem.  The production model is
read from ``live.current`` once per request: a swap during the request does not change the
model it uses.

Request (single): ``{"transaction_id": "t-1", "features": {"amount": 12.5, ...}}``.
Request (batch):  ``{"transactions": [{"transaction_id": ..., "features": {...}}, ...]}``.
``features`` is the row as the model's input schema names it; unknown keys are kept (they are
replayed from the wire record's ``inputs``) but not used by the model, and must be JSON scalars
(number, string, boolean or null).

Exploration (``exploration_share``, default 0; docs/evidence.md "Exploration"): of the
transactions production would block, that random share is answered ``review`` instead, so
their outcome can be observed; the record keeps the model's ``block`` and says ``explored``.
Only a would-be block draws a random number: other requests pay one string comparison.

Work is bounded, not only bytes (:class:`InputLimits`): the routes cap the body (per
transaction; a batch may carry that much per transaction it holds), and each transaction may
carry at most ``max_extra_fields`` keys beside the model's fields and no string (value or key)
longer than ``max_string_chars``.  Every such key would otherwise be checked, kept, pickled to
the sidecar and written to Kafka: 100,000 of them cost ~8 MB and tens of milliseconds a request.
Those checks ride on the loop over the features that the model's own check needs anyway.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from registry.contract import FLOAT32_MAX
from service.errors import InvalidRequest, NoProductionModel, PayloadTooLarge
from service.live import LiveModels
from service.metrics import ServiceMetrics, incrementer, observer
from service.models import LoadedModel
from service.shadow import Scored

MAX_TRANSACTION_ID = 128
_TOP_LEVEL = frozenset({"transaction_id", "features"})
_SHOWN_KEY = 40  # characters of an over-long key shown in an error


@dataclass(frozen=True, slots=True)
class InputLimits:
    """How much one transaction may carry (``SHADOWLINE_MAX_*`` settings): the body, the keys
    of ``features`` beyond the model's own fields, the characters of any string."""

    max_transaction_bytes: int = 32_768
    max_extra_fields: int = 256
    max_string_chars: int = 1024


class _Bound:
    """A model version's hot-path metric children, bound once."""

    __slots__ = ("decisions", "explored", "inference", "score")

    def __init__(self, metrics: ServiceMetrics, version: str) -> None:
        self.inference = observer(metrics.inference_seconds.labels("production", version))
        self.score = observer(metrics.scores.labels("production", version))
        self.decisions = {
            d: incrementer(metrics.decisions.labels("production", version, d))
            for d in ("allow", "review", "block")
        }
        self.explored = metrics.explored.labels(version).inc


def parse_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`InvalidRequest`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest([f"body: invalid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise InvalidRequest([f"body: must be a JSON object, not {_json_type(data)}"])
    return data


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def check_transaction(
    data: object,
    model: LoadedModel,
    prefix: str,
    problems: list[str],
    limits: InputLimits = InputLimits(),
) -> tuple[str, dict[str, Any]]:
    """Validate one ``{"transaction_id", "features"}`` object; append each problem."""
    if not isinstance(data, dict):
        problems.append(f"{prefix}must be a JSON object, not {_json_type(data)}")
        return "", {}
    if not data.keys() <= _TOP_LEVEL:
        for key in data.keys() - _TOP_LEVEL:
            problems.append(f"{prefix}{_shown(key)}: is not a field of a transaction")
    tid = data.get("transaction_id")
    if tid is None:
        problems.append(f"{prefix}transaction_id: is required")
    elif not isinstance(tid, str) or not tid or len(tid) > MAX_TRANSACTION_ID:
        problems.append(
            f"{prefix}transaction_id: must be a non-empty string of at most "
            f"{MAX_TRANSACTION_ID} characters"
        )
    features = data.get("features")
    if features is None:
        problems.append(f"{prefix}features: is required")
        return "", {}
    if not isinstance(features, dict):
        problems.append(f"{prefix}features: must be a JSON object, not {_json_type(features)}")
        return "", {}
    known, longest = model.field_names, limits.max_string_chars
    most = len(known) + limits.max_extra_fields
    if len(features) > most:  # refused before any work per key
        problems.append(
            f"{prefix}features: {len(features)} fields; at most {most} are accepted "
            f"(the model's {len(known)} and {limits.max_extra_fields} others)"
        )
        return "", {}
    for problem in model.check(features):
        problems.append(f"{prefix}{problem}")
    # Keys the model does not know are kept for replay; only JSON scalars, so that every
    # record can be written back (orjson reads arrays and objects nested 1024 deep but writes
    # only ~254) and replay inputs stay one flat row; numbers in float32's range, as the
    # model's own fields (checked above).
    for key, value in features.items():
        if key not in known:
            if isinstance(value, dict | list):
                problems.append(f"{prefix}{_shown(key)}: must be a number, string, boolean or null")
            elif isinstance(value, float | int) and abs(value) > FLOAT32_MAX:
                problems.append(
                    f"{prefix}{_shown(key)}: must be within ±{FLOAT32_MAX:.7g}, the float32 "
                    f"range (got {value:g})"
                )
            if len(key) > longest:
                problems.append(
                    f"{prefix}{_shown(key)}: a field name must be at most {longest} characters "
                    f"(got {len(key)})"
                )
        if type(value) is str and len(value) > longest:
            problems.append(
                f"{prefix}{_shown(key)}: must be at most {longest} characters (got {len(value)})"
            )
    return (tid if isinstance(tid, str) else ""), features


def fast_transaction(data: dict[str, Any], model: LoadedModel) -> _Fast | None:
    """``(transaction_id, features, row)`` when ``data`` is a transaction in the common shape:
    exactly its two fields, an id within bounds, and every field of a numeric-only model
    present, valid and alone in ``features`` (no other keys: they would need the limits' checks).
    ``row`` is the model's input row (``RowCodec.numeric_row``).  None when any of that does
    not hold: :func:`check_transaction` then checks it in full (it may still be valid)."""
    if len(data) != 2:
        return None
    tid, features = data.get("transaction_id"), data.get("features")
    if (
        type(tid) is not str
        or not 0 < len(tid) <= MAX_TRANSACTION_ID
        or type(features) is not dict
        or len(features) != model.codec.field_count
    ):
        return None
    row = model.codec.numeric_row(features)
    return None if row is None else (tid, features, row)


_Fast = tuple[str, dict[str, Any], list[object]]


def _shown(key: str) -> str:
    return key if len(key) <= _SHOWN_KEY else key[:_SHOWN_KEY] + "..."


class Scorer:
    """Scores requests with the production model and hands each transaction to ``submit``
    (the sidecar: shadows, records, Kafka).

    ``exploration_share`` (0 to 1; the settings cap it) is the probability that a would-be
    block is answered ``review`` (module docstring); ``rng`` draws it (seeded in tests).
    """

    def __init__(
        self,
        live: LiveModels,
        submit: Callable[[Scored], None],
        metrics: ServiceMetrics,
        *,
        model_name: str,
        max_batch: int,
        exploration_share: float = 0.0,
        rng: random.Random | None = None,
        limits: InputLimits = InputLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= exploration_share <= 1.0:
            raise ValueError(f"exploration_share must be within [0, 1]; got {exploration_share}")
        self._live = live
        self._submit = submit
        self._metrics = metrics
        self._model_name = model_name
        self._max_batch = max_batch
        self._limits = limits
        self._clock = clock
        self._share = exploration_share
        # Not a secret draw: which would-be blocks are explored is never shown to the client
        # (the answer is an ordinary review), so a predictable generator gives nothing away.
        self._draw = (rng or random.Random()).random  # noqa: S311
        self._bound: dict[str, _Bound] = {}
        # Request ids: a per-process random prefix and a counter (unique across replicas
        # without a urandom call per request).
        self._prefix = os.urandom(6).hex() + "-"
        self._counter = itertools.count(1)

    def _model(self) -> LoadedModel:
        model = self._live.current.production
        if model is None:
            raise NoProductionModel(self._model_name)
        return model

    def _metrics_for(self, model: LoadedModel) -> _Bound:
        bound = self._bound.get(model.version)
        if bound is None:
            bound = self._bound[model.version] = _Bound(self._metrics, model.version)
        return bound

    def _explore(self, bound: _Bound) -> bool:
        """Whether this would-be block is explored (answered review); counted when it is."""
        if self._share and self._draw() < self._share:
            bound.explored()
            return True
        return False

    def score(self, body: bytes) -> bytes:
        """Score one transaction.  Raises InvalidRequest (422: a bad field, an input limit) or
        NoProductionModel (503)."""
        data = parse_object(body)
        model = self._model()
        fast = fast_transaction(data, model)
        if fast is None:
            problems: list[str] = []
            tid, features = check_transaction(data, model, "", problems, self._limits)
            if problems:
                raise InvalidRequest(problems)
            started = time.perf_counter()
            feeds = model.encode((features,))
        else:
            tid, features, row = fast
            started = time.perf_counter()
            feeds = model.codec.encode_numeric((row,))
        score = model.run_one(feeds)
        seconds = time.perf_counter() - started
        decision = model.decide(score).value
        bound = self._metrics_for(model)
        bound.inference(seconds)
        bound.score(score)
        bound.decisions[decision]()
        explored = decision == "block" and self._explore(bound)
        request_id = f"{self._prefix}{next(self._counter):x}"
        self._submit(
            Scored(
                transaction_id=tid,
                request_id=request_id,
                scored_at=self._clock(),
                inputs=features,
                model_name=model.name,
                version=model.version,
                schema_key=model.schema_key,
                score=score,
                decision=decision,
                latency_ms=seconds * 1e3,
                size=len(body),
                explored=explored,
                exploration_share=self._share,
            )
        )
        return orjson.dumps(
            {
                "transaction_id": tid,
                "request_id": request_id,
                "model_name": model.name,
                "model_version": model.version,
                "score": score,
                "decision": "review" if explored else decision,
            }
        )

    def score_batch(self, body: bytes) -> bytes:
        """Score up to ``max_batch`` transactions in one model call.  Raises InvalidRequest
        (422, every bad field of every transaction, or more than ``max_batch``),
        PayloadTooLarge (413: more than ``max_transaction_bytes`` per transaction) or
        NoProductionModel (503)."""
        data = parse_object(body)
        items = data.get("transactions")
        if not isinstance(items, list) or not items:
            raise InvalidRequest(["transactions: must be a non-empty array"])
        if len(items) > self._max_batch:  # a documented maxItems: 422, as any bad field
            raise InvalidRequest(
                [
                    f"transactions: a batch of {len(items)} transactions exceeds the limit of "
                    f"{self._max_batch}"
                ]
            )
        per_item = self._limits.max_transaction_bytes
        if len(body) > len(items) * per_item:  # the limit scales with the batch's length
            raise PayloadTooLarge(
                f"a batch of {len(items)} transactions in {len(body)} bytes",
                f"{per_item} bytes per transaction",
            )
        model = self._model()
        problems: list[str] = []
        if len(data) > 1:
            problems += [
                f"{_shown(k)}: is not a field of a batch" for k in data if k != "transactions"
            ]
        fast = [
            found
            for item in items
            if type(item) is dict and (found := fast_transaction(item, model)) is not None
        ]
        if len(fast) == len(items) and not problems:
            checked = [(tid, features) for tid, features, _ in fast]
            started = time.perf_counter()
            feeds = model.codec.encode_numeric([row for _, _, row in fast])
        else:
            checked = [
                check_transaction(item, model, f"transactions[{i}]: ", problems, self._limits)
                for i, item in enumerate(items)
            ]
            if problems:
                raise InvalidRequest(problems)
            started = time.perf_counter()
            feeds = model.encode([features for _, features in checked])
        scores = model.run(feeds).tolist()
        seconds = time.perf_counter() - started
        bound = self._metrics_for(model)
        bound.inference(seconds)
        request_id = f"{self._prefix}{next(self._counter):x}"
        now, latency_ms = self._clock(), seconds * 1e3
        size = len(body) // len(checked) + 1
        name, version, schema_key = model.name, model.version, model.schema_key
        share = self._share
        results = []
        for (tid, features), score in zip(checked, scores, strict=True):
            decision = model.decide(score).value
            bound.score(score)
            bound.decisions[decision]()
            explored = decision == "block" and self._explore(bound)
            self._submit(
                Scored(
                    transaction_id=tid,
                    request_id=request_id,
                    scored_at=now,
                    inputs=features,
                    model_name=name,
                    version=version,
                    schema_key=schema_key,
                    score=score,
                    decision=decision,
                    latency_ms=latency_ms,
                    size=size,
                    explored=explored,
                    exploration_share=share,
                )
            )
            answered = "review" if explored else decision
            results.append({"transaction_id": tid, "score": score, "decision": answered})
        return orjson.dumps(
            {
                "request_id": request_id,
                "model_name": model.name,
                "model_version": model.version,
                "results": results,
            }
        )
