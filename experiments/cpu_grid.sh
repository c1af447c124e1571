#!/usr/bin/env bash
# The reduced experiment grid of the README's "Results" (what fits about 8 CPU-hours on two
# cores), as the sequence of `jaxgeo grid` calls that produced experiments/results/runs/.
# Every call skips the cells whose small results are committed there and resumes interrupted
# ones, so re-running it on a fresh clone trains only the cells not committed yet (the
# README's Results says which), and on a machine with more time it finishes them. Each finished cell is copied into
# experiments/results/runs/ as it ends; the report (and the README's summary table) is
# written once at the end.
#
#   bash experiments/cpu_grid.sh                 # the whole reduced grid
#   CPU_GRID_STEPS="paper rich" bash experiments/cpu_grid.sh    # some of it
#
# Steps (CPU_GRID_STEPS, default: all of them, "paper rich affinity quality docking
# molformer-lm egnn-lm256"):
#   paper     position, interface: GVP-GNN none / project / concat / random-lm / replace,
#             EGNN none / project / concat, Molformer none / project / concat, the paper's
#             featurisation, seeds 0-2
#   rich      position, interface: GVP-GNN none / replace and EGNN none with the rich
#             (GVP-CPD) inputs, seeds 0-2
#   affinity  affinity: GVP-GNN none / project / concat / random-lm / replace, EGNN and
#             Molformer none / project / concat, seeds 0-2
#   quality   quality: GVP-GNN none / project / replace / random-lm, EGNN and Molformer
#             none / project / concat, seeds 0-2
#   docking   docking: IEGMN none / replace / random-lm, seeds 0-2 (the CPU docking budget,
#             10 epochs; replace and random-lm are about an hour a run here)
#   molformer-lm  Molformer widened to UniRep's 1900 (4.7 x 10^7 parameters, 13-32 minutes a
#             run here): replace on interface / position / affinity, random-lm on
#             interface / position / affinity, seeds 0-2
#   egnn-lm256  EGNN `replace` widened to UniRep 256's width (the same wheel's smaller
#             pre-trained model; 2.0 x 10^6 parameters) and its random-lm control (UniRep 256
#             at random) on interface / position / affinity, and `replace` with the rich
#             inputs on interface / position, seeds 0-2
# Not in it (and why, in the README): EGNN replace / random-lm with UniRep 1900 (its width
# makes a 10^8-parameter EGNN, two to three hours a run on one core here).
#
# Environment: JAXGEO_DATA (default ../shared/data), JAXGEO_STORE (default embeddings/; the
# UniRep and random-lm vectors are computed into it first), GRID_RUNS (run folders with
# checkpoints, default runs/grid), NICE (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
export JAXGEO_DATA="${JAXGEO_DATA:-../shared/data}"
export JAXGEO_STORE="${JAXGEO_STORE:-$PWD/embeddings}"
STEPS="${CPU_GRID_STEPS:-paper rich affinity quality docking molformer-lm egnn-lm256}"
GRID=(nice -n "${NICE:-10}" python -m jaxgeo grid --budget cpu --runs "${GRID_RUNS:-runs/grid}"
      --results experiments/results/runs --no-report)
has() { [[ " $STEPS " == *" $1 "* ]]; }

if has paper; then
  "${GRID[@]}" --tasks position,interface --nets gvp \
    --fusions none,project,concat,random-lm,replace --seeds 0,1,2
  "${GRID[@]}" --tasks position,interface --nets egnn --fusions none,project,concat \
    --seeds 0,1,2
  "${GRID[@]}" --tasks position,interface --nets molformer --fusions none,project \
    --seeds 0,1,2
  "${GRID[@]}" --tasks interface,position --nets molformer --fusions concat --seeds 0,1,2
fi
if has rich; then
  "${GRID[@]}" --tasks interface,position --nets gvp --fusions none,replace --features rich \
    --seeds 0,1,2
  "${GRID[@]}" --tasks interface,position --nets egnn --fusions none --features rich \
    --seeds 0,1,2
fi
if has affinity; then
  "${GRID[@]}" --tasks affinity --nets gvp --fusions none,random-lm,project,replace \
    --seeds 0,1,2
  "${GRID[@]}" --tasks affinity --nets egnn --fusions none,project,concat --seeds 0,1,2
  "${GRID[@]}" --tasks affinity --nets molformer --fusions none,project,concat --seeds 0,1,2
  "${GRID[@]}" --tasks affinity --nets gvp --fusions concat --seeds 0,1,2
fi
if has quality; then
  "${GRID[@]}" --tasks quality --nets egnn --fusions none,project --seeds 0,1,2
  "${GRID[@]}" --tasks quality --nets molformer --fusions none,project --seeds 0,1,2
  "${GRID[@]}" --tasks quality --nets egnn,molformer --fusions concat --seeds 0,1,2
  "${GRID[@]}" --tasks quality --nets gvp --fusions none,project --seeds 0,1,2
  "${GRID[@]}" --tasks quality --nets gvp --fusions replace,random-lm --seeds 0,1,2
fi
if has docking; then
  "${GRID[@]}" --tasks docking --nets iegmn --fusions none,replace --seeds 0,1,2
  "${GRID[@]}" --tasks docking --nets iegmn --fusions random-lm --seeds 0,1,2
fi
if has molformer-lm; then
  "${GRID[@]}" --tasks interface,position,affinity --nets molformer --fusions replace \
    --seeds 0,1,2
  "${GRID[@]}" --tasks interface,position --nets molformer --fusions random-lm --seeds 0,1,2
  "${GRID[@]}" --tasks affinity --nets molformer --fusions random-lm --seeds 0,1,2
fi
if has egnn-lm256; then
  "${GRID[@]}" --tasks interface,position,affinity --nets egnn --fusions replace,random-lm \
    --lm unirep256 --seeds 0,1,2
  "${GRID[@]}" --tasks interface,position --nets egnn --fusions replace --features rich \
    --lm unirep256 --seeds 0,1,2
fi
python -m jaxgeo report experiments/results/runs --out experiments/results --readme README.md
