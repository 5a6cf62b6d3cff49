"""The OpenAPI document as the server behaves, for the scoring bodies that change with the model.

The scoring routes check transactions against the *production model's* input schema, so a
fixed request schema (any ``features`` object) promised bodies the server refuses.
:class:`LiveDocument` rewrites the two scoring request bodies of FastAPI's document from the
model currently served: each field with its type, range, allowed values and whether it may be
missing; at most ``max_extra_fields`` other keys, each a JSON scalar; no string longer than
``max_string_chars``; no field beside ``transaction_id`` and ``features``.  The rewritten
document is built once per production version.  The byte limits (413) are not expressible in
JSON Schema; the descriptions state them.  Every component schema gets its example, and the
scoring bodies and answers examples of the model served (:mod:`service.examples`).
"""

from __future__ import annotations

import copy
from typing import Any

from registry.contract import FLOAT32_MAX, MAX_EXACT_INT
from registry.manifest import FieldType, InputField, InputSchema, Manifest
from service.examples import component_examples, scoring_examples
from service.live import LiveModels
from service.scorer import MAX_TRANSACTION_ID, InputLimits

Schema = dict[str, Any]
SCORE, BATCH = "/v1/score", "/v1/score/batch"

DESCRIPTION = """\
Fraud scoring with built-in shadow mode. `POST /v1/score` answers with the production model;
the shadow models score the same transactions off the request path, and every scored
transaction yields one record on the scores topic (production's answer and each shadow's).

**The scoring bodies follow the model served now**: each input field with its type, range,
allowed values and whether it may be missing; the examples are the production model's own
golden examples.

**Authentication.** `/admin` routes: `Authorization: Bearer` with `SHADOWLINE_ADMIN_TOKEN`
(401 without, 403 wrong). `POST /v1/labels`: its own token, `SHADOWLINE_LABELS_TOKEN`. The
scoring, health and review routes take none.

**Errors** are `{"detail": ..., "errors": [...]}`, one line per bad field or broken rule, and
never a 500 for a client's mistake.

Reference: `docs/scoring.md` (this API and its settings), `docs/registry.md` (the lifecycle
behind the admin routes), `docs/evidence.md` (labels and the evidence an approval judges).
"""
TAGS = [
    {"name": "scoring", "description": "Score transactions with the production model."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "admin", "description": "The registry's moves (admin token): shadow, approve, "
     "promote, roll back, and what a reviewer weighs before each."},
    {"name": "labels", "description": "Fraud labels from chargeback and review systems."},
    {"name": "review", "description": "The review page, a browser front end of the admin routes."},
]  # fmt: skip


def _field(spec: InputField, limits: InputLimits) -> Schema:
    schema: Schema
    if spec.type is FieldType.BOOL:
        schema = {"type": "boolean"}
    elif spec.type is FieldType.CATEGORICAL:
        schema = {"type": "string", "maxLength": limits.max_string_chars}
        if spec.allowed is not None:
            schema["enum"] = list(spec.allowed)
        elif spec.required:
            schema["minLength"] = 1  # "" is how a missing optional value is encoded
    else:
        widest = MAX_EXACT_INT if spec.type is FieldType.INT else FLOAT32_MAX
        low = -widest if spec.minimum is None else max(spec.minimum, -widest)
        high = widest if spec.maximum is None else min(spec.maximum, widest)
        kind = "integer" if spec.type is FieldType.INT else "number"
        schema = {"type": kind, "minimum": low, "maximum": high}
    if spec.description:
        schema["description"] = spec.description
    return schema if spec.required else {"anyOf": [schema, {"type": "null"}]}


def _scalar(limits: InputLimits) -> Schema:
    return {
        "anyOf": [
            {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
            {"type": "string", "maxLength": limits.max_string_chars},
            {"type": "boolean"},
            {"type": "null"},
        ]
    }


def transaction_schema(schema: InputSchema | None, limits: InputLimits) -> Schema:
    """One ``{"transaction_id", "features"}`` object for ``schema`` (any scalars without a
    model: nothing can be scored then anyway)."""
    fields = schema.fields if schema is not None else ()
    features: Schema = {
        "type": "object",
        "description": "The row, keyed by the production model's input field names; other "
        "keys are kept for replay (shadow models may use them).",
        "properties": {spec.name: _field(spec, limits) for spec in fields},
        "required": [spec.name for spec in fields if spec.required],
        "additionalProperties": _scalar(limits),
        "propertyNames": {"maxLength": limits.max_string_chars},
        "maxProperties": len(fields) + limits.max_extra_fields,
    }
    return {
        "type": "object",
        "properties": {
            "transaction_id": {"type": "string", "minLength": 1, "maxLength": MAX_TRANSACTION_ID},
            "features": features,
        },
        "required": ["transaction_id", "features"],
        "additionalProperties": False,
    }


def request_bodies(
    schema: InputSchema | None, limits: InputLimits, max_batch: int
) -> dict[str, Schema]:
    """The ``requestBody`` of each scoring route."""
    one = transaction_schema(schema, limits)
    per = limits.max_transaction_bytes
    batch = {
        "type": "object",
        "properties": {
            "transactions": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_batch,
                "items": one,
            }
        },
        "required": ["transactions"],
        "additionalProperties": False,
    }
    return {
        SCORE: _body(one, f"One transaction, at most {per} bytes (413 beyond)."),
        BATCH: _body(batch, f"Up to {max_batch} transactions, at most {per} bytes each (413)."),
    }


def _body(schema: Schema, description: str) -> Schema:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def add_examples(document: Schema, manifest: Manifest | None) -> None:
    """Put an example on every component schema of ``document`` and on the scoring routes'
    bodies and answers (those for ``manifest``, the production model served)."""
    schemas = document.get("components", {}).get("schemas", {})
    for name, example in component_examples().items():
        if name in schemas:
            schemas[name]["examples"] = [example]
    for path, (request, answer) in scoring_examples(manifest).items():
        operation = document["paths"][path]["post"]
        operation["requestBody"]["content"]["application/json"]["example"] = request
        operation["responses"]["200"]["content"]["application/json"]["example"] = answer


class LiveDocument:
    """Rewrites FastAPI's document for the production model served now (cached per version)."""

    def __init__(self, live: LiveModels, limits: InputLimits, max_batch: int) -> None:
        self._live, self._limits, self._max_batch = live, limits, max_batch
        self._built: tuple[str | None, Schema] | None = None

    def __call__(self, base: Schema) -> Schema:
        model = self._live.current.production
        key = None if model is None else f"{model.version}:{model.schema_key}"
        built = self._built
        if built is not None and built[0] == key:
            return built[1]
        document = copy.deepcopy(base)
        schema = None if model is None else model.manifest.input_schema
        for path, body in request_bodies(schema, self._limits, self._max_batch).items():
            document["paths"][path]["post"]["requestBody"] = body
        add_examples(document, None if model is None else model.manifest)
        self._built = (key, document)
        return document
