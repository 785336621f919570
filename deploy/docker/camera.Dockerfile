# syntax=docker/dockerfile:1
# The camera node image: `lfr camera` with the camera extra (OpenCV headless, onnxruntime, insightface).
#   docker build -f deploy/docker/camera.Dockerfile -t lfr-camera .        (context: the repository root)
# Mounted at run time: /etc/lfr/camera.yaml (config), /etc/lfr/tls and /etc/lfr/secrets (CA, this node's
# certificate and key, its bearer token), /models (the model pack: LFR_MODEL_ROOT=/models holds
# models/<pack>/; models are never baked into the image).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# insightface builds a small C extension: the build stage has the compiler, the runtime stage does not.
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY proto proto
COPY lfr lfr
COPY evaluation evaluation
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/lfr \
 && /opt/lfr/bin/pip install --constraint requirements.lock "lfr[camera] @ file://$(ls /wheels/lfr-*.whl)"

FROM ${PYTHON_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 lfr \
 && useradd --system --uid 10002 --gid lfr --home-dir /var/lib/lfr --create-home --shell /usr/sbin/nologin lfr
COPY --from=build /opt/lfr /opt/lfr
ENV PATH=/opt/lfr/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LFR_MODEL_ROOT=/models \
    OMP_NUM_THREADS=1
USER 10002:10002
WORKDIR /var/lib/lfr
EXPOSE 9465
# The node serves its metrics while it runs; lfr_camera_matcher_connected says whether it reaches the matcher.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9465/metrics', timeout=3)"]
ENTRYPOINT ["lfr"]
CMD ["camera", "--config", "/etc/lfr/camera.yaml"]
