"""Every Kafka client the project creates gets the security options from settings
(``registry.connections.kafka_options``): a client built without them would talk plaintext
to a cluster that wants TLS and SASL, and fail only in production."""

from __future__ import annotations

import ast

from tests.deploy.manifests import ROOT

CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
PACKAGES = ("registry", "service", "retrain", "shadowline")
# The local stack's own broker, which speaks plaintext on 127.0.0.1 only.
LOCAL_ONLY = {"shadowline/stack.py"}


def _calls() -> list[tuple[str, ast.Call]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), filename=where)):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                    if name in CLIENTS:
                        found.append((f"{where}:{node.lineno}", node))
    return found


def test_every_kafka_client_is_given_the_security_options() -> None:
    calls = [(where, node) for where, node in _calls() if where.split(":")[0] not in LOCAL_ONLY]
    assert len(calls) >= 4  # the score producer, the analysis reader, labels, the demo
    missing = [where for where, node in calls if not any(k.arg is None for k in node.keywords)]
    assert missing == [], f"Kafka clients built without **kafka_options(...): {missing}"
