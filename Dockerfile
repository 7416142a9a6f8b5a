# syntax=docker/dockerfile:1
# Multi-stage: the builder installs the project into a virtual environment the same way
# scripts/_env.sh does (pip install of pyproject.toml); the runtime stage, the last one and so
# the default target, copies only that. The `devstack` target adds the local stack's own
# distribution (devstack/: the notification sink compose runs); production never builds it.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --upgrade pip && pip install .

FROM builder AS devstack-builder
COPY devstack ./devstack
RUN pip install ./devstack

FROM python:3.11-slim AS devstack
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH="/opt/venv/bin:$PATH"
RUN groupadd --system creativeflow && useradd --system --gid creativeflow --no-create-home creativeflow
COPY --from=devstack-builder /opt/venv /opt/venv
USER creativeflow

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH="/opt/venv/bin:$PATH" \
    ENVIRONMENT=production API_HOST=0.0.0.0 API_PORT=8000 LOG_FORMAT=json
RUN groupadd --system creativeflow && useradd --system --gid creativeflow --no-create-home creativeflow
COPY --from=builder /opt/venv /opt/venv
USER creativeflow
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# run `creativeflow migrate` once per release (an init container or a compose one-shot) before this
CMD ["creativeflow", "serve"]
