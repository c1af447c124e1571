"""One matmul, XLA against PyTorch on this machine's CPU: GFLOP/s by shape and dtype.

The networks' training steps are mostly matmuls (`profile_nets.py`), so how fast XLA's CPU
backend runs a matmul of a given shape, next to PyTorch (oneDNN / MKL) on the same cores,
bounds what any change to jaxgeo's networks can gain. Each matmul [M, K] x [K, N] is one
jitted call, compiled with XLA's defaults and with the training step's options
(`jaxgeo.xla_options.train_step`: YNNPACK dot fusions), timed as the best of `--repeats`
calls, alternating with PyTorch's `a @ b` on as many threads as there are CPUs. A bfloat16
matmul is also timed with a float32 result (`preferred_element_type=float32`, XLA's defaults:
what ESM-2's layers compute in bfloat16), which on CPUs with AMX takes another, much faster
path than a bfloat16 result.

    python experiments/bench_matmul.py                       # EGNN 1280's and GVP-GNN's shapes
    python experiments/bench_matmul.py --shapes 4096x512x512 --dtypes float32 bfloat16
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# [22528, 1280] x [1280, 1280]: EGNN 1280's edge MLP on a packed DB5.5 batch; [2816, 116] x
# [116, 100]: a GVP-GNN message GVP's scalar map on one edge chunk.
DEFAULT_SHAPES = ("22528x1280x1280", "2816x116x100")


def parse_shape(text: str) -> tuple[int, int, int]:
  """"MxKxN" -> (M, K, N)."""
  try:
    m, k, n = (int(x) for x in text.lower().split("x"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"shape {text!r}: expected MxKxN, e.g. 2816x116x100")
  if min(m, k, n) < 1:
    raise argparse.ArgumentTypeError(f"shape {text!r}: every size must be at least 1")
  return m, k, n


def best_seconds(fn, repeats: int) -> float:
  """The fastest of `repeats` calls of `fn` (after one warm-up call)."""
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def bench_shape(shape: tuple[int, int, int], dtype: str, repeats: int, seed: int = 0) -> dict:
  """GFLOP/s of one [M, K] x [K, N] matmul: XLA with its defaults, XLA with the training
  step's options, and PyTorch (None where PyTorch is not installed)."""
  import jax
  import jax.numpy as jnp
  from jaxgeo import xla_options
  m, k, n = shape
  rng = np.random.default_rng(seed)
  a_np = rng.random((m, k), dtype=np.float32)
  b_np = rng.random((k, n), dtype=np.float32)
  a, b = jnp.asarray(a_np, dtype), jnp.asarray(b_np, dtype)
  flops = 2.0 * m * k * n
  row = {"shape": f"{m}x{k}x{n}", "dtype": dtype}
  train_options = xla_options.train_step(jax.default_backend())
  wide = lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32)
  runs = [("xla_default", lambda x, y: x @ y, {}),
          ("xla_train_options", lambda x, y: x @ y, train_options),
          ("xla_f32_result", wide, {})]
  row["xla_f32_result"] = None
  for label, fn, options in runs:
    if label == "xla_f32_result" and dtype == "float32":
      continue
    compiled = jax.jit(fn).lower(a, b).compile(options)
    row[label] = flops / best_seconds(lambda: compiled(a, b).block_until_ready(), repeats) / 1e9
  try:
    import torch
  except ImportError:
    row["torch"] = None
    return row
  torch.set_num_threads(os.cpu_count() or 1)
  ta = torch.from_numpy(a_np).to(getattr(torch, dtype))
  tb = torch.from_numpy(b_np).to(getattr(torch, dtype))
  row["torch"] = flops / best_seconds(lambda: ta @ tb, repeats) / 1e9
  return row


def table(rows: list[dict]) -> str:
  """Markdown table of `bench_shape` rows."""
  fmt = lambda v: "-" if v is None else f"{v:.0f}"
  lines = ["| [M, K] x [K, N] | dtype | XLA defaults | XLA, train-step options | "
           "XLA, float32 result | PyTorch | best XLA / PyTorch |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    best = max(v for v in (r["xla_default"], r["xla_train_options"],
                           r.get("xla_f32_result")) if v is not None)
    ratio = "-" if not r["torch"] else f"{best / r['torch']:.2f}"
    lines.append(f"| {r['shape']} | {r['dtype']} | {fmt(r['xla_default'])} | "
                 f"{fmt(r['xla_train_options'])} | {fmt(r.get('xla_f32_result'))} | "
                 f"{fmt(r['torch'])} | {ratio} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--shapes", nargs="+", type=parse_shape,
                  default=[parse_shape(s) for s in DEFAULT_SHAPES], help="MxKxN each")
  ap.add_argument("--dtypes", nargs="+", choices=("float32", "bfloat16"),
                  default=["float32", "bfloat16"])
  ap.add_argument("--repeats", type=int, default=5, help="best of this many calls")
  args = ap.parse_args(argv)
  import jax
  rows = [bench_shape(shape, dtype, args.repeats) for shape in args.shapes
          for dtype in args.dtypes]
  print(f"GFLOP/s, one jitted call at a time, best of {args.repeats}; JAX {jax.__version__} "
        f"on {jax.default_backend()} ({os.cpu_count()} CPUs)\n")
  print(table(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
