"""Where a network's training step spends its time: an XLA op-level profile.

Builds a network at its paper configuration (`bench_nets.network_config`), packs DB5.5 bound
chains into batches of `--batch-graphs` graphs on average (`batching.packing_for`), compiles
the training step (forward + backward + Adam, as `bench_nets` times it), records a few steps
with `jax.profiler.trace` (a Perfetto trace: one event per executed XLA op), and prints the
time per step by kind of op (matmuls, gathers, scatters, copies / transposes, while / cond,
elementwise fusions) with the heaviest single ops and their HLO shapes. Also prints the
step's FLOPs (XLA's cost analysis) and the achieved GFLOP/s.

    python experiments/profile_nets.py --network gvp [--steps 3] [--out FILE.md]
    python experiments/profile_nets.py --network egnn --mode eval
"""
from __future__ import annotations

import argparse
import collections
import functools
import glob
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))

# XLA op names (trailing ".N" removed) -> a kind.
KINDS = (("matmul", r"^(dot|ynn_fusion|.*convolution)"), ("gather", r"gather"),
         ("scatter", r"scatter"), ("copy / transpose", r"^copy"),
         ("while / cond (layer scan, branches)", r"^(while|cond|conditional)"),
         ("concatenate / slice", r"(concatenate|slice)"))
RUNTIME = ("ThunkExecutor", "Slinky", "PjitFunction", "ExecuteHelper", "PjRt")


def kind_of(name: str) -> str:
  for kind, pattern in KINDS:
    if re.search(pattern, name):
      return kind
  return "elementwise fusions and other"


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--network", default="gvp",
                  choices=("gvp", "egnn", "molformer", "egnn_1280", "molformer_1280"))
  ap.add_argument("--mode", choices=("train", "eval"), default="train")
  ap.add_argument("--batch-graphs", type=int, default=8)
  ap.add_argument("--steps", type=int, default=3)
  ap.add_argument("--top", type=int, default=8, help="heaviest single ops listed")
  ap.add_argument("--data", type=pathlib.Path, default=pathlib.Path(os.environ.get(
      "JAXGEO_SHARED_DATA", REPO.parent / "shared" / "data")) / "db5.5")
  ap.add_argument("--out", type=pathlib.Path, default=None, help="append the Markdown here")
  args = ap.parse_args(argv)

  import jax
  import jax.numpy as jnp
  import optax
  from bench_nets import load_db55, network_config, with_labels, with_lm
  from jaxgeo import batching, nets, xla_options

  graphs = load_db55(args.data)
  config = network_config(args.network)
  model = nets.make_model(config)
  packing = batching.packing_for(graphs, args.batch_graphs)
  buckets = batching.choose_buckets(graphs, args.batch_graphs, 2, packing=packing)
  rng = np.random.default_rng(0)
  chosen = [with_labels(b, rng) for b in batching.batches(graphs, buckets, args.batch_graphs,
                                                          rng=rng, packing=packing)]
  chosen = [b for b in chosen if b.nodes["x"].shape[0] == buckets[-1].n_node][:args.steps]
  if config.fusion.mode != "none":
    chosen = [with_lm(b, config.fusion.lm_dim, rng) for b in chosen]
  chosen = [jax.device_put(b) for b in chosen]
  params = model.init(jax.random.PRNGKey(0), chosen[0])
  optimizer = optax.adam(1e-3)

  def loss_fn(p, key, b):
    pred = model.apply(p, key, b, True)["graph"]
    mask = jnp.arange(pred.shape[0]) < pred.shape[0] - 1
    return jnp.sum(jnp.where(mask[:, None], pred - b.globals["label"], 0.0) ** 2)

  @functools.partial(jax.jit, donate_argnums=(0, 1),   # the trainer's XLA options
                     compiler_options=xla_options.train_step(jax.default_backend()))
  def train_step(p, state, key, b):
    loss, grads = jax.value_and_grad(loss_fn)(p, key, b)
    updates, state = optimizer.update(grads, state, p)
    return optax.apply_updates(p, updates), state, loss

  forward = jax.jit(lambda p, b: model.apply(p, None, b, False)["graph"])
  state = {"p": params, "o": optimizer.init(params)}
  key = jax.random.PRNGKey(1)

  def run(b):
    if args.mode == "eval":
      return forward(state["p"], b)
    state["p"], state["o"], loss = train_step(state["p"], state["o"], key, b)
    return loss

  fn = forward if args.mode == "eval" else train_step
  fn_args = ((state["p"], chosen[0]) if args.mode == "eval"
             else (state["p"], state["o"], key, chosen[0]))
  compiled = fn.lower(*fn_args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  hlo = compiled.as_text()
  jax.block_until_ready(run(chosen[0]))         # compile and warm up
  start = time.perf_counter()
  for b in chosen:
    jax.block_until_ready(run(b))
  seconds = (time.perf_counter() - start) / len(chosen)

  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for b in chosen:
        jax.block_until_ready(run(b))
    trace_file = glob.glob(f"{trace_dir}/**/*perfetto_trace.json.gz", recursive=True)[0]
    with gzip.open(trace_file) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  per_op = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and "dur" in e and not e["name"].startswith("$") and not any(
        r in e["name"] for r in RUNTIME):
      per_op[e["name"]] += e["dur"] / 1e3 / len(chosen)     # ms per step
  by_kind = collections.Counter()
  for name, ms in per_op.items():
    by_kind[kind_of(re.sub(r"[.\d]+$", "", name))] += ms
  total = sum(by_kind.values())
  flops = float(cost.get("flops", 0.0))
  n_nodes = int(buckets[-1].n_node)
  lines = [f"### {args.network}, {args.mode} step ({len(chosen)} packed batches of "
           f"{n_nodes} nodes / {buckets[-1].n_edge} edges; JAX {jax.__version__}, "
           f"{jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f})", "",
           f"{seconds * 1e3:.0f} ms a step untraced; {flops:.3g} FLOPs a step (XLA cost "
           f"analysis): {flops / seconds / 1e9:.1f} GFLOP/s; ops sum to {total:.0f} ms a "
           "step traced.", "", "| kind of op | ms / step | share |", "|---|---:|---:|"]
  lines += [f"| {k} | {ms:.1f} | {ms / total:.0%} |" for k, ms in by_kind.most_common()]
  lines += ["", "| heaviest ops | ms / step | HLO |", "|---|---:|---|"]
  for name, ms in per_op.most_common(args.top):
    match = re.search(rf"%{re.escape(name)} = ([^ ]+) ", hlo)
    meta = re.search(rf"%{re.escape(name)} = .*?op_name=\"([^\"]+)\"", hlo)
    where = meta.group(1).split("/")[-3:] if meta else []
    lines.append(f"| {name} | {ms:.1f} | `{match.group(1) if match else '?'}` "
                 f"{'/'.join(where)} |")
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    with open(args.out, "a", encoding="utf-8") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
