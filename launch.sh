#!/usr/bin/env bash
# launch.sh: the entry for batch launches of jaxgeo experiments on GPU/TPU hosts.
#
#   ./launch.sh --list                 list the experiments (the rows of jaxgeo/rows.py)
#   ./launch.sh NAME [--set k=v ...]   check the environment, then train experiment NAME
#   ./launch.sh FILE.py [--set k=v]    the same for a config file of your own
#   ./launch.sh paper-grid [ARGS]      the experiment grid (`jaxgeo grid ARGS`; resumable)
#
# Environment: JAXGEO_DATA (default ../shared/data), JAXGEO_RUNS (default runs/),
# JAXGEO_STORE (embedding store, default embeddings/; or --set lm.store=...),
# JAXGEO_JAX_CACHE (persistent compilation cache, default .jax_cache/),
# XLA_PYTHON_CLIENT_MEM_FRACTION (default 0.9).
# Before training, `jaxgeo train --check-env` checks the JAX devices, the config, the data
# and the embedding store the experiment needs (one line each; exit 2 if a piece is missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

list_experiments() { python -m jaxgeo rows --names; }

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then usage; exit 0; fi
if [ "$1" = "--list" ]; then exec python -m jaxgeo rows; fi

name="$1"; shift
setup_env() {
  export JAXGEO_JAX_CACHE="${JAXGEO_JAX_CACHE:-$here/.jax_cache}"
  export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
  export JAXGEO_DATA="${JAXGEO_DATA:-$here/../shared/data}"
  mkdir -p "$JAXGEO_JAX_CACHE"
}
if [ "$name" = "paper-grid" ]; then setup_env; exec python -m jaxgeo grid "$@"; fi
if [ ! -f "$name" ] && ! list_experiments | grep -qx -- "$name"; then
  echo "launch.sh: unknown experiment '$name' (not a row of jaxgeo/rows.py, nor a config file)." >&2
  echo "Run './launch.sh --list' to see them." >&2
  exit 2
fi
config="$name"

setup_env

python - <<'PY' || { echo "launch.sh: jax is not importable; install with: pip install -r requirements.txt -e ." >&2; exit 2; }
import jax
print(f"launch.sh: jax {jax.__version__}, devices: {', '.join(str(d) for d in jax.devices())}")
PY

exec python -m jaxgeo train --config "$config" --check-env "$@"
