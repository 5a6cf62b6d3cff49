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

from registry.audit import printable
from registry.cli_draft import init_manifest
from registry.cli_kit import CommandFailed, JsonFlag, commands, emit, guarded
from registry.config import SharedSettings, load_settings

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


# The registries a command opened, closed when the command ends (a CLI process may be a
# long-lived test runner, where an unclosed Redis socket is a ResourceWarning).
_opened: ContextVar[list[ModelRegistry] | None] = ContextVar("_opened", default=None)


@contextmanager
def _closing() -> Iterator[None]:
    token = _opened.set([])
    try:
        yield
    finally:
        for registry in _opened.get() or []:
            registry.close()
        _opened.reset(token)


command = commands(app, around=_closing)
audit_command = commands(audit_app, around=_closing)
command("init-manifest")(init_manifest)


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


def _report_state(registry: ModelRegistry, name: str, version: str, as_json: bool) -> None:
    state = registry.state(name, version)
    revision = registry.deployment(name).revision
    emit(
        as_json,
        {"name": name, "version": version, "state": state.value, "revision": revision},
        f"{name}:{version} is now {state.value} (revision {revision})",
    )


@command("register")
def register(
    path: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    manifest_file: Annotated[
        Path, typer.Option("--manifest", "-m", help="The manifest (JSON) of the model.")
    ],
    reason: Reason = "",
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate a model against its manifest and register it (nothing is stored if it fails)."""
    from registry.manifest import read_manifest

    manifest = read_manifest(manifest_file)
    try:
        artifact = path.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"cannot read model file {path}: {exc.strerror}") from None
    registry, _ = _open(manifest.name)
    stored = registry.register(artifact, manifest, actor=actor or _default_actor(), reason=reason)
    emit(
        as_json,
        json.loads(stored.model_dump_json()),
        f"registered {stored.ref} (sha256 {stored.sha256}, "
        f"{len(stored.golden_examples)} golden examples match)",
    )


@command("list")
def list_models(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only this model name (default: all).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every registered version with its state and shadow rate."""
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
    emit(as_json, rows, "\n".join(lines) if rows else "no models registered")


@command("show")
def show(version: Version, name: Name = None, as_json: JsonFlag = False) -> None:
    """One version: state, artifact, contract, metrics, lineage and shadow evidence."""
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
        f"{f.name}:{f.type.value}{'' if f.required else '?'}" for f in manifest.input_schema.fields
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
        "  metrics     " + (", ".join(f"{k}={v:g}" for k, v in manifest.metrics.items()) or "-"),
        "  lineage     "
        + (", ".join(f"{k}={v}" for k, v in manifest.lineage.model_dump().items() if v) or "-"),
        f"  golden      {len(manifest.golden_examples)} examples",
    ]
    if evidence is not None:
        lines.append(f"  evidence    {evidence.ref}: {evidence.summary()}")
    emit(as_json, data, "\n".join(lines))


@command("status")
def status(name: Name = None, as_json: JsonFlag = False) -> None:
    """The live set of a model name: production, rollback target, shadows, revision."""
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
    emit(as_json, data, text)


def _move(
    action: str,
    version: str | None,
    name: str | None,
    actor: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Every lifecycle move of the command line: open the registry, call its method
    ``action`` as ``actor`` (default: the OS user), print the version's new state."""
    registry, name = _open(name)
    move = getattr(registry, action)
    who = actor or _default_actor()
    if version is None:  # rollback: the registry says which version is production now
        version = move(name, actor=who, **options)
    else:
        move(name, version, actor=who, **options)
    _report_state(registry, name, str(version), as_json)


@command("shadow")
def shadow(
    version: Version,
    rate: Annotated[float, typer.Option("--rate", help="Share of requests to score, (0, 1].")],
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """registered -> shadow: score a share of live requests with it, off the request path."""
    _move("shadow", version, name, actor, rate=rate, reason=reason, as_json=as_json)


@command("unshadow")
def unshadow(
    version: Version,
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """shadow -> registered: stop scoring with it in shadow."""
    _move("unshadow", version, name, actor, reason=reason, as_json=as_json)


@command("approve")
def approve(
    version: Version,
    reason: RequiredReason,
    force: Annotated[
        bool, typer.Option("--force", help="Approve despite the policy (the reason is kept).")
    ] = False,
    name: Name = None,
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """registered/shadow -> approved, if the shadow evidence satisfies the approval policy."""
    _move("approve", version, name, actor, reason=reason, force=force, as_json=as_json)


@command("promote")
def promote(
    version: Version,
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """approved -> production; the old production version is retired and kept for rollback."""
    _move("promote", version, name, actor, reason=reason, as_json=as_json)


@command("rollback")
def rollback(
    name: Name = None, reason: Reason = "", actor: Actor = None, as_json: JsonFlag = False
) -> None:
    """Return production to the previous production version, in one step."""
    _move("rollback", None, name, actor, reason=reason, as_json=as_json)


@command("retire")
def retire(
    version: Version,
    name: Name = None,
    reason: Reason = "",
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """registered/shadow/approved -> retired."""
    _move("retire", version, name, actor, reason=reason, as_json=as_json)


@command("reject")
def reject(
    version: Version,
    reason: RequiredReason,
    name: Name = None,
    actor: Actor = None,
    as_json: JsonFlag = False,
) -> None:
    """registered/shadow/approved -> rejected (terminal)."""
    _move("reject", version, name, actor, reason=reason, as_json=as_json)


def audit(ctx: typer.Context, name: Name = None, as_json: JsonFlag = False) -> None:
    """Show the audit log of a model name, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    registry, name = _open(name)
    entries = registry.audit(name)
    lines = []
    for e in entries:
        # Free text is shown with its control characters escaped: a newline in a reason must
        # not print what looks like another entry.
        move = f"{e.from_state or '-'} -> {e.to_state}"
        why = f'  "{printable(e.reason)}"' if e.reason else ""
        extra = f"  [{printable(e.detail)}]" if e.detail else ""
        ref = f"  {printable(e.evidence)}" if e.evidence else ""
        lines.append(
            f"{e.seq:4} {e.at.isoformat(timespec='seconds')} {printable(e.actor):12} "
            f"{e.action:9} {e.version:12} {move}{why}{extra}{ref}"
        )
    emit(as_json, [e.as_dict() for e in entries], "\n".join(lines))


audit_app.callback(invoke_without_command=True)(guarded(audit, around=_closing))


@audit_command("verify")
def audit_verify(name: Name = None, as_json: JsonFlag = False) -> None:
    """Check the audit log's hash chain; exit 1 if an entry was edited or removed."""
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
    emit(as_json, data, text)
    if not result.ok:
        raise typer.Exit(1)
