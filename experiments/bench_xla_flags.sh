#!/usr/bin/env bash
# Does an XLA CPU flag speed the networks up? Times GVP-GNN and EGNN (packed batches,
# `bench_nets.py`) once per flag set, each in a fresh process (XLA reads XLA_FLAGS when the
# backend starts), the default first and last so the machine's drift shows; writes the rows
# to experiments/results/bench_xla_flags.md (or $1).
#
#   bash experiments/bench_xla_flags.sh [out.md]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-experiments/results/bench_xla_flags.md}"
flag_sets=(
  ""
  "--xla_cpu_use_onednn=true"
  "--xla_cpu_use_xnnpack=true"
  "--xla_cpu_prefer_vector_width=512"
  "--xla_cpu_experimental_ynn_fusion_type=dot"
  "--xla_cpu_enable_concurrency_optimized_scheduler=true"
  ""
)
tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.row"' EXIT
{
  echo "# XLA CPU flags vs the default (\`bash experiments/bench_xla_flags.sh\`)"
  echo
  echo "GVP-GNN and EGNN, paper configurations, DB5.5 bound chains in packed batches (6 batches,"
  echo "best of 3 passes, compile time excluded), one fresh process per flag set, run in this order."
  echo
  echo "| XLA_FLAGS | network | eval graphs/s | train graphs/s | compile s (train) |"
  echo "|---|---|---:|---:|---:|"
} > "$tmp"
for flags in "${flag_sets[@]}"; do
  echo "XLA_FLAGS='${flags}'" >&2
  XLA_FLAGS="$flags" python experiments/bench_nets.py --networks gvp egnn --batching packed \
    --batches 6 --repeats 3 --out "$tmp.row" > /dev/null
  # bench_nets columns: network | batching | nodes/edges | params | eval | train | ... |
  # compiles | compile s (eval, train) | load
  grep '^| \(gvp\|egnn\) ' "$tmp.row" | awk -F' \\| ' -v f="${flags:-(default)}" '{
    net = $1; sub(/^\| /, "", net); split($(NF-1), c, ", ");
    printf "| `%s` | %s | %s | %s | %s |\n", f, net, $5, $6, c[2] }' >> "$tmp"
done
mv "$tmp" "$out"
trap - EXIT
rm -f "$tmp.row"
cat "$out"
