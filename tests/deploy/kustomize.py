"""A small kustomize renderer for the checks of ``deploy/kubernetes``, in Python.

``kustomize`` and a current ``kubectl`` are not installable from the project's package
sources (Debian's kubectl 1.20 carries kustomize 2.0, which predates the ``patches`` field),
so the offline checks render the kustomizations with this module.  It implements exactly the
fields Shadowline's kustomizations use and refuses any other, so a new field cannot be
silently ignored: ``resources`` (files and folders), ``namespace``, ``images``, ``patches``
(JSON 6902 operations with a kind/name target), ``secretGenerator`` (``envs`` files) with
``generatorOptions.disableNameSuffixHash``.  Where ``kubectl`` is on the PATH, a test
compares this output with ``kubectl kustomize``.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]
SUPPORTED = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "images",
    "patches",
    "secretGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
}
POD_TEMPLATES = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class KustomizeError(Exception):
    """A kustomization uses something this renderer does not implement, or is broken."""


def render(folder: Path) -> list[Doc]:
    """The resources ``kustomize build folder`` would emit (order aside)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{folder}: unsupported kustomization fields {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        if path.is_dir():
            docs += render(path)
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    docs += _secrets(folder, spec)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                _set_image(container, image)
    for patch in spec.get("patches", []):
        _patch(docs, patch, folder)
    return docs


def _secrets(folder: Path, spec: Doc) -> list[Doc]:
    generators = spec.get("secretGenerator", [])
    if generators and not spec.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise KustomizeError(f"{folder}: name-suffix hashes are not implemented")
    secrets = []
    for generator in generators:
        if set(generator) - {"name", "envs"}:
            raise KustomizeError(f"{folder}: secretGenerator supports name and envs only")
        data: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            for line in (folder / env_file).read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    data[key.strip()] = base64.b64encode(value.encode()).decode()
        secrets.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return secrets


def _containers(doc: Doc) -> list[Doc]:
    if doc["kind"] not in POD_TEMPLATES:
        return []
    pod = doc["spec"]["template"]["spec"]
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def _set_image(container: Doc, image: Doc) -> None:
    name = container["image"].split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if name != image["name"]:
        return
    new = image.get("newName", name)
    if "digest" in image:
        container["image"] = f"{new}@{image['digest']}"
    elif "newTag" in image:
        container["image"] = f"{new}:{image['newTag']}"
    else:
        container["image"] = new + container["image"][len(name) :]


def _patch(docs: list[Doc], patch: Doc, folder: Path) -> None:
    target = patch.get("target", {})
    if set(patch) != {"target", "patch"} or set(target) - {"kind", "name"}:
        raise KustomizeError(f"{folder}: only inline JSON 6902 patches with kind/name targets")
    matched = [
        doc
        for doc in docs
        if doc["kind"] == target.get("kind", doc["kind"])
        and doc["metadata"]["name"] == target.get("name", doc["metadata"]["name"])
    ]
    if not matched:
        raise KustomizeError(f"{folder}: patch target {target} matches no resource")
    for doc in matched:
        for operation in yaml.safe_load(patch["patch"]):
            _apply(doc, operation)


def _apply(doc: Doc, operation: Doc) -> None:
    """One JSON 6902 operation (add, replace, remove) on ``doc``, in place."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, value)
        elif op == "replace":
            node[index] = value
        elif op == "remove":
            del node[index]
        else:
            raise KustomizeError(f"JSON patch operation {op!r} is not implemented")
        return
    if op in {"replace", "remove"} and last not in node:
        raise KustomizeError(f"JSON patch {op} of {operation['path']}: no such path")
    if op in {"add", "replace"}:
        node[last] = value
    elif op == "remove":
        del node[last]
    else:
        raise KustomizeError(f"JSON patch operation {op!r} is not implemented")
