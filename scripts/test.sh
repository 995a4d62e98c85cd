#!/usr/bin/env bash
# Everything CI checks: set up, lint, type-check, then the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
# Real model bundles are exported on first use and kept in .cache/test-models between runs.
.venv/bin/pytest "$@"
