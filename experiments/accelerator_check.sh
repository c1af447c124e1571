#!/usr/bin/env bash
# The accelerator checks in one go, sized for a short time on a GPU / TPU host:
#
#   bash experiments/accelerator_check.sh [OUT_DIR]      (default experiments/results/accelerator)
#
# 1. experiments/bench_accelerator.py at float32 (every item) and at bf16 (the networks), each
#    item in its own process and stopped after $ITEM_TIMEOUT seconds (default 150; GVP-GNN's
#    training step compiled for 22 s a shape on an H200), with $BUCKETS batch shapes (default
#    2: fewer compilations than the script's 4). JSON and Markdown go to OUT_DIR, rewritten
#    after every item.
# 2. The tests that need an accelerator, or say most on one: cuDNN's fused attention in
#    ESM-2, ESM-2's attention implementations in float32 and bfloat16, mixed-precision
#    training and its float32 accumulation (`tests/`; skipped or trivially true on CPU). Log:
#    OUT_DIR/tests.log.
#
# Data as for bench_accelerator.py (--data, $JAXGEO_DATA, ../shared/data); extra arguments
# for both benchmark runs in $BENCH_ARGS (e.g. "--data /data --steps 10"); the interpreter in
# $PYTHON (default python3). The exit status is that of the first step that failed.
set -uo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # jaxgeo importable without an install
out=${1:-experiments/results/accelerator}
mkdir -p "$out"
item_timeout=${ITEM_TIMEOUT:-150}
buckets=${BUCKETS:-2}
py=${PYTHON:-python3}
bench=("$py" experiments/bench_accelerator.py --buckets "$buckets" ${BENCH_ARGS:-})
status=0
step() {  # step NAME COMMAND...: runs it, tees its output to OUT/NAME.log, keeps the status
  local name=$1; shift
  echo "== $name ($(date +%T))"
  "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$rc
}
"$py" -c "import jax; print('JAX', jax.__version__, jax.devices())" 2>&1 | tee "$out/devices.log"
step bench_f32 "${bench[@]}" --item-timeout "$item_timeout" \
  --out "$out/bench_accelerator_f32.json"
step bench_bf16 "${bench[@]}" --item-timeout "$item_timeout" --precision bf16 \
  --items gvp egnn molformer molformer_dense egnn_1280 --out "$out/bench_accelerator_bf16.json"
for f in "$out"/bench_accelerator_*.json; do
  "$py" -c "import json, sys; print(json.load(open(sys.argv[1]))['markdown'])" "$f" \
    > "${f%.json}.md"
done
step tests "$py" -m pytest -n 0 -q -p no:cacheprovider \
  tests/test_lm_esm2.py::test_cudnn_attention_on_gpu \
  tests/test_lm_esm2.py::test_attention_impls_agree \
  tests/test_lm_esm2.py::test_padding_is_masked \
  tests/test_train_packing.py::test_mixed_precision_trains_the_overfit_case \
  tests/test_train_packing.py::test_mixed_precision_keeps_float32_parameters_and_computes_in_bfloat16 \
  tests/test_nets_precision.py
echo "== done ($(date +%T)): $out"
exit "$status"
