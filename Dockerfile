# CorpusCT MAP image: one image per app (build argument APP), MAP layout as `monai-deploy package` produces:
# app in /opt/holoscan/app, models in /opt/holoscan/models, input/output under /var/holoscan, user holoscan.
# The base image is a build argument: a public Python image by default; offline builds pass a local one.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG APP=series_selector
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CORPUSCT_APP=${APP} \
    HOLOSCAN_APPLICATION=/opt/holoscan/app \
    HOLOSCAN_INPUT_PATH=/var/holoscan/input \
    HOLOSCAN_OUTPUT_PATH=/var/holoscan/output \
    HOLOSCAN_MODEL_PATH=/opt/holoscan/models \
    HOLOSCAN_WORKDIR=/var/holoscan

RUN groupadd --gid 1000 holoscan \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash holoscan \
    && mkdir -p /opt/holoscan/app /opt/holoscan/models /var/holoscan/input /var/holoscan/output /etc/holoscan \
    && chown -R holoscan:holoscan /var/holoscan

WORKDIR /opt/holoscan/app
COPY pyproject.toml README.md ./
COPY operators ./operators
COPY apps ./apps
COPY models ./models

# torch first and alone (CPU build), then the project.
RUN python -m pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && python -m pip install . \
    && ln -s /opt/holoscan/app/models /opt/holoscan/models/corpusct

USER holoscan
ENTRYPOINT ["/bin/sh", "-c", "exec python /opt/holoscan/app/apps/\"$CORPUSCT_APP\" \"$@\"", "--"]
