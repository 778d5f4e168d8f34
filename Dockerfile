# CorpusCT MAP image (MONAI Application Package), one image per app: docker build --build-arg APP=<app> .
# Layout as `monai-deploy package` (holoscan-cli 4.2.0) produces it: app in /opt/holoscan/app, model bundles
# in /opt/holoscan/models, manifests /etc/holoscan/app.json and pkg.json (generated from apps/<app>/app.yaml
# by packaging/app_manifest.py), app configuration /var/holoscan/app.yaml, input and output under
# /var/holoscan, non-root user holoscan (uid 1000), entrypoint the app.
#
# Build arguments:
#   APP         the app folder under apps/ (needs apps/<APP>/app.yaml and requirements.txt)
#   BASE_IMAGE  any Debian-based image with Python 3.11 and venv: python:3.11-slim-bookworm (public, default);
#               offline, `make map` passes a local one made by packaging/make_base_image.sh (debootstrap).
#   VARIANT     cpu (default): torch CPU wheel; cuda: torch from PyPI with its CUDA 13 wheels, pkg.json
#               platformConfig dgpu (use BASE_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04 with Python 3.11,
#               or keep the slim image: the CUDA libraries come as wheels; run with --gpus all).
#   TORCH_INDEX the pip index for the CPU torch wheel, used only when build/map-extras/wheels has none.
# Offline extras (never committed; `make map` fills build/map-extras/): wheels/*.whl are preferred by pip,
# certs/*.crt are trusted by pip in the builder stage only. Neither reaches the final image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG APP=series_selector
ARG VARIANT=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# pyproject.toml is always there, so the optional extras glob may match nothing.
COPY pyproject.toml build/map-extra[s] /tmp/extras/
RUN set -e; \
    if ls /tmp/extras/certs/*.crt >/dev/null 2>&1; then \
      cat /etc/ssl/certs/ca-certificates.crt /tmp/extras/certs/*.crt > /tmp/ca-bundle.crt; \
    else cp /etc/ssl/certs/ca-certificates.crt /tmp/ca-bundle.crt; fi; \
    mkdir -p /tmp/extras/wheels; \
    python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_CERT=/tmp/ca-bundle.crt \
    PIP_FIND_LINKS=/tmp/extras/wheels

# torch first and alone (an unpinned torch would pull several GB of CUDA wheels), then the app's needs,
# constrained to the project's pins (pyproject.toml).
COPY apps/${APP}/requirements.txt /tmp/requirements.txt
RUN set -e; \
    if [ "$VARIANT" = cuda ]; then \
      rm -f /tmp/extras/wheels/torch-*+cpu-*.whl; pip install torch==2.13.0; \
      python3 -c "import sys, torch; sys.exit(f'CUDA variant got a CPU-only torch {torch.__version__}' if torch.version.cuda is None else 0)"; \
    elif ls /tmp/extras/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then pip install torch==2.13.0; \
    else pip install --extra-index-url "$TORCH_INDEX" torch==2.13.0; fi; \
    python3 -c "import tomllib; print('\n'.join(d for d in tomllib.load(open('/tmp/extras/pyproject.toml','rb'))['project']['dependencies'] if '==' in d and not d.startswith('torch')))" > /tmp/constraints.txt; \
    pip install -c /tmp/constraints.txt -r /tmp/requirements.txt PyYAML; \
    find /opt/venv -depth \( -name __pycache__ -o -name tests -path '*/site-packages/*/tests' \) -prune -exec rm -rf {} +; \
    rm -rf /root/.cache

# App code (apps, operators, the models package with its code) and the manifests.
WORKDIR /opt/holoscan/app
COPY pyproject.toml ./
COPY apps ./apps
COPY operators ./operators
COPY models ./models
COPY packaging/app_manifest.py packaging/stage_app.py /tmp/packaging/
RUN python3 /tmp/packaging/stage_app.py "$APP" "$VARIANT"

FROM ${BASE_IMAGE}
ARG APP=series_selector
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="CorpusCT ${APP} (research use only, not for clinical use)" \
      org.opencontainers.image.version="0.1.0" \
      org.monai.deploy.app-sdk="4.0.0" \
      org.corpusct.variant="${VARIANT}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CORPUSCT_APP=${APP} \
    HOLOSCAN_APPLICATION=/opt/holoscan/app \
    HOLOSCAN_INPUT_PATH=/var/holoscan/input \
    HOLOSCAN_OUTPUT_PATH=/var/holoscan/output \
    HOLOSCAN_WORKDIR=/var/holoscan \
    HOLOSCAN_MODEL_PATH=/opt/holoscan/models \
    HOLOSCAN_CONFIG_PATH=/var/holoscan/app.yaml \
    HOLOSCAN_APP_MANIFEST_PATH=/etc/holoscan/app.json \
    HOLOSCAN_PKG_MANIFEST_PATH=/etc/holoscan/pkg.json \
    HOLOSCAN_DOCS_PATH=/opt/holoscan/docs \
    HOLOSCAN_LOGS_PATH=/var/holoscan/logs \
    MPLCONFIGDIR=/tmp/matplotlib \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib

RUN groupadd --gid 1000 holoscan \
    && useradd --uid 1000 --gid 1000 --no-log-init --create-home --shell /bin/bash holoscan \
    && mkdir -p /var/holoscan/input /var/holoscan/output /var/holoscan/logs \
    && chown -R holoscan:holoscan /var/holoscan

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/holoscan /opt/holoscan
COPY --from=builder /stage/etc/holoscan /etc/holoscan
COPY --from=builder --chown=holoscan:holoscan /stage/var/holoscan/app.yaml /var/holoscan/app.yaml

USER holoscan
WORKDIR /var/holoscan
ENTRYPOINT ["python3", "/opt/holoscan/app"]
