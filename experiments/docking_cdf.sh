#!/usr/bin/env bash
# jaxgeo's IEGMN on the 25 DB5.5 docking test complexes next to the six published methods:
# trains the README's two CPU-budget runs ("Docking with jaxgeo's IEGMN"), docks the 25 test
# inputs of db5_docking with each, scores them per complex, and draws the cumulative
# distribution of complex RMSD (experiments/results/docking_cdf.png).
#
#   bash experiments/docking_cdf.sh            # the whole pipeline (about 20 CPU-minutes)
#   DOCKING_STEPS=figure bash experiments/docking_cdf.sh   # the figure only, from the
#                                              # committed docking_baselines.json and
#                                              # docking_jaxgeo.json (seconds, no training)
#
# Steps (DOCKING_STEPS, default "embed train dock score figure"):
#   embed   UniRep 1900 vectors of every docking complex into $DOCKING_STORE (resumable:
#           entries the store has are skipped)
#   train   docking_iegmn_none ($EPOCHS_NONE epochs) and docking_iegmn_replace_unirep
#           ($EPOCHS_REPLACE epochs) into $DOCKING_RUNS/{none,replace_unirep} with the README's
#           CPU budget: hidden 32, 3 layers, 16 keypoints (EquiDock: 64 / 5 / 50), training
#           complexes of at most 700 residues (168 of 203), lr 1e-3, fixed batches of 2, no
#           early stopping; a finished run is not retrained, an interrupted one resumes
#   dock    `jaxgeo dock --pairs` on db5_docking/inputs_random_transformed with each run's best
#           checkpoint, into $DOCKING_RUNS/scored/decoys/iegmn_{none,replace_unirep}; the
#           inputs themselves (the random pose, no docking) become the method input_pose
#   score   `jaxgeo score-docking --json --compact` of the three -> experiments/results/
#           docking_jaxgeo.json (small, committed: summaries + per-complex values)
#   figure  `jaxgeo report --docking` -> experiments/results/docking_cdf.png
#
# Environment: JAXGEO_DATA (default ../shared/data), DOCKING_STORE (/work/docking_store),
# DOCKING_RUNS (/work/docking_runs), EPOCHS_NONE (10), EPOCHS_REPLACE (10), NICE (5).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${JAXGEO_DATA:-../shared/data}"
STORE="${DOCKING_STORE:-/work/docking_store}"
RUNS="${DOCKING_RUNS:-/work/docking_runs}"
EPOCHS_NONE="${EPOCHS_NONE:-10}"
EPOCHS_REPLACE="${EPOCHS_REPLACE:-10}"
STEPS="${DOCKING_STEPS:-embed train dock score figure}"
RESULTS=experiments/results
INPUTS="$DATA/db5_docking/inputs_random_transformed"
SCORED="$RUNS/scored"
JAXGEO=(nice -n "${NICE:-5}" python -m jaxgeo)
export JAXGEO_DATA="$DATA"

# The README's CPU budget, from the row table (jaxgeo/rows.py DOCKING_CPU_BUDGET, also the
# grid's `cpu` docking budget; the rows' other settings: EquiDock's); epochs are set per run.
mapfile -t BUDGET < <(python -c '
from jaxgeo import rows
for key, value in rows.DOCKING_CPU_BUDGET:
  if key != "train.epochs":
    print("--set"); print(f"{key}={value}")')
BUDGET+=(--set "lm.store=$STORE")

has() { [[ " $STEPS " == *" $1 "* ]]; }
timed() {  # timed LABEL CMD...: runs CMD, prints its wall and CPU seconds
  local label="$1"; shift
  local start=$SECONDS
  /usr/bin/time -f "$label: %e s wall, %U s user + %S s system CPU" "$@"
  echo "$label done after $((SECONDS - start)) s" >&2
}

if has embed; then
  timed "embed unirep1900" "${JAXGEO[@]}" embed --model unirep1900 \
    --config docking_iegmn_replace_unirep --store "$STORE" --no-progress
fi

if has train; then
  timed "train none" "${JAXGEO[@]}" train --config docking_iegmn_none "${BUDGET[@]}" \
    --set "train.epochs=$EPOCHS_NONE" --run-dir "$RUNS/none" --no-progress
  timed "train replace_unirep" "${JAXGEO[@]}" train --config docking_iegmn_replace_unirep \
    "${BUDGET[@]}" --set "train.epochs=$EPOCHS_REPLACE" --run-dir "$RUNS/replace_unirep" \
    --no-progress
fi

if has dock; then
  mkdir -p "$SCORED/decoys/input_pose"
  ln -sfn "$(realpath "$DATA/db5_docking/ground_truth")" "$SCORED/ground_truth"
  for f in "$INPUTS"/*_b.pdb.gz; do   # the undocked inputs, named as a method's outputs
    name="$(basename "$f" .pdb.gz)"
    ln -sf "$(realpath "$f")" "$SCORED/decoys/input_pose/${name}_INPUT.pdb.gz"
  done
  for run in none replace_unirep; do
    timed "dock $run" "${JAXGEO[@]}" dock --model "$RUNS/$run" --pairs "$INPUTS" \
      --out "$SCORED/decoys/iegmn_$run" --no-progress
  done
fi

if has score; then
  "${JAXGEO[@]}" score-docking "$SCORED" --methods iegmn_none,iegmn_replace_unirep,input_pose \
    --no-progress
  timed "score" "${JAXGEO[@]}" score-docking "$SCORED" \
    --methods iegmn_none,iegmn_replace_unirep,input_pose --json --compact --no-progress \
    > "$RESULTS/docking_jaxgeo.json.tmp"
  # What the two runs were: epochs, best epoch, seconds per epoch, the budget's overrides.
  python - "$RUNS" "$RESULTS/docking_jaxgeo.json.tmp" "${BUDGET[@]}" <<'EOF'
import json, pathlib, sys
runs, path, budget = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
scores = json.loads(path.read_text())
scores["runs"] = {}
for run in ("none", "replace_unirep"):
  config = json.loads((runs / run / "config.json").read_text())
  log = [json.loads(l) for l in (runs / run / "log.jsonl").read_text().splitlines() if l.strip()]
  scores["runs"][f"iegmn_{run}"] = {
      "row": config["name"], "epochs": len(log),
      "best_epoch": log[-1].get("best_epoch") if log else None,
      # Wall seconds per epoch (the first compiles; a process paused by the machine counts).
      "epoch_wall_seconds": [round(r.get("seconds", 0.0), 1) for r in log],
      "val_complex_rmsd_median": [r.get("val", {}).get("complex_rmsd_median") for r in log],
      "overrides": [b for b in budget if b != "--set" and not b.startswith("lm.store=")]
      + [f"train.epochs={config['train']['epochs']}"]}
scores["input_pose"] = "db5_docking/inputs_random_transformed as given (no docking)"
path.write_text(json.dumps(scores, indent=1) + "\n")
EOF
  mv "$RESULTS/docking_jaxgeo.json.tmp" "$RESULTS/docking_jaxgeo.json"
fi

if has figure; then
  "${JAXGEO[@]}" report --docking "$RESULTS/docking_baselines.json" \
    "$RESULTS/docking_jaxgeo.json" --out "$RESULTS"
fi
