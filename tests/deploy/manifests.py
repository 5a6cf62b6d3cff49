"""The deployment files as data, for the offline checks: the rendered kustomizations, each
container's environment, and which settings class reads it.

The production overlay's Secret comes from ``secrets.env``, which is never committed; the
checks render a copy of ``deploy/kubernetes`` whose ``secrets.env`` is the example with every
value filled in.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from registry.config import SharedSettings
from retrain.settings import ArchiveSettings, RetrainSettings
from service.settings import ServiceSettings
from tests.deploy.kustomize import Doc, render

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = ("base", "overlays/production", "platform")
SECRETS_EXAMPLE = "overlays/production/secrets.env.example"

# Which settings class reads a container's SHADOWLINE_* variables, by container (or compose
# service) name.  The archiver has no settings class of its own yet: until it has, it may set
# only the variables every process knows.
SETTINGS_OF: dict[str, type[SharedSettings]] = {
    "scorer": ServiceSettings,
    "retrain-worker": RetrainSettings,
    "archiver": ArchiveSettings,
}
# Variables the deployment files already pass for a setting that another piece of work is
# adding.  Each entry must NOT be a setting yet: once it is, the check says to delete it here.
PENDING: dict[str, str] = {}
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def variables(cls: type[BaseSettings]) -> set[str]:
    """The environment variable of every field of ``cls``."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def kustomize_tree(folder: Path) -> Path:
    """A copy of ``deploy/kubernetes`` in ``folder`` with a filled-in ``secrets.env``."""
    tree = folder / "kubernetes"
    shutil.copytree(KUBERNETES, tree)
    example = (tree / SECRETS_EXAMPLE).read_text().splitlines()
    filled = [
        f"{line.rstrip('=')}=value-of-{line.rstrip('=')}" if line.endswith("=") else line
        for line in example
    ]
    (tree / SECRETS_EXAMPLE.removesuffix(".example")).write_text("\n".join(filled) + "\n")
    return tree


def render_all(tree: Path) -> dict[str, list[Doc]]:
    return {name: render(tree / name) for name in KUSTOMIZATIONS}


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


@dataclass(frozen=True)
class Container:
    """One container of a rendered workload (or one compose service) and its environment."""

    where: str
    name: str
    names: list[str]  # variables in the order they are defined (envFrom first, then env)
    values: dict[str, str]  # literal values (env[].value and ConfigMap data)
    secret_refs: list[tuple[str, str, bool]]  # (secret, key, optional)
    secrets: dict[str, str]  # variable -> key of the Secret it is read from


def containers(docs: list[Doc]) -> list[Container]:
    """Every container of every workload in ``docs``, with its environment resolved."""
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    found = []
    for doc in docs:
        if doc["kind"] not in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            names: list[str] = []
            values: dict[str, str] = {}
            refs: list[tuple[str, str, bool]] = []
            secrets: dict[str, str] = {}
            for source in container.get("envFrom", []):
                data = config_maps[source["configMapRef"]["name"]]
                names += list(data)
                values.update(data)
            for item in container.get("env", []):
                names.append(item["name"])
                if "value" in item:
                    values[item["name"]] = str(item["value"])
                ref: dict[str, Any] = item.get("valueFrom", {}).get("secretKeyRef", {})
                if ref:
                    refs.append((ref["name"], ref["key"], bool(ref.get("optional"))))
                    secrets[item["name"]] = ref["key"]
            where = f"{doc['kind']} {doc['metadata']['name']}"
            found.append(
                Container(
                    where=where,
                    name=container["name"],
                    names=names,
                    values=values,
                    secret_refs=refs,
                    secrets=secrets,
                )
            )
    return found


def compose_services() -> list[Container]:
    """Each service of ``docker-compose.yml`` as a container with its environment."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found = []
    for name, service in data["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        values = {key: str(value) for key, value in env.items()}
        where = f"compose service {name}"
        found.append(
            Container(
                where=where,
                name=name,
                names=list(values),
                values=values,
                secret_refs=[],
                secrets={},
            )
        )
    return found


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise ValueError(f"selector {selector} uses more than matchLabels")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def egress(labels: dict[str, str], policies: list[Doc]) -> set[tuple[str, int]]:
    """``(destination, port)`` pairs the NetworkPolicies let a pod with ``labels`` open:
    destination is a namespace name, or ``ipBlock:<cidr>``.  A port range counts each port."""
    allowed: set[tuple[str, int]] = set()
    for policy in policies:
        spec = policy["spec"]
        if "Egress" not in spec["policyTypes"] or not _selects(spec["podSelector"], labels):
            continue
        for rule in spec.get("egress", []):
            destinations = []
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    destinations.append(f"ipBlock:{peer['ipBlock']['cidr']}")
                else:
                    names = peer["namespaceSelector"]["matchLabels"]
                    destinations.append(names["kubernetes.io/metadata.name"])
            for port in rule["ports"]:
                for number in range(port["port"], port.get("endPort", port["port"]) + 1):
                    allowed |= {(where, number) for where in destinations}
    return allowed
