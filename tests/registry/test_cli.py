"""`shadowline models ...` end to end against a real Redis and a real artifact directory."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from typer.testing import CliRunner

from registry.constants import audit_key
from shadowline.cli import app
from tests.exported_models import sklearn_per_column, training_frame
from tests.factories import logistic_model, make_manifest
from tests.registry.helpers import Run, error_line, ok


def _files(folder: Path, version: str, bias: float = -2.0) -> tuple[str, str]:
    model = logistic_model(bias=bias)
    (folder / f"{version}.onnx").write_bytes(model)
    manifest = make_manifest(model, version=version)
    (folder / f"{version}.json").write_text(manifest.model_dump_json(indent=2))
    return f"{version}.onnx", f"{version}.json"


def test_the_whole_lifecycle(run: Run, in_tmp_cwd: Path) -> None:
    model, manifest = _files(in_tmp_cwd, "v1")
    out = ok(run("register", model, "--manifest", manifest, "--actor", "alice"))
    assert out.startswith("registered fraud:v1 (sha256 ")
    assert out.endswith(", 12 golden examples match)\n")
    assert ok(run("shadow", "v1", "--rate", "0.5", "--actor", "alice")) == (
        "fraud:v1 is now shadow (revision 2)\n"
    )
    listed = json.loads(ok(run("list", "--json")))
    assert [(r["version"], r["state"], r["shadow_rate"]) for r in listed] == [("v1", "shadow", 0.5)]
    assert "v1 (0.5)" in ok(run("status"))
    approve = run("approve", "v1", "--reason", "first model", "--force", "--actor", "bob")
    assert ok(approve) == "fraud:v1 is now approved (revision 3)\n"
    assert json.loads(ok(run("promote", "v1", "--json", "--actor", "bob"))) == {
        "name": "fraud",
        "version": "v1",
        "state": "production",
        "revision": 4,
    }
    model2, manifest2 = _files(in_tmp_cwd, "v2", bias=-1.0)
    ok(run("register", model2, "-m", manifest2))
    ok(run("approve", "v2", "-r", "urgent fix", "--force"))
    ok(run("promote", "v2"))
    assert ok(run("rollback", "--reason", "false declines")) == (
        "fraud:v1 is now production (revision 8)\n"
    )
    status = json.loads(ok(run("status", "--json")))
    assert status == {
        "name": "fraud",
        "production": "v1",
        "previous_production": None,
        "revision": 8,
        "shadows": {},
    }
    shown = json.loads(ok(run("show", "v2", "--json")))
    assert shown["state"] == "retired"
    assert shown["manifest"]["version"] == "v2"
    text = ok(run("show", "v1", "--name", "fraud"))
    assert text.splitlines()[0] == "fraud:v1  state production"
    assert "  thresholds  review >= 0.5, block >= 0.9" in text.splitlines()
    log = json.loads(ok(run("audit", "--json")))
    assert [(e["action"], e["version"], e["to"]) for e in log][-2:] == [
        ("rollback", "v2", "retired"),
        ("rollback", "v1", "production"),
    ]
    assert log[0]["actor"] == "alice"
    assert "rollback  v1" in ok(run("audit"))
    assert ok(run("audit", "verify")) == "fraud: audit log intact (10 entries)\n"
    ok(run("register", *_files(in_tmp_cwd, "v3", bias=-3.0)[:1], "-m", "v3.json"))
    ok(run("shadow", "v3", "--rate", "1"))
    ok(run("unshadow", "v3"))
    ok(run("retire", "v3"))
    ok(run("register", *_files(in_tmp_cwd, "v4", bias=-3.5)[:1], "-m", "v4.json"))
    assert ok(run("reject", "v4", "--reason", "bad recall")) == (
        "fraud:v4 is now rejected (revision 14)\n"
    )
    assert "fraud  v4       rejected" in ok(run("list"))


def test_errors_are_one_line_without_traceback(run: Run, in_tmp_cwd: Path) -> None:
    assert error_line(run("promote", "v9")) == "error: model fraud:v9 is not registered"
    assert error_line(run("register", "missing.onnx", "--manifest", "m.json")) == (
        "error: cannot read manifest m.json: No such file or directory"
    )
    (in_tmp_cwd / "bad.onnx").write_bytes(b"not a model")
    _, manifest = _files(in_tmp_cwd, "v1")
    assert error_line(run("register", "bad.onnx", "--manifest", manifest)) == (
        "error: model fraud:v1 refused: not an ONNX model (it does not parse: Error parsing "
        "message with type 'onnx.ModelProto': Wire format was corrupt)"
    )
    (in_tmp_cwd / "broken.json").write_text('{"name": "fraud", "version": "v1"}')
    assert error_line(run("register", "v1.onnx", "--manifest", "broken.json")) == (
        "error: manifest broken.json is not valid: input_schema: Field required; "
        "thresholds: Field required; golden_examples: Field required"
    )
    assert error_line(run("register", "missing.onnx", "--manifest", manifest)) == (
        "error: cannot read model file missing.onnx: No such file or directory"
    )
    (in_tmp_cwd / "garbage.json").write_bytes(b"\xff\xfe")
    assert error_line(run("register", "v1.onnx", "--manifest", "garbage.json")) == (
        "error: manifest garbage.json is not UTF-8 text (invalid start byte)"
    )
    ok(run("register", "v1.onnx", "--manifest", manifest))
    assert error_line(run("promote", "v1")) == (
        "error: cannot promote model fraud:v1: it is in state registered; "
        "allowed moves: approve, reject, retire, shadow"
    )
    assert error_line(run("approve", "v1", "--reason", "ok")) == (
        "error: cannot approve model fraud:v1: rule evidence_required: no shadow evidence is "
        "recorded for it (run shadow analysis, or force with a written reason)"
    )
    assert error_line(run("shadow", "v1", "--rate", "2")) == (
        "error: shadow rate must be in (0, 1]; got 2.0"
    )
    assert error_line(run("rollback")) == (
        "error: cannot roll back model fraud: it has no production version"
    )
    assert (
        error_line(run("rollback", "--name", "nope")) == "error: no model named nope is registered"
    )
    assert error_line(run("audit", "--name", "nope")) == "error: no model named nope is registered"


def test_bad_usage_exits_2(run: Run) -> None:
    assert run("shadow", "v1").exit_code == 2  # --rate missing
    assert run("approve", "v1").exit_code == 2  # --reason missing
    assert run("shadow", "v1", "--rate", "lots").exit_code == 2


def test_bad_settings_exit_2(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(
        app, ["models", "list"], env={"SHADOWLINE_REDIS_URL": "http://example.com"}
    )
    message = error_line(result, code=2)
    assert message == (
        "error: invalid settings for SharedSettings: SHADOWLINE_REDIS_URL=<hidden>: Value "
        "error, must be a redis://, rediss:// or unix:// URL"
    )


def test_unreachable_redis(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(
        app, ["models", "list"], env={"SHADOWLINE_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert error_line(result).startswith("error: Redis: Error 111 connecting to 127.0.0.1:1.")


def test_tampered_audit_fails_verify(run: Run, in_tmp_cwd: Path, redis_client: redis.Redis) -> None:
    model, manifest = _files(in_tmp_cwd, "v1")
    ok(run("register", model, "--manifest", manifest))
    ok(run("shadow", "v1", "--rate", "0.1"))
    ok(run("unshadow", "v1"))
    entries = json.loads(ok(run("audit", "--json")))
    redis_client.xdel(audit_key("fraud"), entries[1]["id"])
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "fraud: audit log TAMPERED (2 problems)",
        f"  entry 3 (id {entries[2]['id']}): entry 2 is missing",
        f"  entry 3 (id {entries[2]['id']}): its previous-entry hash does not match the entry "
        "before it",
    ]
    assert json.loads(run("audit", "verify", "--json").stdout)["ok"] is False


def test_audit_shows_control_characters_escaped(run: Run, in_tmp_cwd: Path) -> None:
    """A newline in a reason or an actor used to print what looked like another entry."""
    model, manifest = _files(in_tmp_cwd, "v1")
    ok(run("register", model, "--manifest", manifest, "--actor", "alice"))
    forged = 'ok"\n   9 2026-11-27T09:00:00+00:00 alice    promote   v1'
    ok(run("reject", "v1", "--reason", forged, "--actor", "eve\x1b[2K\u202eana"))
    lines = ok(run("audit")).splitlines()
    assert len(lines) == 2  # one line per entry, whatever the text holds
    assert lines[1].endswith('"ok"\\n   9 2026-11-27T09:00:00+00:00 alice    promote   v1"')
    assert "eve\\x1b[2K\\u202eana" in lines[1]
    raw = json.loads(ok(run("audit", "--json")))
    assert (raw[1]["reason"], raw[1]["actor"]) == (forged, "eve\x1b[2K\u202eana")  # stored as is


def test_init_manifest_drafts_what_register_accepts(run: Run, in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "model.onnx").write_bytes(sklearn_per_column())
    training_frame().to_csv(in_tmp_cwd / "sample.csv", index=False)
    out = ok(run("init-manifest", "model.onnx", "--sample", "sample.csv", "--version", "byo-1"))
    assert out.splitlines()[0] == (
        "wrote model.manifest.json: fraud:byo-1, inputs per-column (6 inputs)"
    )
    assert out.splitlines()[-1] == (
        "register it: shadowline models register model.onnx --manifest model.manifest.json"
    )
    assert error_line(run("init-manifest", "model.onnx", "-s", "sample.csv")) == (
        "error: model.manifest.json exists (pass --force to replace it)"
    )
    drafted = json.loads(
        ok(
            run(
                "init-manifest",
                "model.onnx",
                "-s",
                "sample.csv",
                "--version",
                "byo-1",
                "--force",
                "--json",
                "--block-rate",
                "0.02",
            )
        )
    )
    assert drafted["manifest"] == "model.manifest.json"
    assert drafted["amount_field"] == "amount_usd"
    assert drafted["block_share"] >= 0.02
    registered = ok(run("register", "model.onnx", "--manifest", "model.manifest.json"))
    assert registered.startswith("registered fraud:byo-1 (sha256 ")
    assert registered.endswith(", 20 golden examples match)\n")
    shown = json.loads(ok(run("show", "byo-1", "--json")))["manifest"]
    assert shown["lineage"]["source_layout"] == "per-column (6 inputs)"
    training_frame().drop(columns=["channel"]).to_csv(in_tmp_cwd / "partial.csv", index=False)
    assert error_line(run("init-manifest", "model.onnx", "-s", "partial.csv", "-o", "x.json")) == (
        "error: the sample has no column 'channel' for the graph input of that name (its "
        "columns: amount_usd, account_age_days, foreign_card, merchant_country, device_os)"
    )
    assert not (in_tmp_cwd / "x.json").exists()
    assert error_line(run("init-manifest", "nothing.onnx", "-s", "sample.csv")) == (
        "error: cannot read model file nothing.onnx: No such file or directory"
    )
