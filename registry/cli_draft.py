"""``shadowline models init-manifest``: draft a manifest from a model and a sample of its data.

Mounted by :mod:`registry.cli`; the work is :func:`registry.drafting.draft_manifest`.  Module-level
imports stay light (pandas and onnxruntime load when the command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli_kit import CommandFailed, JsonFlag, emit
from registry.config import SharedSettings, load_settings

if TYPE_CHECKING:
    from registry.drafting import Draft


def init_manifest(
    model: Annotated[Path, typer.Argument(help="The ONNX model file, as exported.")],
    sample: Annotated[
        Path,
        typer.Option("--sample", "-s", help="Input rows the model was made for (.csv, .parquet)."),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Model name (default: SHADOWLINE_MODEL_NAME or fraud)."),
    ] = None,
    version: Annotated[str, typer.Option("--version", help="The version to register.")] = "v1",
    amount_field: Annotated[
        str | None,
        typer.Option(
            "--amount-field",
            help="The field holding the amount (default: the one field named *amount*).",
        ),
    ] = None,
    block_rate: Annotated[
        float, typer.Option("--block-rate", min=0.0, max=1.0, help="Share of the sample to block.")
    ] = 0.01,
    review_rate: Annotated[
        float,
        typer.Option(
            "--review-rate", min=0.0, max=1.0, help="Share of the sample to review or block."
        ),
    ] = 0.05,
    golden: Annotated[
        int, typer.Option("--golden", min=10, max=1000, help="Golden examples.")
    ] = 20,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="A sample column the model does not read (repeat)."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="The output holding the probability.")
    ] = None,
    column: Annotated[
        int | None, typer.Option("--column", min=0, help="Its column (default: 1 of 2).")
    ] = None,
    observed_ranges: Annotated[
        bool, typer.Option("--observed-ranges", help="Refuse values outside the sample's ranges.")
    ] = False,
    max_categories: Annotated[
        int, typer.Option("--max-categories", min=1, help="List allowed values up to this many.")
    ] = 50,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write it (default: MODEL.manifest.json)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Draft a complete manifest for MODEL from a sample of its input data (JSON to edit, then
    register): fields, ranges and categories from the graph and the sample, thresholds from
    the block and review rates, golden examples scored by onnxruntime."""
    from registry.drafting import DraftOptions, draft_manifest
    from registry.sample import FieldOptions, read_sample

    target = out or model.with_suffix(".manifest.json")
    if target.exists() and not force:
        raise CommandFailed(f"{target} exists (pass --force to replace it)")
    try:
        artifact = model.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"cannot read model file {model}: {exc.strerror}") from None
    options = DraftOptions(
        name=name or load_settings(SharedSettings).model_name,
        version=version,
        description=f"drafted by init-manifest from {model.name} and {sample.name}",
        amount_field=amount_field,
        block_rate=block_rate,
        review_rate=review_rate,
        golden=golden,
        output=output,
        column=column,
        fields=FieldOptions(
            exclude=tuple(exclude or ()),
            max_categories=max_categories,
            observed_ranges=observed_ranges,
        ),
    )
    draft = draft_manifest(artifact, read_sample(sample), options)
    try:
        target.write_text(draft.manifest.model_dump_json(indent=2, exclude_none=True) + "\n")
    except OSError as exc:
        raise CommandFailed(f"cannot write {target}: {exc.strerror}") from None
    emit(as_json, _data(draft, target), _text(draft, model, target))


def _data(draft: Draft, target: Path) -> dict[str, Any]:
    manifest = draft.manifest
    return {
        "manifest": str(target),
        "ref": manifest.ref,
        "layout": draft.layout,
        "fields": [f.name for f in manifest.input_schema.fields],
        "output": manifest.output.model_dump(),
        "thresholds": manifest.thresholds.model_dump(),
        "block_share": draft.block_share,
        "review_share": draft.review_share,
        "golden_examples": len(manifest.golden_examples),
        "amount_field": manifest.amount_field,
        "notes": list(draft.notes),
    }


def _text(draft: Draft, model: Path, target: Path) -> str:
    manifest = draft.manifest
    fields = ", ".join(
        f"{f.name}:{f.type.value}{'' if f.required else '?'}" for f in manifest.input_schema.fields
    )
    where = manifest.output.name + (
        "" if manifest.output.column is None else f"[:, {manifest.output.column}]"
    )
    return "\n".join(
        [
            f"wrote {target}: {manifest.ref}, inputs {draft.layout}",
            f"  fields      {fields}",
            f"  output      {where}",
            f"  thresholds  review >= {manifest.thresholds.review:.6g} "
            f"({draft.review_share:.1%} of the sample), block >= "
            f"{manifest.thresholds.block:.6g} ({draft.block_share:.1%})",
            f"  golden      {len(manifest.golden_examples)} examples across the score range",
            f"  amount      {manifest.amount_field or '-'}",
            *(f"note: {note}" for note in draft.notes),
            f"register it: shadowline models register {model} --manifest {target}",
        ]
    )
