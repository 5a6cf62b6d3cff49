"""Building the scorer app from the environment: what ``shadowline serve`` runs."""

from __future__ import annotations

from fastapi import FastAPI

from registry import load_settings, model_registry
from service.app import create_app
from service.settings import ServiceSettings


def build_app(settings: ServiceSettings) -> FastAPI:
    """The app on the configured Redis and artifact store (nothing connects until start-up)."""
    return create_app(settings, model_registry(settings))


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used with several workers: each worker process
    builds its own app, metrics and Kafka producer)."""
    return build_app(load_settings(ServiceSettings))
