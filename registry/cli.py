"""`shadowline models ...`: the registry from the command line (mounted by shadowline.cli).

Every command that acts on one version takes the version as its argument and the model name
as ``--name`` (default: ``SHADOWLINE_MODEL_NAME``, else ``fraud``).  Output is for people by
default and JSON with ``--json``.  Errors print one line ``error: ...`` on stderr and exit 1
(2 for bad usage or bad settings); never a traceback.

Keep module-level imports light: `shadowline stack status` imports this module too.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.config import SettingsError, SharedSettings, load_settings

if TYPE_CHECKING:
    from registry.lifecycle import ModelRegistry

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
audit_app = typer.Typer(
    help="The audit log of a model name: show it, or verify its hash chain.",
    pretty_exceptions_enable=False,
)
app.add_typer(audit_app, name="audit")


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "unknown"


Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Name = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Model name (default: SHADOWLINE_MODEL_NAME or fraud)."),
]
Version = Annotated[str, typer.Argument(help="The model version, e.g. v3.")]
Actor = Annotated[str | None, typer.Option("--actor", help="Who does this (default: the OS user).")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the audit log).")]
RequiredReason = Annotated[
    str, typer.Option("--reason", "-r", help="Why (required; kept in the audit log).")
]


class _Failed(Exception):
    """A user-facing failure: one line, an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# The registries a command opened, closed when the command ends (a CLI process may be a
# long-lived test runner, where an unclosed Redis socket is a ResourceWarning).
_opened: ContextVar[list[ModelRegistry] | None] = ContextVar("_opened", default=None)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn every expected failure into ``error: ...`` on stderr and a non-zero exit."""
    import pydantic
    import redis

    from registry.errors import RegistryError

    token = _opened.set([])
    try:
        yield
    except _Failed as exc:
        _exit(str(exc), exc.code)
    except SettingsError as exc:
        _exit(" ".join(str(exc).split()), 2)
    except RegistryError as exc:
        _exit(str(exc), 1)
    except redis.RedisError as exc:
        _exit(f"Redis: {exc}", 1)
    except pydantic.ValidationError as exc:  # e.g. a stored record that no longer parses
        from registry.manifest import describe_validation_error

        _exit(f"invalid {exc.title}: {describe_validation_error(exc)}", 1)
    finally:
        for registry in _opened.get() or []:
            registry.close()
        _opened.reset(token)


def _exit(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _settings() -> SharedSettings:
    return load_settings(SharedSettings)


def _registry(settings: SharedSettings) -> ModelRegistry:
    from registry.connections import model_registry

    registry = model_registry(settings)
    opened = _opened.get()
    if opened is not None:
        opened.append(registry)
    return registry


def _open(name: str | None) -> tuple[ModelRegistry, str]:
    settings = _settings()
    return _registry(settings), name or settings.model_name


def _print(as_json: bool, data: Any, text: str) -> None:
    typer.echo(json.dumps(data, default=str, sort_keys=True) if as_json else text)


def _report_state(registry: ModelRegistry, name: str, version: str, as_json: bool) -> None:
    state = registry.state(name, version)
    revision = registry.deployment(name).revision
    _print(
        as_json,
        {"name": name, "version": version, "state": state.value, "revision": revision},
        f"{name}:{version} is now {state.value} (revision {revision})",
    )


@app.command("register")
def register(
    path: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    manifest_file: Annotated[
        Path, typer.Option("--manifest", "-m", help="The manifest (JSON) of the model.")
    ],
    reason: Reason = "",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Validate a model against its manifest and register it (nothing is stored if it fails)."""
    with _errors():
        from registry.manifest import read_manifest

        manifest = read_manifest(manifest_file)
        try:
            artifact = path.read_bytes()
        except OSError as exc:
            raise _Failed(f"cannot read model file {path}: {exc.strerror}") from None
        registry, _ = _open(manifest.name)
        stored = registry.register(
            artifact, manifest, actor=actor or _default_actor(), reason=reason
        )
        _print(
            as_json,
            json.loads(stored.model_dump_json()),
            f"registered {stored.ref} (sha256 {stored.sha256}, "
            f"{len(stored.golden_examples)} golden examples match)",
        )


@app.command("init-manifest")
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
    as_json: Json = False,
) -> None:
    """Draft a complete manifest for MODEL from a sample of its input data (JSON to edit, then
    register): fields, ranges and categories from the graph and the sample, thresholds from
    the block and review rates, golden examples scored by onnxruntime."""
    with _errors():
        from registry.drafting import DraftOptions, draft_manifest
        from registry.sample import FieldOptions, read_sample

        target = out or model.with_suffix(".manifest.json")
        if target.exists() and not force:
            raise _Failed(f"{target} exists (pass --force to replace it)")
        try:
            artifact = model.read_bytes()
        except OSError as exc:
            raise _Failed(f"cannot read model file {model}: {exc.strerror}") from None
        options = DraftOptions(
            name=name or _settings().model_name,
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
            raise _Failed(f"cannot write {target}: {exc.strerror}") from None
        manifest = draft.manifest
        data = {
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
        fields = ", ".join(
            f"{f.name}:{f.type.value}{'' if f.required else '?'}"
            for f in manifest.input_schema.fields
        )
        where = manifest.output.name + (
            "" if manifest.output.column is None else f"[:, {manifest.output.column}]"
        )
        lines = [
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
        _print(as_json, data, "\n".join(lines))


@app.command("list")
def list_models(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only this model name (default: all).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Every registered version with its state and shadow rate."""
    with _errors():
        registry = _registry(_settings())
        statuses = registry.list(name)
        rows = [
            {
                "name": s.name,
                "version": s.version,
                "state": s.state.value,
                "shadow_rate": s.shadow_rate,
                "sha256": s.sha256,
                "registered_at": s.registered_at.isoformat(timespec="seconds"),
            }
            for s in statuses
        ]
        # Columns as wide as their longest value: retrain versions are 23-character run ids.
        nw = max([4, *(len(str(r["name"])) for r in rows)]) + 1
        vw = max([7, *(len(str(r["version"])) for r in rows)]) + 1
        lines = [f"{'NAME':{nw}} {'VERSION':{vw}} {'STATE':11} {'RATE':6} {'SHA256':14} REGISTERED"]
        lines += [
            f"{r['name']:{nw}} {r['version']:{vw}} {r['state']:11} "
            f"{'' if r['shadow_rate'] is None else format(r['shadow_rate'], 'g'):6} "
            f"{str(r['sha256'])[:12]:14} {r['registered_at']}"
            for r in rows
        ]
        _print(as_json, rows, "\n".join(lines) if rows else "no models registered")


@app.command("show")
def show(version: Version, name: Name = None, as_json: Json = False) -> None:
    """One version: state, artifact, contract, metrics, lineage and shadow evidence."""
    with _errors():
        registry, name = _open(name)
        manifest = registry.manifest(name, version)
        state = registry.state(name, version)
        evidence = registry.evidence(name, version)
        data = {
            "state": state.value,
            "manifest": json.loads(manifest.model_dump_json()),
            "evidence": json.loads(evidence.model_dump_json()) if evidence else None,
        }
        schema = ", ".join(
            f"{f.name}:{f.type.value}{'' if f.required else '?'}"
            for f in manifest.input_schema.fields
        )
        lines = [
            f"{manifest.ref}  state {state.value}",
            f"  sha256      {manifest.sha256}",
            f"  created_at  {manifest.created_at}",
            f"  inputs      {schema}",
            f"  output      {manifest.output.name}"
            + ("" if manifest.output.column is None else f"[:, {manifest.output.column}]"),
            f"  thresholds  review >= {manifest.thresholds.review:g}, "
            f"block >= {manifest.thresholds.block:g}",
            "  metrics     "
            + (", ".join(f"{k}={v:g}" for k, v in manifest.metrics.items()) or "-"),
            "  lineage     "
            + (", ".join(f"{k}={v}" for k, v in manifest.lineage.model_dump().items() if v) or "-"),
            f"  golden      {len(manifest.golden_examples)} examples",
        ]
        if evidence is not None:
            lines.append(
                f"  evidence    {evidence.ref}: {evidence.shadow_records} shadow records, "
                f"{evidence.metric} {evidence.challenger_value:.4f}"
                + (
                    f" vs {evidence.production_value:.4f} ({evidence.production_version})"
                    if evidence.production_value is not None
                    else ""
                )
            )
        _print(as_json, data, "\n".join(lines))


@app.command("status")
def status(name: Name = None, as_json: Json = False) -> None:
    """The live set of a model name: production, rollback target, shadows, revision."""
    with _errors():
        registry, name = _open(name)
        d = registry.deployment(name)
        data = {
            "name": d.name,
            "revision": d.revision,
            "production": d.production,
            "previous_production": d.previous_production,
            "shadows": dict(d.shadows),
        }
        shadows = ", ".join(f"{v} ({r:g})" for v, r in d.shadows.items()) or "-"
        text = (
            f"{d.name} (revision {d.revision})\n  production  {d.production or '-'}\n"
            f"  rollback to {d.previous_production or '-'}\n  shadows     {shadows}"
        )
        _print(as_json, data, text)


@app.command("shadow")
def shadow(
    version: Version,
    rate: Annotated[float, typer.Option("--rate", help="Share of requests to score, (0, 1].")],
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """registered -> shadow: score a share of live requests with it, off the request path."""
    with _errors():
        registry, name = _open(name)
        registry.shadow(name, version, rate=rate, actor=actor or _default_actor(), reason=reason)
        _report_state(registry, name, version, as_json)


@app.command("unshadow")
def unshadow(
    version: Version,
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """shadow -> registered: stop scoring with it in shadow."""
    with _errors():
        registry, name = _open(name)
        registry.unshadow(name, version, actor=actor or _default_actor(), reason=reason)
        _report_state(registry, name, version, as_json)


@app.command("approve")
def approve(
    version: Version,
    reason: RequiredReason,
    force: Annotated[
        bool, typer.Option("--force", help="Approve despite the policy (the reason is kept).")
    ] = False,
    name: Name = None,
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """registered/shadow -> approved, if the shadow evidence satisfies the approval policy."""
    with _errors():
        registry, name = _open(name)
        registry.approve(name, version, actor=actor or _default_actor(), reason=reason, force=force)
        _report_state(registry, name, version, as_json)


@app.command("promote")
def promote(
    version: Version,
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """approved -> production; the old production version is retired and kept for rollback."""
    with _errors():
        registry, name = _open(name)
        registry.promote(name, version, actor=actor or _default_actor(), reason=reason)
        _report_state(registry, name, version, as_json)


@app.command("rollback")
def rollback(
    name: Name = None, reason: Reason = "", actor: Actor = None, as_json: Json = False
) -> None:
    """Return production to the previous production version, in one step."""
    with _errors():
        registry, name = _open(name)
        version = registry.rollback(name, actor=actor or _default_actor(), reason=reason)
        _report_state(registry, name, version, as_json)


@app.command("retire")
def retire(
    version: Version,
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """registered/shadow/approved -> retired."""
    with _errors():
        registry, name = _open(name)
        registry.retire(name, version, actor=actor or _default_actor(), reason=reason)
        _report_state(registry, name, version, as_json)


@app.command("reject")
def reject(
    version: Version,
    reason: RequiredReason,
    name: Name = None,
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """registered/shadow/approved -> rejected (terminal)."""
    with _errors():
        registry, name = _open(name)
        registry.reject(name, version, actor=actor or _default_actor(), reason=reason)
        _report_state(registry, name, version, as_json)


@audit_app.callback(invoke_without_command=True)
def audit(ctx: typer.Context, name: Name = None, as_json: Json = False) -> None:
    """Show the audit log of a model name, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    with _errors():
        registry, name = _open(name)
        entries = registry.audit(name)
        lines = []
        for e in entries:
            move = f"{e.from_state or '-'} -> {e.to_state}"
            why = f'  "{e.reason}"' if e.reason else ""
            extra = f"  [{e.detail}]" if e.detail else ""
            ref = f"  {e.evidence}" if e.evidence else ""
            lines.append(
                f"{e.seq:4} {e.at.isoformat(timespec='seconds')} {e.actor:12} {e.action:9} "
                f"{e.version:12} {move}{why}{extra}{ref}"
            )
        _print(as_json, [e.as_dict() for e in entries], "\n".join(lines))


@audit_app.command("verify")
def audit_verify(name: Name = None, as_json: Json = False) -> None:
    """Check the audit log's hash chain; exit 1 if an entry was edited or removed."""
    with _errors():
        registry, name = _open(name)
        result = registry.verify_audit(name)
        data = {
            "name": result.name,
            "entries": result.entries,
            "ok": result.ok,
            "problems": list(result.problems),
        }
        if result.ok:
            text = f"{name}: audit log intact ({result.entries} entries)"
        else:
            text = "\n".join(
                [f"{name}: audit log TAMPERED ({len(result.problems)} problems)"]
                + [f"  {p}" for p in result.problems]
            )
        _print(as_json, data, text)
        if not result.ok:
            raise typer.Exit(1)
