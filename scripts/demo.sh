#!/usr/bin/env bash
# The main job on the sample catalog: set up, ingest myntra-dev, match a photo and a description, then serve
# the web UI and API (when run from a terminal; Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

SAMPLE=${SAMPLE:-../shared/data/myntra-dev}
export PRODMATCH_DATA_DIR=${PRODMATCH_DATA_DIR:-prodmatch-data}
prodmatch() { .venv/bin/prodmatch "$@"; }

prodmatch ingest "$SAMPLE/catalog.csv" --id-col ProductId --name-col ProductTitle --image-col Image
prodmatch stats
echo "== a customer's photo of product 36310 =="
prodmatch match --image "$SAMPLE/images/36310.jpg" --top-k 5
echo "== a description, only blue products =="
prodmatch match --text "boys blue denim shirt" --filter Colour=Blue --top-k 5

if [ -t 0 ] && [ -t 1 ]; then
  echo "== serving: open http://127.0.0.1:8000 (UI) or http://127.0.0.1:8000/docs (API); Ctrl-C stops =="
  prodmatch serve
else
  echo "== to serve the UI and API: .venv/bin/prodmatch serve  (then open http://127.0.0.1:8000) =="
fi
