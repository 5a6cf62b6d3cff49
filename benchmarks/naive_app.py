"""The baseline: a FastAPI scoring endpoint the way tutorials write it.

A pydantic request model with the 30 float fields, the body turned into a numpy array per
request, onnxruntime with default session options (which spins a thread on the other core)
called for each request, a pydantic response model.  Nothing here is tuned; that is the point.

Run: ``NAIVE_MODEL_PATH=model.onnx uvicorn benchmarks.naive_app:create_app --factory``.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel


class Transaction(BaseModel):
    f00: float
    f01: float
    f02: float
    f03: float
    f04: float
    f05: float
    f06: float
    f07: float
    f08: float
    f09: float
    f10: float
    f11: float
    f12: float
    f13: float
    f14: float
    f15: float
    f16: float
    f17: float
    f18: float
    f19: float
    f20: float
    f21: float
    f22: float
    f23: float
    f24: float
    f25: float
    f26: float
    f27: float
    f28: float
    f29: float


class Prediction(BaseModel):
    probability: float
    decision: str
    model_version: str


def create_app() -> FastAPI:
    """The app, with the model path from ``NAIVE_MODEL_PATH`` (a benchmark script's knob)."""
    session = ort.InferenceSession(os.environ["NAIVE_MODEL_PATH"])
    input_name = session.get_inputs()[0].name
    app = FastAPI(title="naive fraud scorer")

    # A plain `def` endpoint, as in most tutorials: FastAPI runs it in its thread pool.
    @app.post("/predict", response_model=Prediction)
    def predict(tx: Transaction) -> Prediction:
        features = np.array([list(tx.model_dump().values())], dtype=np.float32)
        probability = float(session.run(None, {input_name: features})[0][0][0])
        decision = "block" if probability >= 0.6 else "review" if probability >= 0.2 else "allow"
        return Prediction(probability=probability, decision=decision, model_version="v1")

    return app
