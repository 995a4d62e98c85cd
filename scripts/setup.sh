#!/usr/bin/env bash
# Creates .venv and installs prodmatch with everything its CLI and tests use. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

pip install --upgrade pip
# The CPU build of PyTorch, pinned: an unpinned torch resolves to a CUDA build of several GB.
pip install "torch==2.13.0"
pip install -e ".[export,serve,dev]"
# open_clip_torch ships OpenAI's CLIP BPE vocabulary (used for the random-weight CLIP and as the reference
# tokenizer in tests). --no-deps: its torchvision dependency would replace the CPU torch.
pip install --no-deps "open_clip_torch==3.3.0"
.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

# Triton's Python backend runs in its own environment: nvidia-pytriton (which ships the tritonserver binary the
# tests start) pins numpy < 2, and its backend stub reads tensors with numpy 1's ABI. Same onnxruntime as .venv.
if [ ! -x .venv-triton/bin/python ]; then
  "$PYTHON" -m venv .venv-triton
fi
ORT_VERSION=$(.venv/bin/python -c "import onnxruntime; print(onnxruntime.__version__)")
.venv-triton/bin/python -m pip --disable-pip-version-check -q install "nvidia-pytriton==0.7.0" "onnxruntime==$ORT_VERSION"

# Debian packages the tests use: Chromium for the browser tests (Playwright's own browser download cannot work
# offline), docker-compose to validate docker-compose.yml (no Docker engine is needed for that) and redis-server.
missing=()
command -v chromium >/dev/null 2>&1 || [ "${PRODMATCH_SKIP_CHROMIUM:-0}" = "1" ] || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the shared query-cache tests
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: install Debian's ${missing[*]} (sudo apt-get install ${missing[*]}) to run every test" >&2
  fi
fi
