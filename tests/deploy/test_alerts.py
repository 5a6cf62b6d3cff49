"""The alert rules: promtool's unit tests pass, every alert is shown firing and NOT firing, and
each guardrail rule has a ``for:``, a severity, a summary and a runbook that exists."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy import prometheus

UNIT_TESTS = prometheus.ROOT / "tests/deploy/promtool/alerts_test.yml"
OPERATIONS = prometheus.ROOT / "docs/operations.md"
GUARDRAILS = "shadowline-guardrails"


def expectations() -> dict[str, list[list[Any]]]:
    """Per alert name, the expected alert lists of every check the unit tests make."""
    found: dict[str, list[list[Any]]] = {}
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            found.setdefault(check["alertname"], []).append(check.get("exp_alerts") or [])
    return found


def test_promtool_runs_the_alert_unit_tests() -> None:
    result = prometheus.promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_shown_firing_and_not_firing() -> None:
    checks = expectations()
    rules = prometheus.alert_rules()
    assert set(checks) == set(rules)
    for name, lists in checks.items():
        assert any(lists), f"{name}: no check where it fires"
        assert not all(lists), f"{name}: no check where it must not fire"


def test_guardrail_rules_have_for_severity_summary_and_runbook() -> None:
    anchors = {
        heading.lower() for heading in re.findall(r"^### (\w+)$", OPERATIONS.read_text(), re.M)
    }
    guardrails = {n: r for n, r in prometheus.alert_rules().items() if r["group"] == GUARDRAILS}
    assert len(guardrails) >= 12
    for name, rule in guardrails.items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
    # Every alert, the first group's too, has a for: window and a runbook section.
    assert all("for" in rule for rule in prometheus.alert_rules().values())
    assert {name.lower() for name in prometheus.alert_rules()} <= anchors
