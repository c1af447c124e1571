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
# Several hosts: run this script once per host with JAX_COORDINATOR_ADDRESS=HOST:PORT (process
# 0's address), JAX_NUM_PROCESSES and JAX_PROCESS_ID set (on a multi-host TPU slice JAX finds
# them itself); the trainer joins the run with jax.distributed.initialize (jaxgeo.parallel),
# every process prints the devices it sees, and only process 0 writes logs and results.
# JAXGEO_DISTRIBUTED_TIMEOUT (seconds, default 300): how long a process waits for the
# coordinator before it stops with an error. --set train.devices=N uses the first N devices.
# Before training, `jaxgeo train --check-env` checks the JAX devices, the config, the data
# and the embedding store the experiment needs (one line each; exit 2 if a piece is missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

list_experiments() { python -m jaxgeo rows --names; }

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

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

# This check runs outside the multi-host run (it must not join it): it lists this host's
# devices; the trainer prints the global picture once every process has joined.
JAX_COORDINATOR_ADDRESS= JAX_NUM_PROCESSES= JAX_PROCESS_ID= python - <<'PY' || { echo "launch.sh: jax is not importable; install with: pip install -r requirements.txt -e ." >&2; exit 2; }
import os
import jax
print(f"launch.sh: jax {jax.__version__}, this host's devices: "
      f"{', '.join(str(d) for d in jax.local_devices())}")
PY
if [ -n "${JAX_COORDINATOR_ADDRESS:-}${JAX_NUM_PROCESSES:-}${JAX_PROCESS_ID:-}" ]; then
  echo "launch.sh: multi-host run: process ${JAX_PROCESS_ID:-?} of ${JAX_NUM_PROCESSES:-?}, coordinator ${JAX_COORDINATOR_ADDRESS:-?}"
fi

exec python -m jaxgeo train --config "$config" --check-env "$@"
