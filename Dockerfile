# Worker images for running the build on Dataflow (custom SDK containers).
#
#   CPU workers:  docker build --target cpu -t REGION-docker.pkg.dev/PROJECT/REPO/yt8m-builder:cpu .
#   GPU workers:  docker build --target gpu -t REGION-docker.pkg.dev/PROJECT/REPO/yt8m-builder:gpu .
#
# Both install the project from the same pyproject.toml, so the workers run
# exactly the code and dependency versions of the launcher. Pass the image to
# Dataflow with --sdk_container_image=IMAGE (see docs/dataflow.md).

ARG BEAM_VERSION=2.77.0
ARG PY_VERSION=3.11

# --- the Beam SDK (source of the boot entrypoint for the GPU image) ----------
FROM apache/beam_python${PY_VERSION}_sdk:${BEAM_VERSION} AS beam_sdk

# --- CPU worker: the Beam SDK image plus the project ------------------------
FROM apache/beam_python${PY_VERSION}_sdk:${BEAM_VERSION} AS cpu
WORKDIR /opt/yt8m-builder
COPY pyproject.toml README.md ./
COPY yt8m/ yt8m/
COPY vocab/ vocab/
COPY extractor/ extractor/
COPY compression/ compression/
COPY pipeline/ pipeline/
COPY trainer/ trainer/
COPY explorer/ explorer/
RUN pip install --no-cache-dir . && pip check
ENTRYPOINT ["/opt/apache/beam/boot"]

# --- GPU worker: CUDA base, Python 3.11, the Beam boot entrypoint, the project
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 AS gpu
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true
RUN apt-get update && apt-get install -y --no-install-recommends \
        software-properties-common ca-certificates curl \
    && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/yt8m-builder
COPY pyproject.toml README.md ./
COPY yt8m/ yt8m/
COPY vocab/ vocab/
COPY extractor/ extractor/
COPY compression/ compression/
COPY pipeline/ pipeline/
COPY trainer/ trainer/
COPY explorer/ explorer/
RUN pip install --upgrade pip && pip install '.[gpu]' && pip check
# The Beam SDK harness entrypoint, copied from the matching SDK image.
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
