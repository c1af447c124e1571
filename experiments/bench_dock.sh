#!/usr/bin/env bash
# Times `jaxgeo dock --pairs` on the 25 DB5.5 test inputs (db5_docking/inputs_random_transformed),
# each command a fresh process, no persistent compilation cache: the whole command (imports,
# loading the run, reading, the network with its compilations, writing) and the docking part
# the command reports. Variants of the options alternate within a round; with BEFORE set,
# the same command from that checkout (e.g. a `git worktree` of an older commit) runs first.
#
#   bash experiments/bench_dock.sh RUN_DIR [RUN_DIR ...]        # IEGMN run folders
#   BEFORE=/tmp/old_tree ROUNDS=2 bash experiments/bench_dock.sh RUN_DIR ...
#
# Environment: JAXGEO_DATA (default ../shared/data), ROUNDS (2), BEFORE (none), VARIANTS
# (";"-separated option sets, default: the defaults; --cpu-devices 1; --batch-graphs 1
# --cpu-devices 1; --batch-graphs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export JAXGEO_DATA="${JAXGEO_DATA:-../shared/data}"
unset JAXGEO_JAX_CACHE
INPUTS="$JAXGEO_DATA/db5_docking/inputs_random_transformed"
ROUNDS="${ROUNDS:-2}"
IFS=';' read -r -a VARIANTS <<< "${VARIANTS:- ;--cpu-devices 1;--batch-graphs 1 --cpu-devices 1;--batch-graphs 2}"
[ $# -ge 1 ] || { echo "usage: bash experiments/bench_dock.sh RUN_DIR [RUN_DIR ...]" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

one() {  # one LABEL TREE RUN OPTIONS...: prints one line
  local label="$1" tree="$2" run="$3"; shift 3
  rm -rf "$OUT/docked"
  local start end line
  start=$(date +%s.%N)
  line=$(cd "$tree" && PYTHONPATH="$tree" python -m jaxgeo dock --model "$run" --pairs "$INPUTS" \
         --out "$OUT/docked" --no-progress "$@" 2>/dev/null | grep "^docked" || echo "FAILED")
  end=$(date +%s.%N)
  printf '%s | %s | %s | whole command %.1f s | %s\n' "$label" "$(basename "$run")" "${*:-defaults}" \
    "$(python -c "print($end - $start)")" "$line"
}

for round in $(seq "$ROUNDS"); do
  for run in "$@"; do
    run=$(readlink -f "$run")
    [ -n "${BEFORE:-}" ] && one "round $round before" "$BEFORE" "$run"
    for variant in "${VARIANTS[@]}"; do
      # shellcheck disable=SC2086
      one "round $round" "$PWD" "$run" $variant
    done
  done
done
