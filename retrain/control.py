"""A control: production's own recipe retrained on the same data with another seed.

A challenger's difference with production means something only when it is larger than what
retraining alone produces.  Every version the pipeline registers records its recipe in its
manifest (``lineage.recipe``: the as-of time its data was taken at, the window lengths, the
label maturity, the block and review rates, the trainer and its hyper-parameters; and
``lineage.seed``).  ``shadowline retrain run --control`` reads production's recipe and runs the
pipeline with exactly those settings and another seed, on the worker's data source: the same
training window, the same rows known at the same as-of time.  The version it registers names
production in ``lineage.control_of`` and goes to shadow beside the challengers, where the
evidence analysis (``retrain.evidence.analysis``) finds it and reports each challenger's
difference next to the control's.

A control passes the same validation and parity checks as any candidate.  The gates compare it
with production and report what they find, but never keep it out of shadow: how far it lands
from production is the noise floor itself, and keeping only the controls that pass would keep
the lucky ones (:func:`retrain.gates.for_control`).  It is never promoted:
``approve`` refuses a version whose lineage names ``control_of`` (rule ``not_a_control``),
unless forced with a written reason; the scheduled analysis analyses it only as part of its
challengers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from registry.manifest import Manifest, Scalar, describe_validation_error
from retrain.errors import ControlError
from retrain.settings import RetrainSettings, check_as_of

# The settings that shape what a run trains (the rest are where and how often it runs).
RECIPE_FIELDS = (
    "train_weeks",
    "eval_weeks",
    "label_maturity_days",
    "block_rate",
    "review_rate",
    "trainer",
    "n_trees",
    "num_leaves",
    "learning_rate",
)
AS_OF = "as_of"


def recipe(settings: RetrainSettings, as_of: datetime) -> dict[str, Scalar]:
    """What a run with ``settings`` at ``as_of`` records as its recipe (``lineage.recipe``)."""
    values: dict[str, Scalar] = {name: getattr(settings, name) for name in RECIPE_FIELDS}
    values[AS_OF] = as_of.isoformat()
    return values


def plan_control(
    settings: RetrainSettings, production: Manifest, seed: int | None
) -> tuple[dict[str, Any], datetime]:
    """The control of ``production``: ``{"control_of", "seed", "recipe"}`` (what a control run
    records in its run folder, so it resumes with the same recipe) and the as-of time to run at.

    The seed is ``seed``, else production's plus one.  Raises :class:`ControlError` when
    production records no recipe (trained outside the pipeline, or before recipes were
    recorded), when the seed is production's own, or when the recipe does not give back
    production's training window.
    """
    found = production.lineage.recipe
    if not found or AS_OF not in found:
        raise ControlError(
            f"production {production.ref} records no recipe in its lineage (trained outside "
            "the retrain pipeline, or before recipes were recorded): a control cannot retrain it"
        )
    own = production.lineage.seed
    chosen = seed if seed is not None else (own if own is not None else 0) + 1
    if chosen == own:
        raise ControlError(
            f"seed {chosen} is production {production.ref}'s own seed: a control needs another"
        )
    plan = {"control_of": production.version, "seed": chosen, "recipe": dict(found)}
    control = control_settings(settings, plan, production.ref)
    if control.as_of is None:  # control_settings always sets it; for the type checker
        raise ControlError(f"production {production.ref}'s recipe has no as-of time")
    _same_window(production, control, control.as_of)
    return plan, control.as_of


def control_settings(
    settings: RetrainSettings, plan: Mapping[str, Any], ref: str | None = None
) -> RetrainSettings:
    """``settings`` with the recipe and seed of ``plan`` (from :func:`plan_control`), its
    as-of time included.  Raises :class:`ControlError` when the settings cannot hold them."""
    found: Mapping[str, Any] = plan["recipe"]
    ref = ref or f"version {plan['control_of']}"
    values: dict[str, Any] = settings.model_dump()
    values.update({k: v for k, v in found.items() if k in RECIPE_FIELDS})
    values["training_seed"] = plan["seed"]
    try:
        values["as_of"] = check_as_of(datetime.fromisoformat(str(found[AS_OF])))
        # model_validate, not the constructor: the recipe must win over the environment.
        return type(settings).model_validate(values)
    except ValidationError as exc:
        problem = describe_validation_error(exc)
    except ValueError as exc:
        problem = f"as_of: {exc}"
    raise ControlError(f"production {ref}'s recipe cannot be used: {problem}")


def _iso(value: datetime | None) -> str:
    return "none" if value is None else value.isoformat()


def _same_window(production: Manifest, control: RetrainSettings, as_of: datetime) -> None:
    """The recipe must give back the training window production's lineage names (it does
    unless the pipeline's windowing changed since production was trained)."""
    from retrain.sets import Window

    span = Window.for_run(
        as_of, control.train_weeks, control.eval_weeks, control.label_maturity_days
    )
    lineage = production.lineage
    recorded = (lineage.training_window_start, lineage.training_window_end)
    if recorded != (span.train_start, span.train_end):
        raise ControlError(
            f"production {production.ref}'s recipe gives the training window "
            f"{_iso(span.train_start)} to {_iso(span.train_end)}, but its lineage names "
            f"{_iso(recorded[0])} to {_iso(recorded[1])}: a control would not see the same data"
        )
