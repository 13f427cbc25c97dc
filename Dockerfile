# syntax=docker/dockerfile:1
# gpufleet operator image: `gpufleet run` (operator) by default, also `gpufleet agent ...`.
# Build: docker build -t gpufleet/gpufleet:0.1.0 .

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

# --- build: a wheel and a self-contained virtualenv --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# mypyc compiles the scheduling core to C (setup.py); the compiler stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/gpufleet
COPY pyproject.toml setup.py README.md ./
COPY operator/ operator/
# Installing the project pulls its pinned-by-range dependencies into the venv only.
RUN /opt/gpufleet/bin/pip install --no-cache-dir .

# --- runtime: no compilers, no pip cache, no source tree ---------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="gpufleet" \
      org.opencontainers.image.description="Sovereignty-aware, fair-share GPU scheduling across sites" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/gpufleet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/gpufleet /opt/gpufleet
# Numeric, so Kubernetes can verify runAsNonRoot without resolving a user name.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["gpufleet"]
CMD ["run"]
