"""docs/models.md cannot rot: its manifest example parses, its recipe and commands run."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from registry.manifest import Manifest
from tests.exported_models import training_frame, training_labels
from tests.registry.helpers import Run, ok

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)


def test_the_example_manifest_is_a_valid_manifest() -> None:
    [example] = _blocks("json")
    manifest = Manifest.model_validate_json(example)
    assert manifest.amount_field == "amount_usd"
    assert [f.name for f in manifest.input_schema.fields] == [
        "amount_usd",
        "account_age_days",
        "foreign_card",
        "merchant_country",
        "channel",
        "device_os",
    ]
    assert len(manifest.golden_examples) == 10
    # Every key of the example is explained in the table below it.
    table = DOC.read_text().split("| key | meaning |")[1].split("\n\n")[0]
    for key in manifest.model_dump(exclude_none=True, exclude={"schema_version"}):
        assert f"`{key}" in table, key


def test_the_recipe_and_its_commands_run_as_written(run: Run, in_tmp_cwd: Path) -> None:
    [recipe] = _blocks("python")
    names = {"frame": training_frame(), "labels": training_labels()}
    exec(compile(recipe, str(DOC), "exec"), names)  # noqa: S102 - the page's own code
    commands: list[str] = []
    for block in _blocks("bash"):
        commands += [line for line in block.splitlines() if line not in commands]
    assert commands == [
        "shadowline models init-manifest model.onnx --sample sample.csv --version v2",
        "shadowline models register model.onnx --manifest model.manifest.json",
        "shadowline models shadow v2 --rate 0.25",
    ]
    for line in commands:
        ok(run(*shlex.split(line)[2:]))
    ok(run("approve", "v2", "--reason", "the page's recipe", "--force"))
    ok(run("promote", "v2"))
    status = json.loads(ok(run("status", "--json")))
    assert status["production"] == "v2"
