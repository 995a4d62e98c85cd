# syntax=docker/dockerfile:1
# The prodmatch API image (target `api`) and a model-export image (target `export`, adds CPU PyTorch).
#   docker build --target api -t prodmatch-api .
# Multi-stage: wheels are built in `build`, so the runtime image carries no compiler or build cache.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every store driver and the Triton client: which ones run is chosen at run time by URL.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[serve,postgres,pgvector,mongo,qdrant,milvus,chroma,triton]"

FROM ${PYTHON_IMAGE} AS api
RUN useradd --create-home --uid 10001 prodmatch \
    && mkdir -p /data /models && chown prodmatch /data /models
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER prodmatch
ENV PRODMATCH_DATA_DIR=/data \
    PRODMATCH_MODELS_DIR=/models/bundles \
    PRODMATCH_SERVE__HOST=0.0.0.0 \
    PRODMATCH_SERVE__PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"]
CMD ["prodmatch", "serve"]

FROM api AS export
USER root
# The CPU build of PyTorch, pinned: an unpinned torch pulls several GB of CUDA packages.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY --from=build /src /src
RUN pip install --no-cache-dir "/src[export,triton]"
USER prodmatch
ENTRYPOINT ["prodmatch", "model", "export"]
