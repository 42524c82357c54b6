# syntax=docker/dockerfile:1
# hailuo-mcp as a hosted service: Streamable HTTP on port 8765, the PostgreSQL ledger driver
# installed, videos and state under /data. How to run it: docs/DEPLOY.md.
# tests/packaging/test_deploy.py reads this file: the CMD, the ENV and the HEALTHCHECK below are
# run there against the real server (no Docker engine is needed for that check).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the wheel of this checkout and every dependency's wheel, nothing else.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# What hatchling needs to build the wheel (pyproject's readme, license-files and package).
COPY pyproject.toml README.md LICENSE ./
COPY hailuo_mcp ./hailuo_mcp
# The postgres extra is psycopg's binary wheel and its pool: no compiler, no libpq headers.
RUN pip wheel --wheel-dir /wheels ".[postgres]"

# ---- final: the wheels installed into a venv, run as an unprivileged user.
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="hailuo-mcp" \
      org.opencontainers.image.description="MCP server for MiniMax Hailuo video generation through PiAPI (Streamable HTTP)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/hailuo-mcp/hailuo-mcp" \
      org.opencontainers.image.url="https://github.com/hailuo-mcp/hailuo-mcp" \
      org.opencontainers.image.documentation="https://github.com/hailuo-mcp/hailuo-mcp/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# HAILUO_IMAGE_DIRS: the only folder whose images callers may name, empty unless you mount one
# there (callers of a hosted server pass image URLs; the default, the home folder, is not meant
# for a shared server).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/hailuo/bin:$PATH \
    HAILUO_OUTPUT_DIR=/data/videos \
    HAILUO_STATE_DIR=/data/state \
    HAILUO_IMAGE_DIRS=/srv/images

# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/hailuo \
    && /opt/hailuo/bin/pip install --no-index --find-links /wheels "hailuo-mcp[postgres]" \
    && groupadd --system --gid 10001 hailuo \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/hailuo --create-home \
       --shell /usr/sbin/nologin hailuo \
    && mkdir -p /data/videos /data/state /srv/images \
    && chown -R 10001:10001 /data \
    && chmod 0700 /data/state

VOLUME ["/data/videos", "/data/state"]
USER 10001:10001
WORKDIR /home/hailuo
EXPOSE 8765

# Liveness only (/healthz needs no token). urllib, as the slim image has no curl; no proxy, even
# if HTTP(S)_PROXY is set for PiAPI's sake.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; r = u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8765/healthz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["hailuo-mcp"]
CMD ["serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8765"]
