"""The Kubernetes manifests, checked offline: every resource of every kustomization validates
against the Kubernetes OpenAPI schemas (kubernetes-validate ships them; strict, so a
misspelt field fails), and the manifests keep the promises docs/production.md makes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from registry.config import SharedSettings
from tests.deploy.kustomize import Doc
from tests.deploy.manifests import KUSTOMIZATIONS, containers, egress, find

# The oldest Kubernetes still in wide use, and the newest the package knows.
VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
CUSTOM_KINDS = {"KafkaTopic"}  # Strimzi's; checked by test_kafka_topics below
LABEL_DELAY_DAYS = 120  # chargebacks arrive up to ~120 days after the payment
DAY_MS = 86_400_000


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[Doc]], version: str
) -> None:
    checked = 0
    for name in KUSTOMIZATIONS:
        for doc in rendered[name]:
            if doc["kind"] in CUSTOM_KINDS:
                continue
            where = f"{name}: {doc['kind']} {doc['metadata']['name']}"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                pytest.fail(f"{where} is invalid for Kubernetes {version}: {path}: {exc.message}")
            checked += 1
    assert checked >= 30


def test_the_renderer_agrees_with_kubectl_kustomize(
    kube_tree: Path, rendered: dict[str, list[Doc]]
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the offline renderer is checked without it")

    def key(doc: Doc) -> tuple[str, str, str]:
        meta = doc["metadata"]
        return doc["kind"], meta.get("namespace", ""), meta["name"]

    for name in KUSTOMIZATIONS:
        out = subprocess.run(
            [kubectl, "kustomize", str(kube_tree / name)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        theirs = {key(doc): doc for doc in yaml.safe_load_all(out) if doc}
        ours = {key(doc): doc for doc in rendered[name]}
        assert ours == theirs, name


def test_kafka_topics_are_replicated_co_partitioned_and_outlive_the_labels(
    rendered: dict[str, list[Doc]],
) -> None:
    topics = {
        doc["spec"]["topicName"]: doc["spec"]
        for doc in rendered["platform"]
        if doc["kind"] == "KafkaTopic"
    }
    defaults = SharedSettings.model_fields
    config = find(rendered["base"], "ConfigMap", "shadowline-config")["data"]
    names = {config["SHADOWLINE_SCORES_TOPIC"], config["SHADOWLINE_LABELS_TOPIC"]}
    assert (
        set(topics) == names == {defaults["scores_topic"].default, defaults["labels_topic"].default}
    )
    for name, spec in topics.items():
        assert spec["replicas"] == 3, name
        assert spec["config"]["min.insync.replicas"] == 2, name
        assert spec["config"]["retention.ms"] > (LABEL_DELAY_DAYS + 14) * DAY_MS, name
        assert spec["config"]["cleanup.policy"] == "delete", name
    # Same key (transaction id) and the same partition count: co-partitioned.
    assert len({spec["partitions"] for spec in topics.values()}) == 1


def test_the_scorer_rolls_without_losing_requests(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/production"]
    deployment = find(docs, "Deployment", "scorer")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    # The preStop sleep plus uvicorn's 10 s graceful shutdown fit in the grace period.
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert sleep >= 5
    assert pod["spec"]["terminationGracePeriodSeconds"] >= sleep + 10 + 10
    hpa = find(docs, "HorizontalPodAutoscaler", "scorer")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "scorer"
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    pdb = find(docs, "PodDisruptionBudget", "scorer")["spec"]
    assert pdb["maxUnavailable"] == 1
    for selector in (pdb["selector"], deployment["spec"]["selector"]):
        assert selector["matchLabels"].items() <= pod["metadata"]["labels"].items()
    service = find(docs, "Service", "scorer")["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    # One uvicorn worker per pod: one process behind each scrape target.
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SHADOWLINE_WORKERS"] == "1"
    assert env["SHADOWLINE_KAFKA_ACKS"] == "all"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(
        container["ports"][0]["containerPort"]
    )
    assert container["resources"]["requests"]["cpu"] == "1"


def test_only_the_processes_that_need_them_reach_redis_and_kafka(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["overlays/production"]
    policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    deny = find(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    pods = {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc in docs
        if doc["kind"] == "Deployment"
    }
    assert set(pods) == {"scorer", "retrain-worker", "archiver"}
    reach = {name: egress(labels, policies) for name, labels in pods.items()}
    assert {name for name, allowed in reach.items() if ("redis", 6379) in allowed} == {
        "scorer",
        "retrain-worker",
    }
    for port in (9092, 9093):
        assert {name for name, allowed in reach.items() if ("kafka", port) in allowed} == {
            "scorer",
            "archiver",
        }
    # Redis's side admits the same label from Shadowline's namespace.
    redis_rule = find(rendered["platform"], "NetworkPolicy", "redis-from-shadowline")
    peers = redis_rule["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shadowline"}},
        "podSelector": {"matchLabels": {"shadowline/redis": "client"}},
    } in peers
    namespace = find(docs, "Namespace", "shadowline")
    assert all(
        doc["metadata"].get("namespace") == "shadowline"
        for doc in docs
        if doc["kind"] != "Namespace"
    )
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_secret_a_container_needs_is_in_the_secret(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/production"]
    secrets = {doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "Secret"}
    refs = [ref for container in containers(docs) for ref in container.secret_refs]
    assert refs
    for secret, key, optional in refs:
        assert optional or key in secrets.get(secret, {}), f"secret {secret} has no key {key}"
    assert {key for _, key, _ in refs} == set(secrets["shadowline-secrets"])
