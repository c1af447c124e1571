"""Matmuls and gathers of the networks that keep float32 accumulation in mixed precision.

Under `train.precision=bf16` a network runs on bfloat16 activations and parameters
(`train.mixed_apply`). Two operations would otherwise accumulate in bfloat16 or leave the
accumulator's dtype to the backend:

- `dense` / `Linear`: x @ w. Here a bfloat16 product is accumulated into a float32 result
  (`preferred_element_type`) and rounded to bfloat16 once, and so are its two backward
  products (input and weight gradients). On GPU and TPU this is what the hardware does
  anyway; on a CPU with bfloat16 matrix units (Intel AMX) it is also what lets XLA use them:
  with a bfloat16 result it does not (`experiments/bench_matmul.py`, the "float32 result"
  column).
- `gather`: x[index] along axis 0. Its backward pass is a scatter-add of the per-edge
  cotangents into the nodes; in bfloat16 a node with many edges loses them (a bfloat16 sum
  of ones stops at 256), so here the scatter accumulates in float32.

XLA's CPU backend (jaxlib 0.10.2) cannot run a bfloat16 product with a float32 result that
it lays out transposed ("UNIMPLEMENTED: ... DotThunk::Execute: BF16 x BF16 = F32", e.g.
`dot(a, b, preferred_element_type=float32).T`): `dense` never transposes its results.

ESM-2 (`lm/esm2.py`, upstream of `nets` in the data flow, inference only) keeps its own
float32-result product (`esm2._dense`) rather than import this module.

In float32 (and float64) both are the plain operations (`x @ w`, `jnp.take`), with JAX's own
derivatives: the float32 networks are unchanged.
"""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from jaxgeo.nets import ops


def _low(dtype) -> bool:
  """Whether `dtype` accumulates in a wider type (bfloat16, float16)."""
  return jnp.dtype(ops.acc_dtype(dtype)) != jnp.dtype(dtype)


def _wide_dot(a: jax.Array, b: jax.Array, dims, out_dtype) -> jax.Array:
  """dot_general of `a` and `b` accumulated in float32, rounded to `out_dtype`."""
  return jax.lax.dot_general(a, b, (dims, ((), ())),
                             preferred_element_type=jnp.float32).astype(out_dtype)


@jax.custom_vjp
def _dense_low(x: jax.Array, w: jax.Array) -> jax.Array:
  return _wide_dot(x, w, ((x.ndim - 1,), (0,)), x.dtype)


def _dense_low_fwd(x, w):
  return _dense_low(x, w), (x, w)


# On CPU a weight gradient x^T g of at least this many rows and columns is computed from a
# transposed copy of x (`_weight_gradient_cpu`).
CPU_TRANSPOSED_MIN = 64


def _weight_gradient(x: jax.Array, g: jax.Array) -> jax.Array:
  """x [M, K]^T @ g [M, N] -> [K, N] float32."""
  return _wide_dot(x, g, ((0,), (0,)), jnp.float32)


def _weight_gradient_cpu(x: jax.Array, g: jax.Array) -> jax.Array:
  """`_weight_gradient` on CPU. XLA's CPU backend runs a bfloat16 product that contracts the
  leading axis of both operands without the AMX units (EGNN 1280's [2048, 1280]^T x [2048,
  1280]: 249 GFLOP/s, against about 1,000 for x @ w); from a transposed copy of x, which the
  optimisation barrier keeps XLA from folding back into the product, it reaches them (461,
  the transpose included; GVP-GNN's [2816, 116]^T x [2816, 100]: 189 against 129). For thin
  products the copy costs more than it saves (EGNN's [22528, 32]^T x [22528, 32]: 42 against
  78), so they keep the plain product."""
  (m, k), n = x.shape, g.shape[1]
  if min(k, n) < CPU_TRANSPOSED_MIN:
    return _weight_gradient(x, g)
  xt = jax.lax.optimization_barrier(x.T.reshape(-1)).reshape(k, m)
  return _wide_dot(xt, g, ((1,), (0,)), jnp.float32)


def _dense_low_bwd(res, g):
  x, w = res
  g = g.astype(x.dtype)
  dx = _wide_dot(g, w, ((g.ndim - 1,), (1,)), x.dtype)                      # g w^T
  x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
  dw = jax.lax.platform_dependent(x2, g2, cpu=_weight_gradient_cpu,
                                  default=_weight_gradient)                 # x^T g
  return dx, dw.astype(w.dtype)


_dense_low.defvjp(_dense_low_fwd, _dense_low_bwd)


def dense(x: jax.Array, w: jax.Array, precision=None) -> jax.Array:
  """x [..., K] @ w [K, N] -> [..., N] in x's dtype; in bfloat16 (x and w) accumulated in
  float32, in the forward and backward pass alike (`precision`: of a float32 product)."""
  if _low(x.dtype) and x.dtype == w.dtype:
    return _dense_low(x, w)
  return jnp.dot(x, w, precision=precision)


class Linear(hk.Linear):
  """`hk.Linear` (same parameters, names and initialisation) through `dense`."""

  def __call__(self, inputs: jax.Array, *, precision=None) -> jax.Array:
    if not inputs.shape:
      raise ValueError("Input must not be scalar.")
    input_size = self.input_size = inputs.shape[-1]
    dtype = inputs.dtype
    w_init = self.w_init
    if w_init is None:
      w_init = hk.initializers.TruncatedNormal(1.0 / np.sqrt(input_size))
    w = hk.get_parameter("w", [input_size, self.output_size], dtype, init=w_init)
    out = dense(inputs, w, precision)
    if self.with_bias:
      b = hk.get_parameter("b", [self.output_size], dtype, init=self.b_init)
      out = out + jnp.broadcast_to(b, out.shape)
    return out


@jax.custom_vjp
def _gather_low(x: jax.Array, index: jax.Array) -> jax.Array:
  return jnp.take(x, index, axis=0)


def _gather_low_fwd(x, index):
  return _gather_low(x, index), (index, x.shape[0])


def _gather_low_bwd(res, g):
  index, n = res
  total = jax.ops.segment_sum(g.astype(jnp.float32), index, n)
  return total.astype(g.dtype), np.zeros(index.shape, jax.dtypes.float0)


_gather_low.defvjp(_gather_low_fwd, _gather_low_bwd)


def gather(x: jax.Array, index: jax.Array) -> jax.Array:
  """x [N, ...] at `index` [E] (in range) -> [E, ...]; in bfloat16 the backward scatter-add
  accumulates in float32."""
  if _low(x.dtype):
    return _gather_low(x, index)
  return jnp.take(x, index, axis=0)
