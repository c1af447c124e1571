"""Where a network's training step spends its time: an XLA op-level profile.

Builds a network at its paper configuration (`bench_nets.network_config`), packs DB5.5 bound
chains into batches of `--batch-graphs` graphs on average (`batching.packing_for`), compiles
the training step (forward + backward + Adam, as `bench_nets` times it), records a few steps
with `jax.profiler.trace` (a Perfetto trace: one event per executed XLA op), and prints the
time per step by kind of op (matmuls, gathers, scatters, copies / transposes, while / cond,
elementwise fusions) with the heaviest single ops and their HLO shapes. Also prints the
step's FLOPs (XLA's cost analysis) and the achieved GFLOP/s, and its matmul FLOPs counted
from the step's jaxpr (loop bodies times their trip counts, rematerialised forwards included)
with the GFLOP/s its matmuls reach.

With `--torch`, also profiles the PyTorch port of the network (`bench_nets.torch_reference`)
on the same graphs without padding (`torch.profiler`: self time of every aten op, matmul
FLOPs from the profiler's counts), and prints the two steps side by side by kind of op: where
jaxgeo loses or gains time against PyTorch, and how fast each framework's matmuls run.

    python experiments/profile_nets.py --network gvp [--steps 3] [--out FILE.md]
    python experiments/profile_nets.py --network egnn --mode eval
    python experiments/profile_nets.py --network gvp --torch
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
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
# PyTorch aten ops -> the same kinds (views such as aten::t / select cost next to nothing;
# autograd and optimiser wrappers keep only their own time, in "elementwise ... and other").
TORCH_KINDS = (
    ("matmul", r"^aten::(mm|addmm|bmm|baddbmm|_addmm_activation|(mkldnn_)?convolution"
               r"(_backward)?)$"),
    ("gather", r"^aten::(index_select|index|gather|embedding|take)$"),
    ("scatter", r"^aten::(index_add_?|scatter_add_?|scatter_?|index_put_?|_index_put_impl_|"
                r"embedding_dense_backward)$"),
    ("copy / transpose", r"^aten::(copy_|clone|contiguous|t|transpose|permute)$"),
    ("concatenate / slice", r"^aten::(cat|slice|narrow|split|chunk|select|unbind|"
                            r"slice_backward|select_backward)$"))
# The ops whose FLOPs count as matmul FLOPs (the profiler counts a convolution at aten::conv2d).
TORCH_FLOPS = r"^aten::(mm|addmm|bmm|baddbmm|conv2d)$"
OTHER = "elementwise fusions and other"


def kind_of(name: str, kinds=KINDS) -> str:
  """The kind of an XLA op (trailing ".N" removed) or, with `kinds=TORCH_KINDS`, an aten op."""
  for kind, pattern in kinds:
    if re.search(pattern, name):
      return kind
  return OTHER


def _sub_jaxprs(value):
  """The jaxprs held by an equation parameter (a jaxpr, a closed jaxpr or a tuple of them)."""
  if hasattr(value, "eqns"):
    return [value]
  if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
    return [value.jaxpr]
  if isinstance(value, (tuple, list)):
    return [j for v in value for j in _sub_jaxprs(v)]
  return []


def matmul_flops(jaxpr) -> float:
  """FLOPs (2 per multiply-add) of the dot_generals a jaxpr runs: a scan's body times its
  length, a cond's costliest branch, other sub-jaxprs (jit, remat, custom derivatives) once;
  a while loop's body once (its trip count is not static). Unlike XLA's cost analysis, which
  counts every loop body once, this counts the layer scan and GVP-GNN's edge chunks in full.

  Args: a jaxpr or closed jaxpr (`jax.make_jaxpr(f)(*args)`).
  """
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
      continue
    if eqn.primitive.name == "cond":
      total += max(matmul_flops(b) for b in eqn.params["branches"])
      continue
    times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
    for value in eqn.params.values():
      total += times * sum(matmul_flops(j) for j in _sub_jaxprs(value))
  return total


def profile_torch(name: str, graph_lists, lm_dim: int, mode: str):
  """The PyTorch port's step on `graph_lists` (one list of graphs a step, unpadded): (seconds a
  step untraced, ms a step by aten op (self time), matmul FLOPs a step), or None when the
  network has no PyTorch port."""
  from torch import profiler
  from bench_nets import TorchReference
  reference = TorchReference(name, graph_lists, lm_dim)   # builds and warms up both modes
  if reference.model is None:
    return None
  step = reference.train if mode == "train" else reference.evaluate
  reference.model.train(mode == "train")
  step(reference.batches[0])
  start = time.perf_counter()
  for b in reference.batches:
    step(b)
  seconds = (time.perf_counter() - start) / len(reference.batches)
  # Times from a pass without FLOP counting (which records shapes and slows every op by
  # about half), FLOPs from a second pass.
  per_op, flops = collections.Counter(), 0.0
  for count_flops in (False, True):
    with profiler.profile(activities=[profiler.ProfilerActivity.CPU],
                          with_flops=count_flops) as prof:
      for b in reference.batches:
        step(b)
    for event in prof.key_averages():
      if count_flops and re.search(TORCH_FLOPS, event.key):
        flops += event.flops / len(reference.batches)
      elif not count_flops:
        per_op[event.key] += event.self_cpu_time_total / 1e3 / len(reference.batches)
  return seconds, per_op, flops


def side_by_side(jax_kinds, torch_kinds, jax_step_ms: float, torch_step_ms: float,
                 jax_flops: float, torch_flops: float) -> list[str]:
  """Markdown rows: ms a step by kind of op for jaxgeo and PyTorch, then the matmul rates."""
  lines = ["| kind of op | jaxgeo ms / step | PyTorch ms / step | jaxgeo / PyTorch |",
           "|---|---:|---:|---:|"]
  for kind in sorted(set(jax_kinds) | set(torch_kinds), key=lambda k: -jax_kinds.get(k, 0)):
    j, t = jax_kinds.get(kind, 0.0), torch_kinds.get(kind, 0.0)
    lines.append(f"| {kind} | {j:.1f} | {t:.1f} | {j / t:.2f} |" if t else
                 f"| {kind} | {j:.1f} | {t:.1f} | - |")
  lines.append(f"| **step, untraced** | **{jax_step_ms:.0f}** | **{torch_step_ms:.0f}** | "
               f"**{jax_step_ms / torch_step_ms:.2f}** |")
  rate = lambda flops, kinds: flops / max(kinds.get("matmul", 0.0), 1e-9) / 1e6
  lines += ["", f"Matmuls: jaxgeo {jax_flops / 1e9:.2f} GFLOP a step at "
            f"{rate(jax_flops, jax_kinds):.0f} GFLOP/s of traced matmul time; PyTorch "
            f"{torch_flops / 1e9:.2f} GFLOP at {rate(torch_flops, torch_kinds):.0f} GFLOP/s."]
  return lines


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
  ap.add_argument("--torch", action="store_true",
                  help="also profile the PyTorch port on the same graphs, side by side")
  args = ap.parse_args(argv)

  import jax
  from bench_nets import JaxRunner, load_db55, network_config, with_labels, with_lm
  from jaxgeo import batching, xla_options

  graphs = load_db55(args.data)
  config = network_config(args.network)
  packing = batching.packing_for(graphs, args.batch_graphs)
  buckets = batching.choose_buckets(graphs, args.batch_graphs, 2, packing=packing)
  rng = np.random.default_rng(0)
  planned = [(b, index) for b, index in batching.batches(
      graphs, buckets, args.batch_graphs, rng=rng, packing=packing, return_indices=True)
             if b.nodes["x"].shape[0] == buckets[-1].n_node][:args.steps]
  chosen = [with_labels(b, rng) for b, _ in planned]
  if config.fusion.mode != "none":
    chosen = [with_lm(b, config.fusion.lm_dim, rng) for b in chosen]
  chosen = [jax.device_put(b) for b in chosen]
  # The steps `bench_nets.py` times: padded batches, Adam, the trainer's XLA options.
  runner = JaxRunner(config, True, chosen, 0, xla_options.train_step(jax.default_backend()))
  run = runner.evaluate if args.mode == "eval" else runner.train
  fn, fn_args = runner.step(args.mode, chosen[0])
  compiled = fn.lower(*fn_args).compile()
  dot_flops = matmul_flops(fn.trace(*fn_args).jaxpr)
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
           f"step traced; its matmuls: {dot_flops:.3g} FLOPs a step (counted from the "
           f"jaxpr, loops in full) in {by_kind['matmul']:.0f} ms, "
           f"{dot_flops / max(by_kind['matmul'], 1e-9) / 1e6:.0f} GFLOP/s.", "",
           "| kind of op | ms / step | share |", "|---|---:|---:|"]
  lines += [f"| {k} | {ms:.1f} | {ms / total:.0%} |" for k, ms in by_kind.most_common()]
  lines += ["", "| heaviest ops | ms / step | HLO |", "|---|---:|---|"]
  for name, ms in per_op.most_common(args.top):
    match = re.search(rf"%{re.escape(name)} = ([^ ]+) ", hlo)
    meta = re.search(rf"%{re.escape(name)} = .*?op_name=\"([^\"]+)\"", hlo)
    where = meta.group(1).split("/")[-3:] if meta else []
    lines.append(f"| {name} | {ms:.1f} | `{match.group(1) if match else '?'}` "
                 f"{'/'.join(where)} |")
  if args.torch:
    lm_dim = config.fusion.lm_dim if config.fusion.mode != "none" else 0
    profiled = profile_torch(args.network, [[graphs[i] for i in index] for _, index in planned],
                             lm_dim, args.mode)
    if profiled is None:
      lines += ["", f"(no PyTorch port of {args.network})"]
    else:
      torch_seconds, torch_ops, torch_flops = profiled
      torch_kinds = collections.Counter()
      for name, ms in torch_ops.items():
        torch_kinds[kind_of(name, TORCH_KINDS)] += ms
      import torch
      lines += ["", f"Against the PyTorch port (torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads, the same graphs unpadded; op self times "
                f"from torch.profiler sum to {sum(torch_kinds.values()):.0f} ms a step):", ""]
      lines += side_by_side(by_kind, torch_kinds, seconds * 1e3, torch_seconds * 1e3,
                            dot_flops, torch_flops)
      lines += ["", "| heaviest PyTorch ops | ms / step |", "|---|---:|"]
      lines += [f"| {name} | {ms:.1f} |" for name, ms in torch_ops.most_common(args.top)]
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    with open(args.out, "a", encoding="utf-8") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
