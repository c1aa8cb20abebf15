# syntax=docker/dockerfile:1
# The Outpost edge, self-hosted: `python -m edge` (uvicorn), for replicas on Kubernetes that
# share their quotas through Redis (deploy/k8s/edge). The production edge may instead run on
# Cloudflare Workers (`npm run deploy`); this image is for clusters of your own.
#
#   docker build -f deploy/edge.Dockerfile -t outpost-edge:0.1.0 .
#
# The build context is cut down by deploy/edge.Dockerfile.dockerignore (BuildKit, the default
# builder since Docker 23, reads it in place of the root .dockerignore): only edge/ and the
# requirements file, nothing of the origin, the CLI or the models.
# See docs/deploy-kubernetes.md for what is validated here (hadolint) and what is not.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- runtime virtualenv
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/outpost
COPY deploy/docker/requirements-edge.txt /tmp/requirements-edge.txt
RUN /opt/outpost/bin/pip install --no-cache-dir -r /tmp/requirements-edge.txt

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="outpost-edge" \
      org.opencontainers.image.description="Outpost edge: auth, quotas, cache and routing in front of the origins"
# The internal listener (/metrics, detailed /healthz) listens on the container's network on
# its own port; publish or route only the public one (8787).
ENV PATH=/opt/outpost/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OUTPOST_EDGE_ADMIN_HOST=0.0.0.0 \
    OUTPOST_EDGE_ADMIN_PORT=8788
RUN groupadd --system --gid 10001 outpost \
    && useradd --system --uid 10001 --gid outpost --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin outpost
COPY --from=venv /opt/outpost /opt/outpost
WORKDIR /app
# The edge package needs nothing else from the repository (a test checks its imports).
COPY edge ./edge
USER 10001:10001
# Public HTTP (what apps call) and the internal listener.
EXPOSE 8787 8788
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "edge"]
# The public listener is a flag, not a setting: Kubernetes passes the same as `args`.
CMD ["--host", "0.0.0.0", "--port", "8787"]
