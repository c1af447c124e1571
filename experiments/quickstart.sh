#!/usr/bin/env bash
# The README's main job: a short real experiment on a fresh clone (no ../shared needed).
#
# 1. Featurizes the shipped backbone-only copy of DB5.5's bound structures
#    (examples/db5_backbone, written by experiments/make_backbone_examples.py) with the
#    paper's featurisation and prints the summary.
# 2. Embeds the chains of the complexes it trains on with UniRep 1900 (a real pre-trained
#    protein language model that installs offline) and, when `jaxgeo embed` offers it, with
#    the random-lm control `unirep1900_random` (UniRep's architecture at a fixed random
#    initialisation).
# 3. Trains three short DB5.5 interface-prediction runs with GVP-GNN (EquiDock's split, the
#    paper's CA-within-8-A labels): residue types (interface_gvp_none), UniRep 1900
#    (interface_gvp_replace_unirep) and the random-lm control (interface_gvp_replace_randomlm),
#    then prints their test metrics side by side.
#
# Knobs (environment):
#   QUICKSTART_DB5     DB5.5 folder (structures/, splits/); default examples/db5_backbone;
#                      e.g. ../shared/data/db5.5 for the full structures
#   QUICKSTART_LIMIT   complexes per split (first N of each split file; 0 = all); default 20
#   QUICKSTART_EPOCHS  default 4;  QUICKSTART_BATCH  graphs per batch, default 8
#   JAXGEO_STORE (default embeddings/), JAXGEO_RUNS (default runs/), JAXGEO_JAX_CACHE
#   (default .jax_cache/: the second and third runs share compiled steps through it).
# Re-running resumes: embeddings already in the store and finished runs are not recomputed.
set -euo pipefail
cd "$(dirname "$0")/.."

db5="${QUICKSTART_DB5:-examples/db5_backbone}"
db5="$(cd "$db5" && pwd)"
export JAXGEO_JAX_CACHE="${JAXGEO_JAX_CACHE:-$PWD/.jax_cache}"
export JAXGEO_STORE="${JAXGEO_STORE:-$PWD/embeddings}"
runs="${JAXGEO_RUNS:-runs}/quickstart"
epochs="${QUICKSTART_EPOCHS:-4}"
limit="${QUICKSTART_LIMIT:-20}"
batch="${QUICKSTART_BATCH:-8}"
data=(--set "task.data_dir=$db5" --set "task.limit=$limit")
train=(--set "train.epochs=$epochs" --set "train.batch_graphs=$batch" --set "train.max_buckets=2"
       --set "train.batching=fixed")
start=$SECONDS

echo "quickstart: featurizing $db5/structures (the paper's graphs: CA within 8 A)"
jaxgeo featurize "$db5/structures" --edges radius --radius 8 --features paper

echo "quickstart: UniRep 1900 embeddings of the chains of $limit complexes per split"
jaxgeo embed --model unirep1900 --config interface_gvp_replace_unirep "${data[@]}"

names=(interface_gvp_none interface_gvp_replace_unirep)
# The random-lm control needs `jaxgeo embed --model unirep1900_random` (exit 3: not offered).
if python - <<'EOF'
import sys
from jaxgeo.errors import ConfigError
from jaxgeo.lm import embed
try:
  embed.get_embedder("unirep1900_random")
except ConfigError:
  sys.exit(3)
EOF
then
  echo "quickstart: random-lm control embeddings (UniRep 1900 at a fixed random initialisation)"
  jaxgeo embed --model unirep1900_random --config interface_gvp_replace_randomlm "${data[@]}"
  names+=(interface_gvp_replace_randomlm)
else
  status=$?
  [ "$status" -eq 3 ] || exit "$status"
  echo "quickstart: skipping the random-lm control: this jaxgeo's \`jaxgeo embed\` has no" \
    "--model unirep1900_random"
fi

for name in "${names[@]}"; do
  echo "quickstart: training $name ($epochs epochs, $limit complexes per split)"
  jaxgeo train --config "$name" "${data[@]}" "${train[@]}" --run-dir "$runs/$name"
done

echo "quickstart: test metrics ($limit complexes per split of $db5, $epochs epochs; a smoke" \
  "test of the pipeline, not the paper's result)"
python experiments/compare_runs.py "${names[@]/#/$runs/}"
echo "quickstart: done in $((SECONDS - start)) s"
