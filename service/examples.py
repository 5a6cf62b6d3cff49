"""Examples for the OpenAPI document, so ``/docs`` reads as a reference on its own.

Every example is an instance of the model it illustrates, built here with the model's own
constructor: pydantic validates it, so an example cannot drift from its schema.  The document
gets one per component schema (:func:`component_examples`, by class name); the scoring
routes' examples follow the production model served now (:func:`scoring_examples`): the
transactions are its golden examples, which its manifest guarantees it scores, and the
answers carry its version, scores and decisions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from registry import ApprovalPolicy
from registry.evidence import (
    ControlComparison,
    Flip,
    Interval,
    LabelFree,
    Maturity,
    MetricEstimate,
    Quantiles,
    ShadowEvidence,
)
from registry.manifest import Manifest
from service.admin import (
    Approval,
    AuditView,
    Change,
    ChangeView,
    DeploymentView,
    EvidenceView,
    LoadedView,
    ModelDetail,
    ModelsView,
    ModelView,
    ShadowChange,
)
from service.labels import LabelsAccepted
from service.schemas import (
    BatchResponse,
    BatchResult,
    BrokerState,
    DegradedState,
    ErrorResponse,
    Liveness,
    LoadedVersion,
    Readiness,
    RegistryState,
    ScoreResponse,
    ShadowRate,
)

Example = dict[str, Any]
AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
SHA = "3f2a9c41e0b7d5a86c1f0e9d2b4a7c6e8f1d3b5a7c9e0f2a4b6c8d0e1f3a5b7c"
# A few lines of what GET /metrics answers (the text exposition format).
METRICS_EXAMPLE = """\
# HELP shadowline_request_duration_seconds Request latency by route and status.
# TYPE shadowline_request_duration_seconds histogram
shadowline_request_duration_seconds_bucket{le="0.001",route="/v1/score",status="200"} 9812.0
shadowline_decisions_total{decision="allow",role="production",version="v7"} 9640.0
shadowline_registry_reachable 1.0
"""
# Without a production model the scoring bodies take any scalars: a transaction like this.
ANY_TRANSACTION = {"transaction_id": "tx-1001", "features": {"amount": 129.5, "currency": "EUR"}}


def _interval(low: float, high: float) -> Interval:
    return Interval(low=low, high=high)


# The parts of the evidence example, as `shadowline analyze v8 --record` stores them against
# production v7: each is also the example of its own component.
_DIFFERENCE = _interval(0.0012, 0.0291)
_PRIMARY = MetricEstimate(
    name="fraud_caught_at_block_rate", challenger=0.6121, production=0.5973, difference=0.0148,
    challenger_ci=_interval(0.5833, 0.6402), production_ci=_interval(0.5666, 0.6261),
    difference_ci=_DIFFERENCE, frauds=1085, transactions=20000,
)  # fmt: skip
_FLIP = Flip(production="review", challenger="allow", count=334, amount=92719.77)
_LATENCY = Quantiles(p50=0.75, p95=1.4, p99=1.95)
_LABEL_FREE = LabelFree(
    transactions=20000, sampled=20000, agreement=0.957, flips=(_FLIP,), rank_correlation=0.822,
    psi=0.206, ks=0.134, challenger_latency_ms=_LATENCY,
    production_latency_ms=Quantiles(p50=0.48, p95=0.9, p99=1.2),
)  # fmt: skip
_MATURITY = Maturity(
    window_s=21 * 86400.0, window_from="curve", expected_share_all=0.93,
    expected_share_matured=0.99, delays_seen=1085,
)  # fmt: skip
_CONTROL = ControlComparison(
    version="v8c", control_difference=-0.0026, control_difference_ci=_interval(-0.0231, 0.0176),
    versus_control=0.0174, versus_control_ci=_interval(0.0021, 0.033), transactions=20000,
    frauds=1085, beyond_noise=True,
    verdict="The challenger's difference is beyond the noise floor.",
)  # fmt: skip
_EVIDENCE = ShadowEvidence(
    production_version="v7", shadow_records=20000, labeled_records=1571, matured_records=20000,
    matured_frauds=1085, explored_records=486, estimator="ipw", challenger_value=0.6121,
    production_value=0.5973, difference=0.0148, difference_ci=_DIFFERENCE,
    decision_low=0.0012, decision_level=0.975, metrics=(_PRIMARY,), label_free=_LABEL_FREE,
    maturity=_MATURITY, control=_CONTROL, window_start=AT, window_end=AT,
    report="/srv/evidence/fraud/v8/report.html", recorded_at=AT,
)  # fmt: skip
_SCORED = ScoreResponse(
    transaction_id="tx-1001", request_id="5f0c1e9ab2d4-1", model_name="fraud",
    model_version="v7", score=0.0734, decision="allow",
)  # fmt: skip
_RESULT = BatchResult(transaction_id="tx-1002", score=0.9312, decision="block")
_BATCH = BatchResponse(
    request_id="5f0c1e9ab2d4-2", model_name="fraud", model_version="v7", results=[_RESULT]
)


def _instances() -> list[BaseModel]:
    """One instance of every model the document names."""
    loaded = LoadedVersion(version="v7", sha256=SHA, loaded_at=1795944600.0)
    shadow = ShadowRate(version="v8", rate=0.25, loaded=True)
    reachable = RegistryState(reachable=True, error=None)
    deployment = DeploymentView(
        name="fraud",
        revision=42,
        production="v7",
        previous_production="v6",
        shadows={"v8": 0.25},
    )
    served = LoadedView(revision=42, production="v7", shadows={"v8": 0.25})
    model = ModelView(
        version="v8",
        state="shadow",
        sha256=SHA,
        created_at=AT,
        registered_at=AT,
        shadow_rate=0.25,
    )
    audit = AuditView(
        seq=41,
        at=AT,
        actor="retrain-worker@worker-1",
        action="shadow",
        from_state="registered",
        to_state="shadow",
        reason="",
        evidence="",
        detail="rate 0.25",
    )
    evidence = EvidenceView(**_EVIDENCE.model_dump(exclude={"details"}))
    broker = BrokerState(reachable=True, spooled_records=0, spooled_bytes=0, spool_error=None)
    return [
        _SCORED,
        _RESULT,
        _BATCH,
        ErrorResponse(
            detail="invalid request",
            errors=["amount: must be >= 0 (got -1)", "card_age_days: is required"],
        ),
        Liveness(status="alive"),
        loaded,
        shadow,
        reachable,
        DegradedState(
            registry_version="v8",
            served_version="v7",
            since=1795944600.0,
            reason="scorer@host could not load fraud:v8 as production: artifact failed its "
            "checksum",
        ),
        Readiness(
            ready=True,
            model_name="fraud",
            revision=42,
            production=loaded,
            shadows=[shadow],
            registry=reachable,
            degraded=None,
            model_cache_error=None,
            broker=broker,
        ),
        broker,
        Change(actor="ana", reason="beat v6 on 3 weeks of shadow traffic"),
        ShadowChange(actor="ana", rate=0.25, reason="November's challenger"),
        Approval(actor="ana", reason="catches more fraud in shadow, beyond the control"),
        model,
        deployment,
        served,
        ChangeView(
            **deployment.model_dump(),
            message="fraud:v8 is production; scorers swap to it within seconds",
        ),
        ModelsView(name="fraud", deployment=deployment, loaded=served, models=[model]),
        audit,
        evidence,
        ModelDetail(
            **model.model_dump(),
            evidence=evidence,
            replay_evidence=None,
            policy=ApprovalPolicy(),
            policy_violations=[],
            audit=[audit],
        ),
        ApprovalPolicy(),
        _DIFFERENCE,
        _PRIMARY,
        _LABEL_FREE,
        _FLIP,
        _LATENCY,
        _MATURITY,
        _CONTROL,
        LabelsAccepted(
            received=2, written=2, duplicates=0, message="2 label(s) written, 0 already taken"
        ),
    ]


def component_examples() -> dict[str, Example]:
    """Component schema name -> an example (the class name is the component's name)."""
    return {type(m).__name__: m.model_dump(mode="json") for m in _instances()}


def scoring_examples(manifest: Manifest | None) -> dict[str, tuple[Example, Example]]:
    """``/v1/score`` and ``/v1/score/batch`` -> (request, answer) for the model served now.

    The transactions are the model's golden examples (the manifest says it scores them, to
    1e-4, with these scores); without a model, a transaction of any scalars.
    """
    if manifest is None:
        return {
            "/v1/score": (ANY_TRANSACTION, _SCORED.model_dump(mode="json")),
            "/v1/score/batch": (
                {"transactions": [ANY_TRANSACTION]},
                _BATCH.model_dump(mode="json"),
            ),
        }
    golden = manifest.golden_examples[:2]
    ids = [f"tx-{1001 + i}" for i in range(len(golden))]
    transactions = [
        {"transaction_id": tid, "features": dict(g.inputs)}
        for tid, g in zip(ids, golden, strict=True)
    ]
    results = [
        BatchResult(
            transaction_id=tid,
            score=g.expected_score,
            decision=manifest.thresholds.decide(g.expected_score).value,
        )
        for tid, g in zip(ids, golden, strict=True)
    ]
    common = {"model_name": manifest.name, "model_version": manifest.version}
    single = ScoreResponse(request_id="5f0c1e9ab2d4-1", **results[0].model_dump(), **common)
    batch = BatchResponse(request_id="5f0c1e9ab2d4-2", results=results, **common)
    return {
        "/v1/score": (transactions[0], single.model_dump(mode="json")),
        "/v1/score/batch": ({"transactions": transactions}, batch.model_dump(mode="json")),
    }
