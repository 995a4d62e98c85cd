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

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
if [ "${PRODMATCH_SKIP_CHROMIUM:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: install Debian's chromium (sudo apt-get install chromium) to run the browser tests" >&2
  fi
fi
