"""`shadowline demo` end to end: real stack, pipeline, scorer, topics, labels and registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shadowline.cli import app

runner = CliRunner()


def test_demo_runs_the_loop_from_shadow_to_approval_promotion_and_rollback(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Less training data than the demo's default, so the three training runs take seconds, but
    # enough that a model trained up to the demo's "today" beats the stale one (at 4,000 rows a
    # week the models are noise and the policy rightly refuses); the subcommands inherit it.
    monkeypatch.setenv("SHADOWLINE_SYNTHETIC_ROWS_PER_WEEK", "12000")
    monkeypatch.setenv("SHADOWLINE_N_TREES", "50")
    try:
        result = runner.invoke(app, ["demo"])
        output = result.output
        assert result.exit_code == 0, output
        # Printed commands can be pasted into a shell: the reason is quoted.
        assert "--force --reason 'demo: first production model (no earlier model" in output
        # The challenger's data is as of the demo's fixed "today", not the calendar's.
        challenger = re.search(
            r"shadowline retrain run --as-of 2026-03-12T12:00:00 --json\n  succeeded: fraud:(\S+)",
            output,
        )
        assert challenger is not None, output
        version = challenger.group(1)
        assert "(control of fraud:" in output
        assert "would-be blocks explored" in output
        assert re.search(r"\n  \d+ fraud labels taken", output)
        # The evidence: intervals, the noise floor, and the policy satisfied without force.
        assert "fraud caught at production's block rate" in output
        assert "estimator: ipw" in output
        assert "noise floor: The challenger" in output
        assert "approval policy: satisfied" in output
        approve = f"$ shadowline models approve {version} --reason "
        assert approve in output
        assert "--force" not in output.split(approve, 1)[1].splitlines()[0]
        assert f"POST /v1/score: 200 model={version}" in output
        assert "$ shadowline models rollback" in output
        assert Path(output.split("the evidence report: ", 1)[1].split()[0]).is_file()
    finally:
        runner.invoke(app, ["stack", "down"])


def test_a_control_that_did_not_reach_shadow_stops_the_demo_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gates never keep a control out of shadow (retrain.control), so a control run that
    did not end in shadow is a failure the demo names, as it does the challenger's, rather than
    a walkthrough without its noise floor."""
    from shadowline import demo

    today = ("--as-of", demo.DEMO_TODAY.strftime("%Y-%m-%dT%H:%M:%S"))
    answers = {
        today: {"outcome": "succeeded", "reason": "in shadow at rate 1", "model_version": "c1"},
        ("--control",): {
            "outcome": "rejected",
            "reason": "gate failed: amount=100-500: confidently worse",
            "model_version": "k1",
        },
    }

    def run(echo: object, *args: str, **_: object) -> dict[str, str]:
        return answers[args[2:]]  # ("retrain", "run", ...)

    monkeypatch.setattr(demo, "_json", run)
    said: list[str] = []
    with pytest.raises(demo.DemoError) as caught:
        demo._challenger_and_control(said.append, "p1")
    assert str(caught.value) == (
        "the control did not reach shadow: gate failed: amount=100-500: confidently worse"
    )
    assert said[-1] == "  rejected: gate failed: amount=100-500: confidently worse"
    answers[("--control",)]["outcome"] = "succeeded"
    assert demo._challenger_and_control(said.append, "p1") == ("c1", "k1")
