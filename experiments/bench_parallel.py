"""Data-parallel training at 1, 2 and 4 CPU devices (the host CPU split into devices).

    python experiments/bench_parallel.py [--steps 20] [--out experiments/results/bench_parallel.md]

Each device count runs in its own subprocess with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (JAX fixes the device count at start-up).
The devices share the host's CPU cores: up to one device a core this is the data parallelism
over the cores that `jaxgeo train` uses on CPU (`train.cpu_devices`; each device's kernels on
its own thread), beyond it the overhead of the data-parallel path (stacking, sharding,
shard_map, the gradient all-reduce). On real accelerators each device brings its own
compute. The global batch is the same (train.batch_graphs=8) at every count; the step is
timed after its compilation.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent

CHILD = r'''
import json, sys, time
import numpy as np, jax, jax.numpy as jnp
from jaxgeo import config as config_lib, rows, train, parallel
steps = int(sys.argv[1])
c = config_lib.apply_overrides(rows.config("position_demo"), [
    "task.num_train=64", "task.num_val=4", "task.num_test=4", "train.batch_graphs=8",
    "train.max_buckets=1", "model.egnn.hidden=32"])
with c.train.unlocked():
  c.train.devices = 0
s = train.prepare(c)
state = train.init_state(s)
params, opt = state["params"], state["opt_state"]
key = jnp.asarray(state["key"])
batches = list(train.device_batches(s, s.splits.train, np.random.default_rng(0)))
def run(n):
  global params, opt
  for i in range(n):
    _, dev, _ = batches[i % len(batches)]
    params, opt, loss = s.train_step(params, opt, dev, key, jnp.int32(0), jnp.int32(i))
  jax.block_until_ready(loss)
t = time.perf_counter(); run(len(batches)); compile_s = time.perf_counter() - t
t = time.perf_counter(); run(steps); dt = time.perf_counter() - t
print("RESULT " + json.dumps({"devices": s.devices, "graphs_per_second": steps * 8 / dt,
                              "step_ms": 1000 * dt / steps, "first_pass_s": compile_s}))
'''


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--out", default=str(REPO / "experiments/results/bench_parallel.md"))
  args = parser.parse_args()
  rows = []
  for n in (1, 2, 4):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(args.steps)], capture_output=True,
                          text=True, env=env, cwd=REPO)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not line:
      sys.exit(f"bench_parallel: {n} devices failed:\n{proc.stderr[-2000:]}")
    rows.append(json.loads(line[-1][7:]))
    print(rows[-1])
  base = rows[0]["graphs_per_second"]
  lines = [
      "# Data parallelism over CPU devices",
      "",
      f"`python experiments/bench_parallel.py` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} "
      "CPU cores shared by the devices; position_demo EGNN, hidden 32, global batch 8 "
      f"graphs, {args.steps} timed steps after one compiled pass).",
      "",
      "These devices share the host's cores: up to one device a core this is the data "
      "parallelism over the cores of `jaxgeo train` on CPU, beyond it the cost of the "
      "data-parallel path (stacking, sharding, shard_map, all-reduce). Real accelerators "
      "each bring their own compute; no GPU figure was measured here.",
      "",
      "| devices | graphs/s (global) | graphs/s per device | step (ms) | vs 1 device |",
      "|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(f"| {r['devices']} | {r['graphs_per_second']:.1f} | "
                 f"{r['graphs_per_second'] / r['devices']:.1f} | {r['step_ms']:.1f} | "
                 f"{r['graphs_per_second'] / base:.2f}x |")
  pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
