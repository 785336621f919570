# syntax=docker/dockerfile:1
# The matcher image: `lfr serve` (matcher, embedded tablet, metrics) and every control command, with the
# tablet and PostgreSQL extras; the same image runs `lfr tablet serve` and `lfr db upgrade`.
#   docker build -f deploy/docker/matcher.Dockerfile -t lfr-matcher .      (context: the repository root)
# Mounted at run time, never baked in: /etc/lfr/lfr.yaml (config), /etc/lfr/tls (certificates and keys),
# /etc/lfr/secrets (tablet session secret), /var/lib/lfr (SQLite store, embedded deployments only).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY proto proto
COPY lfr lfr
COPY evaluation evaluation
# The wheel's build pins grpcio-tools, so its generated code matches the runtime floors.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/lfr \
 && /opt/lfr/bin/pip install --constraint requirements.lock "lfr[tablet,postgres] @ file://$(ls /wheels/lfr-*.whl)"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 lfr \
 && useradd --system --uid 10001 --gid lfr --home-dir /var/lib/lfr --create-home --shell /usr/sbin/nologin lfr \
 && install -d -o lfr -g lfr -m 0755 /run/lfr
COPY --from=build /opt/lfr /opt/lfr
ENV PATH=/opt/lfr/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LFR_LOG_FORMAT=json \
    LFR_GRPC_LISTEN=0.0.0.0:50051 \
    LFR_METRICS_LISTEN=0.0.0.0:9464 \
    LFR_TABLET_LISTEN=0.0.0.0:8443 \
    LFR_STORE_URL=sqlite:////var/lib/lfr/lfr.db
USER 10001:10001
WORKDIR /var/lib/lfr
VOLUME ["/var/lib/lfr"]
EXPOSE 50051 9464 8443
# gRPC health over the same TLS as the cameras use; LFR_HEALTH_ARGS adds --ca-file/--client-cert/--client-key.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "lfr health --server 127.0.0.1:50051 $LFR_HEALTH_ARGS"]
ENTRYPOINT ["lfr"]
CMD ["serve", "--config", "/etc/lfr/lfr.yaml"]
