#!/usr/bin/env bash
# The fidelity check: does the featurisation matter? On this machine's budget:
#  1. DB5.5 interface prediction with GVP-GNN at the README main job's limits (60 complexes
#     per split, 4 epochs, batches of 8), residue types vs UniRep 1900, with the paper's
#     featurisation and with the rich (GVP-CPD) one: four runs.
#  2. The position task (`dist`) on real DB5.5 chains, paper featurisation, residue types vs
#     UniRep 1900 (30 complexes per split, 6 epochs).
# Writes experiments/results/features_comparison.md. Knobs: JAXGEO_DATA, JAXGEO_STORE,
# JAXGEO_RUNS (default runs/), COMPARE_EPOCHS (4), COMPARE_LIMIT (60).
set -euo pipefail
cd "$(dirname "$0")/.."
export JAXGEO_DATA="${JAXGEO_DATA:-../shared/data}"
export JAXGEO_JAX_CACHE="${JAXGEO_JAX_CACHE:-$PWD/.jax_cache}"
export JAXGEO_STORE="${JAXGEO_STORE:-$PWD/embeddings}"
runs="${JAXGEO_RUNS:-runs}/compare_features"
epochs="${COMPARE_EPOCHS:-4}"
limit="${COMPARE_LIMIT:-60}"
out=experiments/results/features_comparison.md

jaxgeo embed --model unirep1900 --config interface_gvp_replace_unirep --set "task.limit=$limit"
common=(--set "train.epochs=$epochs" --set "task.limit=$limit" --set "train.batch_graphs=8")
interface=(interface_gvp_none interface_gvp_replace_unirep interface_gvp_none_rich
           interface_gvp_replace_unirep_rich)
for name in "${interface[@]}"; do
  jaxgeo train --config "$name" "${common[@]}" --run-dir "$runs/$name" --no-progress
done
position=(position_gvp_none position_gvp_replace_unirep)
for name in "${position[@]}"; do
  jaxgeo train --config "$name" --set train.epochs=6 --set task.limit=30 \
    --set train.batch_graphs=8 --run-dir "$runs/$name" --no-progress
done
{
  echo "# Does the featurisation matter? (experiments/compare_features.sh)"
  echo
  echo "DB5.5 interface, GVP-GNN, $limit complexes per split, $epochs epochs, batches of 8:"
  echo
  python experiments/compare_runs.py --markdown "${interface[@]/#/$runs/}"
  echo
  echo "Position (dist) on real DB5.5 chains, GVP-GNN, paper featurisation, 30 complexes per split, 6 epochs:"
  echo
  python experiments/compare_runs.py --markdown "${position[@]/#/$runs/}"
} > "$out"
cat "$out"
