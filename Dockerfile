# syntax=docker/dockerfile:1
# Shadowline images.  Targets:
#   scorer          the FastAPI scorer (base dependencies and the `s3` extra only: no training
#                   libraries, so the `shadowline retrain` commands stop there, naming the
#                   optional dependencies they need)
#   retrain-worker  the scheduled retrain worker (base + the `retrain` and `s3` extras, no
#                   test tools); the topic archiver (`shadowline archive`) runs in it too
# Dependencies are installed from the hash-locked requirements before the source is copied,
# so a code change does not reinstall them (tests/test_images.py runs each lock's commands).
# Both run as uid 10001, above the host's users (the Kubernetes manifests set the same
# runAsUser).  `make test` lints this file (hadolint).

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# /artifacts, /runs, /archive and /var/lib/shadowline (a scorer's spool and model cache)
# belong to the runtime user: a named volume mounted there starts as a
# copy of the image's folder, ownership included, so the non-root worker can write to it.
RUN pip install "uv==0.13.9" && useradd --uid 10001 --create-home --home-dir /app shadowline \
    && mkdir -p /artifacts /runs /archive /var/lib/shadowline \
    && chown 10001:10001 /artifacts /runs /archive /var/lib/shadowline
WORKDIR /app

FROM base AS scorer-deps
COPY requirements-scorer.lock ./
RUN uv pip install --system --require-hashes -r requirements-scorer.lock

FROM base AS worker-deps
COPY requirements-worker.lock ./
RUN uv pip install --system --require-hashes -r requirements-worker.lock

FROM scorer-deps AS scorer
COPY shadowline ./shadowline
COPY registry ./registry
COPY service ./service
COPY retrain ./retrain
COPY loadtest ./loadtest
COPY pyproject.toml README.md ./
RUN uv pip install --system --no-deps .
USER 10001
EXPOSE 8000
# Listening on all interfaces, so not "development": the placeholder admin token is refused.
ENV SHADOWLINE_HOST=0.0.0.0 SHADOWLINE_PORT=8000 SHADOWLINE_ENVIRONMENT=production
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["shadowline", "serve"]

FROM worker-deps AS retrain-worker
COPY shadowline ./shadowline
COPY registry ./registry
COPY service ./service
COPY retrain ./retrain
COPY loadtest ./loadtest
COPY pyproject.toml README.md ./
RUN uv pip install --system --no-deps .
USER 10001
# The worker writes a health key with a TTL to Redis on every tick; --check reads it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["shadowline", "retrain", "worker", "--check"]
CMD ["shadowline", "retrain", "worker"]
