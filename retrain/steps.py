"""The pipeline's steps, in order (see :mod:`retrain.pipeline` for how they run and resume).

ingest -> filter -> features -> sets -> train -> export -> parity -> evaluate -> gates ->
report -> register -> shadow.  Each function writes its files into ``out`` and returns a
summary that lands in ``done.json`` and in the run record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.constants import PARITY_TOLERANCE
from retrain.encoding import FeatureEncoder
from retrain.errors import ParityError, StepError
from retrain.evaluation import Labelled, evaluate_model, production_block_rate
from retrain.export import OUTPUT, export_onnx
from retrain.features import add_features, filter_rows
from retrain.gates import Columns, apply_gates, for_control
from retrain.pipeline import Context, sha256_json, step
from retrain.report import figures, render_html
from retrain.schema import MODEL_SCHEMA
from retrain.scoring import score_frame
from retrain.sets import Window, slices, split
from retrain.sources import PartitionedSource
from retrain.training import Scores

MODEL_FILE = "model.txt"


def window(ctx: Context) -> Window:
    s = ctx.settings
    return Window.for_run(ctx.as_of, s.train_weeks, s.eval_weeks, s.label_maturity_days)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def _read_json(ctx: Context, step_name: str, name: str) -> Any:
    return json.loads(ctx.folder.path(step_name, name).read_text())


def _parquet(ctx: Context, step_name: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(ctx.folder.path(step_name, name))


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the rows' content (column names, values, order), independent of files."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(sha256_json({"columns": list(frame.columns)}).encode())
    return digest.hexdigest()


@step(
    "ingest",
    (),
    lambda ctx: {
        "source": ctx.source.identity(),
        "start": window(ctx).data_start,
        "end": ctx.as_of,
    },
)
def ingest(ctx: Context, out: Path) -> dict[str, Any]:
    span = window(ctx)
    frame = ctx.source.load(span.data_start, ctx.as_of)
    frame.to_parquet(out / "transactions.parquet", index=False)
    fingerprint = data_fingerprint(frame)
    parts = ctx.source.parts() if isinstance(ctx.source, PartitionedSource) else ()
    return {
        "rows": len(frame),
        "source": ctx.source.description,
        "data_parts": list(parts),
        "data_fingerprint": fingerprint,
        "_output_fingerprint": fingerprint,
    }


@step(
    "filter",
    ("ingest",),
    lambda ctx: {"as_of": ctx.as_of, "maturity": ctx.settings.label_maturity_days},
)
def filter_step(ctx: Context, out: Path) -> dict[str, Any]:
    frame = _parquet(ctx, "ingest", "transactions.parquet")
    clean, summary = filter_rows(frame, ctx.as_of, ctx.settings.label_maturity_days)
    clean.to_parquet(out / "clean.parquet", index=False)
    return summary.as_dict()


@step("features", ("filter",), lambda ctx: {"features": MODEL_SCHEMA.names})
def features_step(ctx: Context, out: Path) -> dict[str, Any]:
    frame = add_features(_parquet(ctx, "filter", "clean.parquet"))
    frame.to_parquet(out / "features.parquet", index=False)
    return {"rows": len(frame), "columns": list(MODEL_SCHEMA.names)}


@step("sets", ("features",), lambda ctx: {"window": window(ctx).__dict__})
def sets_step(ctx: Context, out: Path) -> dict[str, Any]:
    span = window(ctx)
    train, evaluation = split(_parquet(ctx, "features", "features.parquet"), span)
    train.to_parquet(out / "train.parquet", index=False)
    evaluation.to_parquet(out / "eval.parquet", index=False)
    return {
        "train_rows": len(train),
        "train_frauds": int(train["label"].sum()),
        "eval_rows": len(evaluation),
        "eval_frauds": int(evaluation["label"].sum()),
        "train_start": span.train_start,
        "train_end": span.train_end,
        "eval_start": span.train_end,
        "eval_end": span.eval_end,
        "slices": len(slices(evaluation)),
    }


@step("train", ("sets",), lambda ctx: {"trainer": ctx.trainer.name, "params": ctx.trainer.params})
def train_step(ctx: Context, out: Path) -> dict[str, Any]:
    train = _parquet(ctx, "sets", "train.parquet")
    encoder = FeatureEncoder.fit(train)
    model = ctx.trainer.fit(
        encoder.transform(train), train["label"].to_numpy(np.int8), encoder.feature_names
    )
    model.save(out / MODEL_FILE)
    _write_json(out / "encoder.json", encoder.to_json())
    return {
        "trainer": ctx.trainer.name,
        "features": list(encoder.feature_names),
        "vocabulary_sizes": {k: len(v) for k, v in encoder.vocabularies.items()},
    }


def _load_model(ctx: Context) -> tuple[Any, FeatureEncoder]:
    model = ctx.trainer.load(ctx.folder.path("train", MODEL_FILE))
    encoder = FeatureEncoder.from_json(_read_json(ctx, "train", "encoder.json"))
    return model, encoder


@step("export", ("train",), lambda ctx: {"output": OUTPUT.model_dump()})
def export_step(ctx: Context, out: Path) -> dict[str, Any]:
    model, encoder = _load_model(ctx)
    artifact = export_onnx(model, encoder, doc=f"shadowline retrain run {ctx.run_id}")
    (out / "model.onnx").write_bytes(artifact)
    return {"bytes": len(artifact)}


@step("parity", ("export", "sets"), lambda ctx: {"tolerance": PARITY_TOLERANCE})
def parity_step(ctx: Context, out: Path) -> dict[str, Any]:
    """The graph, fed through the shared RowCodec, against the native model."""
    evaluation = _parquet(ctx, "sets", "eval.parquet")
    model, encoder = _load_model(ctx)
    native = model.predict(encoder.transform(evaluation))
    artifact = ctx.folder.path("export", "model.onnx").read_bytes()
    scored = score_frame(artifact, MODEL_SCHEMA, OUTPUT, evaluation)
    if not scored.accepted.all():
        raise StepError(f"parity: the candidate's own schema refuses {scored.first_problem}")
    worst = check_parity(scored.scores, native)
    np.save(out / "candidate_scores.npy", scored.scores)
    return {"rows": len(native), "max_abs_diff": worst, "tolerance": PARITY_TOLERANCE}


def check_parity(graph: Scores, native: Scores, tolerance: float = PARITY_TOLERANCE) -> float:
    """The largest absolute difference; raises ParityError when it exceeds ``tolerance``."""
    diff = np.abs(graph - native)
    worst = float(diff.max()) if len(diff) else 0.0
    if worst > tolerance:
        first = int(np.flatnonzero(diff > tolerance)[0])
        raise ParityError(worst, tolerance, first)
    return worst


def _production_version(ctx: Context) -> str | None:
    if "production" not in ctx.cache:
        store = ctx.store
        ctx.cache["production"] = store.production(ctx.settings.model_name) if store else None
    found = ctx.cache["production"]
    return None if found is None else str(found.manifest.version)


@step(
    "evaluate",
    ("parity", "sets"),
    lambda ctx: {"production": _production_version(ctx), "block_rate": ctx.settings.block_rate},
)
def evaluate_step(ctx: Context, out: Path) -> dict[str, Any]:
    evaluation = _parquet(ctx, "sets", "eval.parquet")
    candidate = np.load(ctx.folder.path("parity", "candidate_scores.npy"))
    _production_version(ctx)
    production = ctx.cache["production"]
    keep = np.ones(len(evaluation), dtype=bool)
    prod_scores = None
    note = None
    if production is None:
        note = "no production model"
    else:
        manifest = production.manifest
        scored = score_frame(
            production.artifact, manifest.input_schema, manifest.output, evaluation
        )
        if not scored.accepted.any():
            note = f"production {manifest.ref} accepts no evaluation row ({scored.first_problem})"
        else:
            keep = scored.accepted
            prod_scores = scored.scores
    rate_source = "settings.block_rate"
    rate = ctx.settings.block_rate
    if production is not None and prod_scores is not None:
        observed = production_block_rate(prod_scores, production.manifest.thresholds.block)
        if observed > 0:
            rate, rate_source = observed, f"production {production.manifest.ref} block rate"
    rows = evaluation.loc[keep].reset_index(drop=True)
    data = Labelled(rows["label"].to_numpy(np.int8), rows["amount"].to_numpy(np.float64))
    masks = slices(rows)
    models: dict[str, dict[str, Any]] = {
        "candidate": evaluate_model(data, candidate[keep], rate, masks)
    }
    scores = {"candidate": candidate[keep]}
    if prod_scores is not None:
        models["production"] = evaluate_model(data, prod_scores, rate, masks)
        scores["production"] = prod_scores
    result = {
        "block_rate": rate,
        "block_rate_source": rate_source,
        "models": models,
        "production_note": note,
        "rows_compared": int(keep.sum()),
        "rows_refused_by_production": int((~keep).sum()),
        "production_version": _production_version(ctx),
    }
    _write_json(out / "evaluation.json", result)
    # The rows themselves, for the gates' paired intervals and the report's figures.
    np.savez(
        out / "scores.npz",
        labels=data.labels,
        amounts=data.amounts,
        slice_names=np.array(list(masks), dtype=np.str_),
        slice_masks=np.array(list(masks.values()), dtype=np.bool_).reshape(len(masks), len(rows)),
        **scores,
    )
    overall = models["candidate"]["overall"]
    return {
        "block_rate": rate,
        "production": _production_version(ctx),
        "note": note,
        "candidate": {k: overall[k] for k in ("roc_auc", "pr_auc", "recall")},
        "production_metrics": None
        if prod_scores is None
        else {k: models["production"]["overall"][k] for k in ("roc_auc", "pr_auc", "recall")},
    }


def _gate_columns(ctx: Context, evaluation: dict[str, Any]) -> Columns | None:
    """The evaluated rows as the gates compare them (None without a production model)."""
    models = evaluation["models"]
    if "production" not in models:
        return None
    arrays = np.load(ctx.folder.path("evaluate", "scores.npz"))
    candidate, production = arrays["candidate"], arrays["production"]
    return Columns(
        labels=arrays["labels"],
        amounts=arrays["amounts"],
        candidate=candidate,
        production=production,
        candidate_blocks=candidate >= models["candidate"]["threshold"],
        production_blocks=production >= models["production"]["threshold"],
        slices=dict(zip(arrays["slice_names"].tolist(), arrays["slice_masks"], strict=True)),
    )


@step(
    "gates",
    ("evaluate",),
    lambda ctx: {k: v for k, v in ctx.settings.model_dump().items() if k.startswith("gate_")},
)
def gates_step(ctx: Context, out: Path) -> dict[str, Any]:
    evaluation = _read_json(ctx, "evaluate", "evaluation.json")
    result = apply_gates(evaluation, _gate_columns(ctx, evaluation), ctx.settings)
    if ctx.control_of is not None:
        result = for_control(result)
    _write_json(out / "gates.json", result.as_dict())
    return {"passed": result.passed, "reason": result.reason}


@step("report", ("gates", "evaluate", "sets", "filter"), lambda ctx: {"run": ctx.run_id})
def report_step(ctx: Context, out: Path) -> dict[str, Any]:
    evaluation = _read_json(ctx, "evaluate", "evaluation.json")
    gates = _read_json(ctx, "gates", "gates.json")
    arrays = np.load(ctx.folder.path("evaluate", "scores.npz"))
    scores = {m: arrays[m] for m in evaluation["models"]}
    data = figures(arrays["labels"], scores, evaluation, ctx.settings.gate_metric)
    _write_json(out / "figures.json", data)
    sets = ctx.folder.summary("sets")
    summary = {
        "run": ctx.run_id,
        "model": f"{ctx.settings.model_name}:{ctx.run_id}",
        "as of": str(ctx.as_of),
        "code version": ctx.code_version,
        "training window": f"{sets['train_start']} to {sets['train_end']}",
        "evaluation window": f"{sets['eval_start']} to {sets['eval_end']}",
        "production": evaluation["production_version"] or "none",
        "note": evaluation["production_note"] or "",
        "training set": f"{sets['train_rows']} payments, {sets['train_frauds']} frauds",
        "evaluation set": f"{sets['eval_rows']} payments, {sets['eval_frauds']} frauds",
        "filter": json.dumps(ctx.folder.summary("filter"), sort_keys=True),
    }
    page = render_html(f"Retrain run {ctx.run_id}", summary, evaluation, data, gates)
    (out / "report.html").write_text(page)
    return {"html_bytes": len(page)}
