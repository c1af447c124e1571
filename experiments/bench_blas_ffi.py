"""The networks with their float32 matmuls in a BLAS library (Intel MKL) instead of XLA's
CPU kernels: an experiment, not part of jaxgeo.

Alone, XLA's CPU backend (jaxlib 0.10.2) runs the thin products of the networks at about half
the speed of MKL, which PyTorch uses: a GVP-GNN weight gradient [2816, 116]^T x [2816, 100]
at ~126 GFLOP/s against ~260 (`--products`). Does it pay inside a training step to hand
`jaxgeo.nets.precision.dense` (every matmul of GVP-GNN, EGNN and Molformer's projections) to
MKL's `cblas_sgemm` through an XLA FFI custom call (`blas_ffi/sgemm.cc`, forward and both
backward products)? This script builds the handler with g++ against jaxlib's FFI headers,
loads MKL, replaces `precision.dense` by the custom call (`--matmuls blas`, products whose
two smaller sizes are at least `--min-size`; thinner ones stay XLA's) or leaves it
(`--matmuls xla`), checks the replacement against `jnp.dot` (values and gradients), and runs
`bench_nets.py` with the remaining arguments. Run the two settings in alternating processes:

    pip install mkl                          # 229 MB wheel: lib/libmkl_rt.so.3 in the prefix
    for m in blas xla blas xla; do
      python experiments/bench_blas_ffi.py --matmuls $m --data ../shared/data/db5.5 \\
          --networks gvp --batching packed --batches 4 --out /tmp/blas_$m.md
    done
    python experiments/bench_blas_ffi.py --products     # the products alone, XLA vs MKL

MKL's threads: `MKL_THREADING_LAYER` (GNU OpenMP unless set; SEQUENTIAL: one thread).
Results: experiments/results/bench_blas_ffi.md.
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SOURCE = REPO / "experiments" / "blas_ffi" / "sgemm.cc"
TARGET = "jaxgeo_sgemm"
# Products timed by --products: (M, K, N) of GVP-GNN's edge chunk (scalar map, its vector
# maps, the gate) and EGNN 1280's edge MLP on a packed batch.
PRODUCTS = ((2816, 116, 100), (2816, 33, 100), (8448, 16, 16), (2816, 100, 16),
            (22528, 1280, 1280))


def build(cache_dir: pathlib.Path) -> pathlib.Path:
  """The handler library compiled from SOURCE (cached by the source's and jaxlib's hash)."""
  import jax
  include = jax.ffi.include_dir()
  key = hashlib.sha256(SOURCE.read_bytes() + jax.__version__.encode()).hexdigest()[:16]
  out = cache_dir / f"libjaxgeo_sgemm_{key}.so"
  if out.exists():
    return out
  compiler = shutil.which("g++")
  if compiler is None:
    raise SystemExit("bench_blas_ffi: g++ not found (needed to build blas_ffi/sgemm.cc)")
  cache_dir.mkdir(parents=True, exist_ok=True)
  tmp = out.with_suffix(f".{os.getpid()}.tmp")
  cmd = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{include}",
         str(SOURCE), "-o", str(tmp), "-ldl"]
  done = subprocess.run(cmd, capture_output=True, text=True)
  if done.returncode:
    raise SystemExit(f"bench_blas_ffi: building {SOURCE} failed:\n{done.stderr[-2000:]}")
  os.replace(tmp, out)
  return out


def find_blas(path: str | None) -> str:
  """`path`, or MKL's libmkl_rt in this Python's prefix (where `pip install mkl` puts it)."""
  if path:
    if not os.path.exists(path):
      raise SystemExit(f"bench_blas_ffi: {path}: no such file")
    return path
  found = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
  if not found:
    raise SystemExit(f"bench_blas_ffi: no libmkl_rt.so* in {sys.prefix}/lib: `pip install "
                     "mkl`, or pass --blas-library PATH (a library exporting cblas_sgemm)")
  return found[0]


def register(handler: pathlib.Path, blas: str, symbol: str = "cblas_sgemm",
             ilp64: bool = False) -> None:
  """Load `blas` (its CBLAS sgemm `symbol`, with 64-bit sizes when `ilp64`) into the handler
  library and register the handler as XLA's CPU target TARGET."""
  import jax
  os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
  lib = ctypes.CDLL(str(handler))
  lib.jaxgeo_blas_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
  status = lib.jaxgeo_blas_load(blas.encode(), symbol.encode(), int(ilp64))
  if status:
    raise SystemExit(f"bench_blas_ffi: {blas}: " +
                     ("did not load" if status == 1 else f"exports no {symbol}"))
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.JaxgeoSgemm), platform="cpu")


def matmul(a, b, trans_a: bool = False, trans_b: bool = False):
  """op(a) @ op(b) of float32 2-D arrays through the custom call."""
  import jax
  import jax.numpy as jnp
  m = a.shape[1] if trans_a else a.shape[0]
  n = b.shape[0] if trans_b else b.shape[1]
  return jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((m, n), jnp.float32))(
      a, b, trans_a=trans_a, trans_b=trans_b)


def blas_dense(min_size: int):
  """A `precision.dense` whose float32 products x [..., K] @ w [K, N] with K and N at least
  `min_size` are custom calls (forward x w, backward g w^T and x^T g); everything else is
  the original."""
  import jax
  import jax.numpy as jnp
  from jaxgeo.nets import precision
  original = precision.dense

  @jax.custom_vjp
  def product(x, w):
    return matmul(x.reshape(-1, x.shape[-1]), w).reshape(x.shape[:-1] + (w.shape[-1],))

  def forward(x, w):
    return product(x, w), (x, w)

  def backward(res, g):
    x, w = res
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    return (matmul(g2, w, trans_b=True).reshape(x.shape), matmul(x2, g2, trans_a=True))

  product.defvjp(forward, backward)

  def dense(x, w, precision=None):
    plain = x.dtype == w.dtype == jnp.float32 and precision is None
    if plain and w.ndim == 2 and min(w.shape) >= min_size:
      return product(x, w)
    return original(x, w, precision)

  return dense


def check(dense) -> None:
  """`dense` against jnp.dot: values and both gradients (raises AssertionError)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  rng = np.random.default_rng(0)
  for lead, k, n in (((300, 3), 40, 48), ((500,), 116, 100)):
    x = jnp.asarray(rng.standard_normal(lead + (k,), np.float32))
    w = jnp.asarray(rng.standard_normal((k, n), np.float32))
    loss = lambda f: (lambda x, w: jnp.sum(jnp.tanh(f(x, w))))
    ours = jax.jit(jax.value_and_grad(loss(dense), (0, 1)))(x, w)
    ref = jax.jit(jax.value_and_grad(loss(jnp.dot), (0, 1)))(x, w)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-3)


def products(repeats: int = 200) -> str:
  """GFLOP/s of PRODUCTS alone, as x w (NN) and as a weight gradient x^T g (TN): XLA's
  defaults, the training step's options and the custom call."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from bench_matmul import best_seconds
  from jaxgeo import xla_options
  options = xla_options.train_step("cpu")

  def rate(fn, args, calls, flop):
    """GFLOP/s of `fn(*args)`, from the best of 3 runs of `calls` calls."""
    def run():
      for _ in range(calls):
        out = fn(*args)
      jax.block_until_ready(out)
    return flop * calls / best_seconds(run, 3) / 1e9

  lines = ["| [M, K] x [K, N] | product | XLA defaults | XLA, train-step options | MKL "
           "(custom call) |", "|---|---|---:|---:|---:|"]
  rng = np.random.default_rng(0)
  for m, k, n in PRODUCTS:
    x = jnp.asarray(rng.standard_normal((m, k), np.float32))
    w = jnp.asarray(rng.standard_normal((k, n), np.float32))
    g = jnp.asarray(rng.standard_normal((m, n), np.float32))
    calls = max(3, repeats * 2816 * 116 * 100 // (m * k * n))   # ~ the same time a shape
    for label, xla, blas, args in (
        ("x w", lambda x, w: x @ w, lambda x, w: matmul(x, w), (x, w)),
        ("x^T g", lambda x, g: jnp.einsum("mk,mn->kn", x, g),
         lambda x, g: matmul(x, g, trans_a=True), (x, g))):
      cells = []
      for fn, opts in ((xla, {}), (xla, options), (blas, {})):
        compiled = jax.jit(fn).lower(*args).compile(opts)
        cells.append(f"{rate(compiled, args, calls, 2.0 * m * k * n):.0f}")
      lines.append(f"| {m}x{k}x{n} | {label} | " + " | ".join(cells) + " |")
      print(lines[-1], flush=True)
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--matmuls", choices=["blas", "xla"], default="blas",
                      help="the networks' float32 products through the custom call or XLA's")
  parser.add_argument("--min-size", type=int, default=32,
                      help="products whose weight has fewer rows or columns stay XLA's")
  parser.add_argument("--blas-library", default=None,
                      help="a CBLAS library (default: libmkl_rt in this Python's prefix)")
  parser.add_argument("--blas-symbol", default="cblas_sgemm",
                      help="its sgemm (e.g. scipy_cblas_sgemm64_ in numpy's OpenBLAS)")
  parser.add_argument("--blas-ilp64", action="store_true",
                      help="the sgemm takes 64-bit sizes (numpy's OpenBLAS)")
  parser.add_argument("--cache-dir", type=pathlib.Path,
                      default=pathlib.Path.home() / ".cache" / "jaxgeo" / "blas_ffi",
                      help="where the compiled handler is kept")
  parser.add_argument("--products", action="store_true",
                      help="time the products alone (XLA vs the custom call) and stop")
  args, rest = parser.parse_known_args(argv)
  register(build(args.cache_dir), find_blas(args.blas_library), args.blas_symbol,
           args.blas_ilp64)
  sys.path.insert(0, str(REPO / "experiments"))
  if args.products:
    print(products())
    return 0
  import bench_nets
  from jaxgeo.nets import precision
  if args.matmuls == "blas":
    dense = blas_dense(args.min_size)
    check(dense)
    precision.dense = dense      # the networks call precision.dense (Linear too)
  print(f"matmuls: {args.matmuls} (min size {args.min_size}, MKL_THREADING_LAYER="
        f"{os.environ.get('MKL_THREADING_LAYER')})", flush=True)
  return bench_nets.main(rest)


if __name__ == "__main__":
  sys.exit(main())
