#!/usr/bin/env bash
# The README's main job.
#
# 1. Featurizes the example structures (examples/structures) and prints a summary.
# 2. When ../shared/data (or $JAXGEO_DATA) holds DB5.5, runs a short real experiment:
#    protein-protein interface prediction on DB5.5 (EquiDock's split) with GVP-GNN, once
#    with the residue-type embedding (the paper's baseline) and once with UniRep 1900
#    features (a real pre-trained protein language model that installs offline), then
#    prints both runs' test metrics side by side.
#
# Knobs: QUICKSTART_EPOCHS (default 4), QUICKSTART_LIMIT (complexes per split, 0 = all;
# default 60), JAXGEO_STORE (default embeddings/), JAXGEO_RUNS (default runs/).
set -euo pipefail
cd "$(dirname "$0")/.."

jaxgeo featurize examples/structures

data="${JAXGEO_DATA:-../shared/data}"
if [ ! -d "$data/db5.5" ]; then
  echo "quickstart: $data/db5.5 not found: skipping the DB5.5 experiment (set JAXGEO_DATA)."
  exit 0
fi
export JAXGEO_DATA="$data"
export JAXGEO_JAX_CACHE="${JAXGEO_JAX_CACHE:-$PWD/.jax_cache}"
export JAXGEO_STORE="${JAXGEO_STORE:-$PWD/embeddings}"
runs="${JAXGEO_RUNS:-runs}/quickstart"
epochs="${QUICKSTART_EPOCHS:-4}"
limit="${QUICKSTART_LIMIT:-60}"
common=(--set "train.epochs=$epochs" --set "task.limit=$limit" --set "train.batch_graphs=8")

echo "quickstart: UniRep 1900 embeddings of the task's chains (skips what the store holds)"
jaxgeo embed --model unirep1900 --config interface_gvp_replace_unirep \
  --set "task.limit=$limit"

for name in interface_gvp_none interface_gvp_replace_unirep; do
  echo "quickstart: training $name for $epochs epochs"
  jaxgeo train --config "$name" "${common[@]}" --run-dir "$runs/$name"
done

python experiments/compare_runs.py "$runs/interface_gvp_none" "$runs/interface_gvp_replace_unirep"
