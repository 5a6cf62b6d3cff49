"""The last two steps: ``register`` (every candidate, then reject it if a gate failed) and
``shadow`` (a candidate that passed goes to shadow at ``settings.shadow_rate``).

A rejected candidate is still registered: the registry then holds the artifact, the manifest
and the reason it was turned down, so the decision can be audited later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.control import recipe
from retrain.errors import StepError
from retrain.pipeline import Context, step
from retrain.registration import Candidate, build_manifest, choose_thresholds, golden_examples

ACTOR = "retrain"


def _seed(ctx: Context) -> int | None:
    seed = ctx.trainer.params.get("seed")
    return seed if isinstance(seed, int) else None


def _store(ctx: Context) -> Any:
    if ctx.store is None:
        raise StepError("no model registry configured: cannot register")
    return ctx.store


@step(
    "register",
    ("gates", "export", "evaluate", "sets", "ingest"),
    lambda ctx: {
        "name": ctx.settings.model_name,
        "version": ctx.run_id,
        "block_rate": ctx.settings.block_rate,
        "review_rate": ctx.settings.review_rate,
        "control_of": ctx.control_of,
    },
)
def register_step(ctx: Context, out: Path) -> dict[str, Any]:
    store = _store(ctx)
    name, version = ctx.settings.model_name, ctx.run_id
    evaluation = json.loads(ctx.folder.path("evaluate", "evaluation.json").read_text())
    gates = json.loads(ctx.folder.path("gates", "gates.json").read_text())
    sets = ctx.folder.summary("sets")
    ingest = ctx.folder.summary("ingest")
    scores = np.load(ctx.folder.path("parity", "candidate_scores.npy"))
    eval_rows = pd.read_parquet(ctx.folder.path("sets", "eval.parquet"))
    thresholds = choose_thresholds(scores, evaluation["block_rate"], ctx.settings.review_rate)
    overall = evaluation["models"]["candidate"]["overall"]
    metrics = {f"offline_{k}": v for k, v in overall.items()}
    metrics["offline_block_rate_target"] = evaluation["block_rate"]
    candidate = Candidate(
        name=name,
        version=version,
        run_id=ctx.run_id,
        code_version=ctx.code_version,
        trainer=ctx.trainer.name,
        window_start=pd.Timestamp(sets["train_start"]).to_pydatetime(),
        window_end=pd.Timestamp(sets["train_end"]).to_pydatetime(),
        data_fingerprint=ingest["data_fingerprint"],
        parent_version=evaluation["production_version"],
        data_source=ingest["source"],
        data_partitions=tuple(ingest.get("data_parts", ())),
        seed=_seed(ctx),
        recipe=recipe(ctx.settings, ctx.as_of),
        control_of=ctx.control_of,
    )
    description = (
        f"Trained by retrain run {ctx.run_id} on {sets['train_rows']} payments "
        f"({sets['train_start']} to {sets['train_end']}); gates: {gates['reason']}"
    )
    if ctx.control_of is not None:
        description = (
            f"Control of {name}:{ctx.control_of} (its recipe, seed {candidate.seed}), "
            "shadowed to measure the noise floor; never promoted. " + description
        )
    manifest = build_manifest(
        candidate, thresholds, metrics, golden_examples(eval_rows, scores), description
    )
    artifact = ctx.folder.path("export", "model.onnx").read_bytes()
    # Registering the same artifact again is a no-op in the registry (a resumed step is safe);
    # a different artifact under this version is refused there, with both hashes named.
    manifest = store.register(artifact, manifest, reason=f"retrain run {ctx.run_id}")
    if not gates["passed"]:
        store.reject(name, version, reason=gates["reason"])
    (out / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    state = "registered" if gates["passed"] else "rejected"
    return {
        "model": f"{name}:{version}",
        "state": state,
        "gates_passed": gates["passed"],
        "reason": gates["reason"],
    }


@step("shadow", ("register",), lambda ctx: {"rate": ctx.settings.shadow_rate})
def shadow_step(ctx: Context, out: Path) -> dict[str, Any]:
    registered = ctx.folder.summary("register")
    name, version = ctx.settings.model_name, ctx.run_id
    if not registered["gates_passed"]:
        (out / "shadow.json").write_text(json.dumps({"shadowed": False}))
        return {"shadowed": False, "reason": registered["reason"]}
    rate = ctx.settings.shadow_rate
    _store(ctx).shadow(name, version, rate=rate, reason=f"retrain run {ctx.run_id} passed gates")
    (out / "shadow.json").write_text(json.dumps({"shadowed": True, "rate": rate}))
    return {"shadowed": True, "rate": rate}
