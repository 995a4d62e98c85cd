#!/usr/bin/env bash
# The main job on the sample catalog: set up, ingest myntra-dev, then match a photo and a description.
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
