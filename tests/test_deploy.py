"""The deployment files agree with the code: compose variables, image targets, alert rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from retrain.settings import ArchiveSettings, RetrainSettings
from service.settings import ServiceSettings
from shadowline.stack import TOPIC_RETENTION_MS

ROOT = Path(__file__).resolve().parent.parent
PROCESS_SETTINGS: dict[str, type[BaseSettings]] = {
    "scorer": ServiceSettings,
    "retrain-worker": RetrainSettings,
    "archiver": ArchiveSettings,
}


def _variables(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_one_worker_per_scorer_a_redis_password_and_no_anonymous_grafana() -> None:
    # The variables themselves are checked against the settings classes in
    # tests/deploy/test_environment.py.
    services = _compose()["services"]
    assert services["scorer"]["environment"]["SHADOWLINE_WORKERS"] == "1"
    password = "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    assert services["redis"]["command"][-2:] == ["--requirepass", password]
    for name in ("scorer", "retrain-worker"):
        url = services[name]["environment"]["SHADOWLINE_REDIS_URL"]
        assert url == f"redis://:{password}@redis:6379/0", name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana


def test_compose_runs_every_part_of_the_system() -> None:
    services = set(_compose()["services"])
    assert {"kafka", "redis", "prometheus", "grafana", "scorer", "retrain-worker"} <= services


def test_compose_builds_the_dockerfile_targets() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.MULTILINE))
    services = _compose()["services"]
    built = {svc["build"]["target"] for svc in services.values() if "build" in svc}
    assert built == {"scorer", "retrain-worker"}
    assert built <= targets


def test_images_run_as_non_root_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for target in ("scorer", "retrain-worker"):
        stage = dockerfile.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "\nUSER 10001\n" in stage, target
        assert "HEALTHCHECK" in stage, target


def test_scorer_image_refuses_the_placeholder_token_and_volumes_are_writable() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    scorer = dockerfile.split(" AS scorer\n", 1)[1].split("\nFROM ", 1)[0]
    assert "SHADOWLINE_ENVIRONMENT=production" in scorer
    base = dockerfile.split(" AS base\n", 1)[1].split("\nFROM ", 1)[0]
    assert "chown 10001:10001 /artifacts /runs /archive" in base
    mounts = {
        volume.split(":")[1]
        for svc in _compose()["services"].values()
        for volume in svc.get("volumes", [])
        if volume.split(":")[0] in {"artifacts", "runs", "archive"}
    }
    assert mounts == {"/artifacts", "/runs", "/archive"}


def test_compose_topics_keep_records_as_long_as_the_local_stack_does() -> None:
    # The archiver must read every record before the broker deletes it (docs/archive.md).
    init = " ".join(_compose()["services"]["kafka-init"]["command"])
    assert f"--config retention.ms={TOPIC_RETENTION_MS};" in init
    assert _compose()["services"]["archiver"]["command"] == ["shadowline", "archive"]


def test_prometheus_config_loads_the_alert_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert "ShadowlineRetrainRunFailed" in names
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["shadowline-archiver"]["static_configs"] == [{"targets": ["archiver:9102"]}]


def test_the_scorer_image_can_reach_s3_but_carries_no_training_library() -> None:
    locked = {
        line.split("==", 1)[0]
        for line in (ROOT / "requirements-scorer.lock").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert {"boto3", "onnxruntime", "fastapi", "confluent-kafka"} <= locked  # its producer
    assert not {"lightgbm", "scikit-learn", "pandas", "checkov"} & locked


def test_importing_the_scorer_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, service.main, registry.connections as c; from registry import "
        "SharedSettings, load_settings; c.artifact_store(load_settings(SharedSettings)); "
        "print(sorted({'boto3', 'botocore'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
