"""Molformer-style distance-aware transformer (Wu et al.) in Haiku.

Each head's attention score between nodes i and j of the same graph is the scaled dot
product multiplied by a learned function of their distance (the paper's code: a 1x1
convolution network 1 -> H -> H with a ReLU, applied to the distance in Angstrom):

  a_ij = softmax_j( (q_i . k_j / sqrt(d_k)) * f_h(|x_i - x_j|) )   over j in graph(i)

in a pre-norm encoder (x + dropout(attn(LN(x))), x + dropout(FFN(LN(x))), final LN). Only
distances enter, so the outputs are invariant to rotations, translations and reflections.

How attention stays within each graph of a padded batch, with static shapes:
jraph batches store each graph's nodes contiguously, so the node-to-graph index is
non-decreasing. Nodes are cut into query blocks (`query_block`) and key blocks
(`key_block`); a scan over query blocks runs an online-softmax loop (as in flash attention)
over the key blocks whose graph range overlaps the query block's, a contiguous range found
by binary search (`_key_ranges`; it replaced a scan over all key blocks that skipped the
others with `lax.cond`: the same results, the conds' time in a profiled training step
gone, wall time within this machine's noise). The work is then about
sum_g (n_g + block)^2 instead of the N^2 of masked attention over the whole batch, and
memory is one block pair at a time. The backward pass is written by hand
(FlashAttention-2 style: recompute each block's scores from the saved log-sum-exp), about
4x cheaper on CPU than differentiating the online-softmax loop.
Attention dropout masks come from a counter-based hash of (seed, block, position), so the
backward pass regenerates them. Entries of a processed block that belong to another graph
are masked before the softmax. Padding nodes form the padding graph, so they never mix with
real nodes.

Why not `jax.nn.dot_product_attention` (cuDNN's fused flash attention on GPU): it computes
softmax(s * q.k + bias) with an *additive* bias and a boolean mask, whereas Molformer
*multiplies* the logits by f_h(d_ij). The product is not a bias: the only exact rewrite,
bias_hij = (q_i . k_j)(f_h(d_ij) - 1), needs the [H, N, N] dot products before the call
(computing them twice and materialising what a fused kernel exists to avoid), and f is a ReLU
MLP of the distance, which does not factor into per-node terms that could be folded into q
and k. The fused API has no attention dropout either. What does apply is the blocked path
above: the same online softmax as flash attention, with the modulation computed per block,
never an [N, N] matrix, and block pairs of different graphs skipped.

On a GPU that loop is latency-bound (one small block pair after another: an H200 trained
254 graphs/s at the paper's batch of 4, `experiments/results/bench_accelerator_h200.md`), so
`MolformerConfig.attention_impl="dense"` offers `dense_graph_attention`: the [H, N, N] scores
of the whole batch, masked to same-graph pairs, in a few large operations that JAX
differentiates.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import jraph

from jaxgeo.nets import ops, precision, stacking
from jaxgeo.nets.config import MolformerConfig

_MASKED = -1e9


def _xavier() -> hk.initializers.Initializer:
  return hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")


def distance_function(d: jax.Array, params: dict) -> jax.Array:
  """Per-head distance function: d [...] -> [H, ...] (ReLU MLP 1 -> H -> H).

  Written as a sum over the H hidden units (one elementwise loop per block) rather than an
  [..., H] x [H, H] matmul, which is slow for such a small H.
  """
  w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
  column = lambda a: a.reshape(a.shape + (1,) * d.ndim)                     # [H, 1, ...]
  out = column(b2)
  for j in range(w1.shape[0]):
    out = out + column(w2[j]) * jax.nn.relu(d * w1[j] + b1[j])[None]
  return out


def _mix32(x: jax.Array) -> jax.Array:
  """murmur3's 32-bit finaliser: a cheap, well-mixing integer hash."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def dropout_keep(seed: jax.Array, counter: jax.Array, shape: tuple[int, ...], rate: float
                 ) -> jax.Array:
  """Bernoulli(1 - rate) mask of `shape` from a uint32 seed and a block counter.

  A counter-based hash (as fused attention kernels do with Philox) so that the backward
  pass regenerates the same mask cheaply; threefry inside the block loop costs more than
  the attention itself on CPU.
  """
  size = math.prod(shape)
  index = jax.lax.iota(jnp.uint32, size).reshape(shape)
  x = _mix32(index + counter.astype(jnp.uint32) * jnp.uint32(size) + seed)
  x = _mix32(x ^ (seed * jnp.uint32(0x9E3779B9)))
  threshold = jnp.uint32(min(int(rate * 2.0 ** 32), 2 ** 32 - 1))
  return x >= threshold


def _pad_rows(a: jax.Array, rows: int, value) -> jax.Array:
  extra = rows - a.shape[0]
  if extra == 0:
    return a
  pad = jnp.full((extra,) + a.shape[1:], value, a.dtype)
  return jnp.concatenate([a, pad], axis=0)


class _Blocks(NamedTuple):
  """Queries and keys cut into blocks, with each block's graph range."""
  q: jax.Array          # [nq, bq, H, dk] (scaled by 1/sqrt(dk))
  xq: jax.Array         # [nq, 3, bq] (coordinates component-major)
  gq: jax.Array         # [nq, bq]
  k: jax.Array          # [nk, bk, H, dk]
  v: jax.Array          # [nk, bk, H, dk]
  xk: jax.Array         # [nk, 3, bk]
  gk: jax.Array         # [nk, bk]


def _blocks(q, k, v, x, graph_index, bq: int, bk: int) -> _Blocks:
  n, heads, dk = q.shape
  nq, nk = -(-n // bq), -(-n // bk)
  last_graph = graph_index[-1]
  # Extra query rows join the last graph (their outputs are dropped); extra key columns get
  # a graph index no query has.
  gq = jnp.where(jnp.arange(nq * bq) < n, _pad_rows(graph_index, nq * bq, 0), last_graph)
  gk = jnp.where(jnp.arange(nk * bk) < n, _pad_rows(graph_index, nk * bk, 0), last_graph + 1)
  coords = lambda blocks, size: _pad_rows(x, blocks * size, 0).reshape(
      blocks, size, 3).transpose(0, 2, 1)                                  # [blocks, 3, size]
  return _Blocks(
      q=_pad_rows(q * (1.0 / math.sqrt(dk)), nq * bq, 0).reshape(nq, bq, heads, dk),
      xq=coords(nq, bq), gq=gq.reshape(nq, bq),
      k=_pad_rows(k, nk * bk, 0).reshape(nk, bk, heads, dk),
      v=_pad_rows(v, nk * bk, 0).reshape(nk, bk, heads, dk),
      xk=coords(nk, bk), gk=gk.reshape(nk, bk))


def _key_ranges(b: _Blocks, skip_from: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[nq] first and [nq] one-past-last key block that shares a graph with each query block.

  Graph indices are sorted, so the key blocks overlapping a query block's graph range
  [gq[qi, 0], gq[qi, -1]] are contiguous: those whose last graph is not before the range's
  start and whose first graph is not after its end. Query blocks whose nodes all belong to
  graphs >= `skip_from` (the padding graph of a padded batch) get an empty range: their
  outputs are 0 and nothing flows back through them.
  """
  lo = jnp.searchsorted(b.gk[:, -1], b.gq[:, 0], side="left")
  hi = jnp.searchsorted(b.gk[:, 0], b.gq[:, -1], side="right")
  hi = jnp.where(b.gq[:, 0] >= skip_from, lo, jnp.maximum(lo, hi))
  return lo.astype(jnp.int32), hi.astype(jnp.int32)


def _block_scores(b: _Blocks, qi, kj, dist_params: dict, distance_scale: float, acc_t):
  """Scores of one block pair and what their backward pass needs.

  Returns (scores [H, bq, bk] masked to the same graph, raw dot products a [H, bq, bk],
  distance-function values f [H, bq, bk], scaled distances [bq, bk], distances [bq, bk],
  coordinate differences [3, bq, bk]).
  """
  a = jnp.einsum("qhd,khd->hqk", b.q[qi], b.k[kj], preferred_element_type=acc_t)
  # Component by component: a sum over a trailing axis of 3 is a slow reduction on CPU
  # (it was half of an evaluation step).
  diff = (b.xq[qi][:, :, None] - b.xk[kj][:, None, :]).astype(acc_t)      # [3, bq, bk]
  d = jnp.sqrt(diff[0] * diff[0] + diff[1] * diff[1] + diff[2] * diff[2] + 1e-12)
  ds = d * distance_scale
  f = distance_function(ds, dist_params)
  same = (b.gq[qi][:, None] == b.gk[kj][None, :])[None]
  return jnp.where(same, a * f, _MASKED), a, f, ds, d, diff


def _attention_forward(q, k, v, x, graph_index, skip_from, dist_params, seed, distance_scale,
                       bq, bk, rate):
  """Online-softmax (flash) forward: outputs [N, H, dk] and log-sum-exp [N, H]."""
  n, heads, dk = q.shape
  b = _blocks(q, k, v, x, graph_index, bq, bk)
  nq, nk = b.q.shape[0], b.k.shape[0]
  acc_t = ops.acc_dtype(q.dtype)

  key_lo, key_hi = _key_ranges(b, skip_from)

  def query_step(_, qi):
    def key_step(kj, carry):
      m, l, acc = carry
      s = _block_scores(b, qi, kj, dist_params, distance_scale, acc_t)[0]
      m_new = jnp.maximum(m, jnp.max(s, axis=-1))                          # [H, bq]
      p = jnp.exp(s - m_new[..., None])
      correction = jnp.exp(m - m_new)
      l_new = l * correction + jnp.sum(p, axis=-1)
      if rate > 0.0:
        keep = dropout_keep(seed, qi * nk + kj, p.shape, rate)
        p = jnp.where(keep, p * (1.0 / (1.0 - rate)), 0.0)
      pv = jnp.einsum("hqk,khd->hqd", p.astype(b.v.dtype), b.v[kj],
                      preferred_element_type=acc_t)
      return m_new, l_new, acc * correction[..., None] + pv

    init = ops.varying_like((jnp.full((heads, bq), 2 * _MASKED, acc_t),
                             jnp.zeros((heads, bq), acc_t), jnp.zeros((heads, bq, dk), acc_t)),
                            b.q)
    m, l, acc = jax.lax.fori_loop(key_lo[qi], key_hi[qi], key_step, init)
    l = jnp.maximum(l, 1e-30)
    out = acc / l[..., None]                                                  # [H, bq, dk]
    return None, (jnp.swapaxes(out, 0, 1), jnp.swapaxes(m + jnp.log(l), 0, 1))

  _, (out, lse) = jax.lax.scan(query_step, None, jnp.arange(nq))
  return (out.reshape(nq * bq, heads, dk)[:n].astype(q.dtype),
          lse.reshape(nq * bq, heads)[:n])


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10, 11))
def _attention(q, k, v, x, graph_index, skip_from, dist_params, seed, distance_scale, bq, bk,
               rate):
  return _attention_forward(q, k, v, x, graph_index, skip_from, dist_params, seed,
                            distance_scale, bq, bk, rate)[0]


def _attention_fwd(q, k, v, x, graph_index, skip_from, dist_params, seed, distance_scale, bq,
                   bk, rate):
  out, lse = _attention_forward(q, k, v, x, graph_index, skip_from, dist_params, seed,
                                distance_scale, bq, bk, rate)
  return out, (q, k, v, x, graph_index, skip_from, dist_params, seed, out, lse)


def _attention_bwd(distance_scale, bq, bk, rate, residuals, d_out):
  """FlashAttention-2 style backward: scores are recomputed block by block from the saved
  log-sum-exp; no per-block state is stored. Gradients reach q, k, v, the distance
  function's parameters and the coordinates."""
  q, k, v, x, graph_index, skip_from, dist_params, seed, out, lse = residuals
  n, heads, dk = q.shape
  acc_t = ops.acc_dtype(q.dtype)
  b = _blocks(q, k, v, x, graph_index, bq, bk)
  nq, nk = b.q.shape[0], b.k.shape[0]
  d_out = d_out.astype(acc_t)
  delta = jnp.sum(d_out * out.astype(acc_t), axis=-1)                         # [N, H]
  rows = lambda a: jnp.swapaxes(_pad_rows(a, nq * bq, 0).reshape((nq, bq) + a.shape[1:]),
                                1, 2) if a.ndim == 3 else _pad_rows(a, nq * bq, 0).reshape(
                                    nq, bq, heads).transpose(0, 2, 1)
  do_blocks = rows(d_out)                          # [nq, H, bq, dk]
  lse_blocks = rows(lse)                           # [nq, H, bq]
  delta_blocks = rows(delta)                       # [nq, H, bq]
  w1, b1, w2 = (dist_params[name].astype(acc_t) for name in ("w1", "b1", "w2"))
  hidden = w1.shape[0]
  zeros_params = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, acc_t), dist_params)

  key_lo, key_hi = _key_ranges(b, skip_from)

  def query_step(carry, qi):
    dk_acc, dv_acc, dxk_acc, dparams = carry
    do_q, lse_q, delta_q = do_blocks[qi], lse_blocks[qi], delta_blocks[qi]

    def key_step(kj, carry):
      dq, dxq, dk_acc, dv_acc, dxk_acc, dparams = carry
      s, a, f, ds, d, diff = _block_scores(b, qi, kj, dist_params, distance_scale, acc_t)
      p = jnp.exp(s - lse_q[..., None])                                    # [H, bq, bk]
      d_p = jnp.einsum("hqd,khd->hqk", do_q, b.v[kj].astype(acc_t))
      if rate > 0.0:
        keep = dropout_keep(seed, qi * nk + kj, p.shape, rate)
        scale = 1.0 / (1.0 - rate)
        p_drop = jnp.where(keep, p * scale, 0.0)
        d_p = jnp.where(keep, d_p * scale, 0.0)
      else:
        p_drop = p
      dv_blk = jnp.einsum("hqk,hqd->khd", p_drop, do_q)
      d_s = p * (d_p - delta_q[..., None])             # zero where masked (p = 0)
      d_a = d_s * f
      d_f = d_s * a
      dq = dq + jnp.einsum("hqk,khd->qhd", d_a, b.k[kj].astype(acc_t))
      dk_blk = jnp.einsum("hqk,qhd->khd", d_a, b.q[qi].astype(acc_t))
      # Through f(ds) = b2 + sum_j w2[j] relu(ds w1[j] + b1[j]).
      # The parameter gradients are sums over the block's pairs; all of them come from one
      # matmul, [d_f; d_pre] [H + J, P] x [1; relu(pre); ds]^T [P, J + 2] (as separate
      # reductions they were 3J + 1 passes, each a tree of reduce-windows on XLA CPU).
      pre = ds[None] * w1[:, None, None] + b1[:, None, None]                 # [J, bq, bk]
      d_pre = jnp.where(pre > 0, jnp.einsum("hqk,jh->jqk", d_f, w2), 0.0)
      d_dist = jnp.einsum("jqk,j->qk", d_pre, w1)
      lhs = jnp.concatenate([d_f, d_pre], 0).reshape(heads + hidden, -1)
      rhs = jnp.concatenate([jnp.ones_like(ds)[None], jnp.maximum(pre, 0.0), ds[None]],
                            0).reshape(hidden + 2, -1)
      sums = lhs @ rhs.T                                                     # [H + J, J + 2]
      g = {"b2": dparams["b2"] + sums[:heads, 0],
           "w2": dparams["w2"] + sums[:heads, 1:1 + hidden].T,
           "b1": dparams["b1"] + sums[heads:, 0],
           "w1": dparams["w1"] + sums[heads:, hidden + 1]}
      coef = (d_dist * distance_scale / d)[None] * diff                       # [3, bq, bk]
      dxq = dxq + jnp.sum(coef, axis=2)
      dk_acc = dk_acc.at[kj].add(dk_blk)
      dv_acc = dv_acc.at[kj].add(dv_blk)
      dxk_acc = dxk_acc.at[kj].add(-jnp.sum(coef, axis=1))
      return dq, dxq, dk_acc, dv_acc, dxk_acc, g

    init = (*ops.varying_like((jnp.zeros((bq, heads, dk), acc_t), jnp.zeros((3, bq), acc_t)),
                              b.q), dk_acc, dv_acc, dxk_acc, dparams)
    dq, dxq, dk_acc, dv_acc, dxk_acc, dparams = jax.lax.fori_loop(
        key_lo[qi], key_hi[qi], key_step, init)
    return (dk_acc, dv_acc, dxk_acc, dparams), (dq, dxq)

  init = ops.varying_like((jnp.zeros((nk, bk, heads, dk), acc_t),
                           jnp.zeros((nk, bk, heads, dk), acc_t), jnp.zeros((nk, 3, bk), acc_t),
                           zeros_params), b.q)
  (dk_acc, dv_acc, dxk_acc, dparams), (dq, dxq) = jax.lax.scan(query_step, init,
                                                               jnp.arange(nq))
  dq = dq.reshape(nq * bq, heads, dk)[:n] * (1.0 / math.sqrt(dk))
  node_major = lambda a: jnp.swapaxes(a, 1, 2).reshape(-1, 3)[:n]          # [n, 3]
  dx = node_major(dxq) + node_major(dxk_acc)
  cast = lambda g, like: g.astype(like.dtype)
  return (cast(dq, q), cast(dk_acc.reshape(nk * bk, heads, dk)[:n], k),
          cast(dv_acc.reshape(nk * bk, heads, dk)[:n], v), cast(dx, x), None, None,
          jax.tree_util.tree_map(cast, dparams, dist_params), None)


_attention.defvjp(_attention_fwd, _attention_bwd)


def graph_attention(q: jax.Array, k: jax.Array, v: jax.Array, x: jax.Array,
                    graph_index: jax.Array, dist_params: dict, distance_scale: float,
                    query_block: int, key_block: int, dropout_rate: float = 0.0,
                    rng: jax.Array | None = None,
                    skip_graphs_from: jax.Array | None = None) -> jax.Array:
  """Distance-modulated softmax attention within each graph (see the module docstring).

  Args:
    q, k, v: [N, H, dk] queries, keys, values.
    x: [N, 3] coordinates.
    graph_index: [N] non-decreasing graph of each node.
    dist_params: {"w1" [H], "b1" [H], "w2" [H, H], "b2" [H]} of `distance_function`.
    distance_scale: distances are multiplied by this first.
    query_block, key_block: block sizes.
    dropout_rate, rng: dropout on the attention probabilities (rng None: no dropout).
    skip_graphs_from: None, or a graph index (int32 scalar; the padding graph of a padded
      batch, `ops.padding_graph_index`): query blocks of nodes of that graph or later are
      skipped, their outputs 0 (query blocks shared with an earlier graph are computed).
  Returns:
    [N, H, dk] attention outputs. Differentiable in q, k, v, x and dist_params (a custom
    backward pass, see `_attention_bwd`).
  """
  q, k, v, x, graph_index = (jnp.asarray(a) for a in (q, k, v, x, graph_index))
  # Ties the coordinates and graph index to this call's queries. Otherwise, inside a
  # differentiated scan over layers, JAX hoists the per-block geometry (distances, masks;
  # loop-invariant) out of the layer loop and materialises it for every block pair.
  q, x, graph_index = jax.lax.optimization_barrier((q, x, graph_index))
  n = q.shape[0]
  bq, bk = min(query_block, n), min(key_block, n)
  if rng is not None and dropout_rate > 0.0:
    seed, rate = jax.random.bits(rng, (), jnp.uint32), float(dropout_rate)
  else:
    seed, rate = jnp.zeros((), jnp.uint32), 0.0
  skip_from = (jnp.asarray(jnp.iinfo(jnp.int32).max, jnp.int32) if skip_graphs_from is None
               else jnp.asarray(skip_graphs_from, jnp.int32))
  # In a data-parallel step the parameters' gradient from `_attention_bwd` varies over the
  # data axis, so the parameters must enter typed so (their reduction is shard_map's).
  dist_params = ops.varying_like(dist_params, q)
  return _attention(q, k, v, x, graph_index.astype(jnp.int32), skip_from, dist_params, seed,
                    float(distance_scale), bq, bk, rate)


def dense_graph_attention(q: jax.Array, k: jax.Array, v: jax.Array, x: jax.Array,
                          graph_index: jax.Array, dist_params: dict, distance_scale: float,
                          dropout_rate: float = 0.0, rng: jax.Array | None = None
                          ) -> jax.Array:
  """`graph_attention`'s attention over the whole batch at once: [H, N, N] scores masked to
  pairs of the same graph, one softmax, differentiated by JAX. N^2 work and memory (padding
  included) in a few large operations, where the blocked path runs one small block pair after
  another: for GPUs and TPUs, on which that loop is latency-bound. Same arguments and result
  as `graph_attention` (without the block sizes); with dropout, other masks than the blocked
  path's (the same hash, one counter for the whole matrix)."""
  n, heads, dk = q.shape
  acc_t = ops.acc_dtype(q.dtype)
  a = jnp.einsum("qhd,khd->hqk", q * (1.0 / math.sqrt(dk)), k,
                 preferred_element_type=acc_t)                               # [H, N, N]
  xs = x.astype(acc_t)
  diff = [xs[:, c][:, None] - xs[None, :, c] for c in range(3)]
  d = jnp.sqrt(diff[0] * diff[0] + diff[1] * diff[1] + diff[2] * diff[2] + 1e-12)
  f = distance_function(d * distance_scale, jax.tree_util.tree_map(
      lambda w: w.astype(acc_t), dist_params))
  same = (graph_index[:, None] == graph_index[None, :])[None]
  p = jax.nn.softmax(jnp.where(same, a * f, _MASKED), axis=-1)
  if rng is not None and dropout_rate > 0.0:
    seed = jax.random.bits(rng, (), jnp.uint32)
    keep = dropout_keep(seed, jnp.zeros((), jnp.uint32), p.shape, float(dropout_rate))
    p = jnp.where(keep, p * (1.0 / (1.0 - dropout_rate)), 0.0)
  out = jnp.einsum("hqk,khd->qhd", p.astype(v.dtype), v, preferred_element_type=acc_t)
  return out.astype(q.dtype)


class DistanceAttention(hk.Module):
  """Multi-head self-attention within each graph, scores modulated by distance."""

  def __init__(self, config: MolformerConfig, name: str | None = None):
    super().__init__(name=name)
    self.config = config

  def __call__(self, h: jax.Array, x: jax.Array, graph_index: jax.Array,
               is_training: bool, skip_graphs_from: jax.Array | None = None) -> jax.Array:
    """h [N, width], x [N, 3], graph_index [N] -> [N, width]; skip_graphs_from: as in
    `graph_attention` (the dense implementation computes everything)."""
    c = self.config
    heads, dk = c.num_heads, c.width // c.num_heads
    n = h.shape[0]
    proj = lambda name: precision.Linear(c.width, w_init=_xavier(), name=name)(h).reshape(n, heads, dk)
    q, k, v = proj("query"), proj("key"), proj("value")
    init = _xavier()
    # The paper's 1x1 convolutions Conv2d(1, H) and Conv2d(H, H) on the distance map.
    dist_params = {
        "w1": hk.get_parameter("distance_w1", (heads,), h.dtype,
                               init=hk.initializers.RandomUniform(-1.0, 1.0)),
        "b1": hk.get_parameter("distance_b1", (heads,), h.dtype, init=jnp.zeros),
        "w2": hk.get_parameter("distance_w2", (heads, heads), h.dtype, init=init),
        "b2": hk.get_parameter("distance_b2", (heads,), h.dtype, init=jnp.zeros),
    }
    rng = hk.next_rng_key() if is_training and c.dropout > 0 else None
    if c.attention_impl == "dense":
      out = dense_graph_attention(q, k, v, x, graph_index, dist_params, c.distance_scale,
                                  c.dropout, rng)
    else:
      out = graph_attention(q, k, v, x, graph_index, dist_params, c.distance_scale,
                            c.query_block, c.key_block, c.dropout, rng, skip_graphs_from)
    return precision.Linear(c.width, w_init=_xavier(), name="output")(out.reshape(n, c.width))


class Molformer(hk.Module):
  """Pre-norm encoder of `num_layers` distance-aware attention layers (hk.layer_stack)."""

  def __init__(self, config: MolformerConfig, name: str = "molformer"):
    super().__init__(name=name)
    self.config = config

  def __call__(self, graph: jraph.GraphsTuple, node_inputs: jax.Array, is_training: bool,
               padded: bool = False) -> jax.Array:
    """Args:
      graph: the batch (nodes "x" [N, 3]; n_node [G]).
      node_inputs: [N, F] invariant node inputs.
      is_training: enables dropout.
      padded: the batch's last graph with nodes is padding (`nets.make_model`): the padding
        graph's attention is skipped (its query blocks). Real nodes' outputs are the same.
    Returns:
      [N, width] invariant node features.
    """
    c = self.config
    dtype = node_inputs.dtype
    h = node_inputs
    if c.input_linear:
      h = precision.Linear(c.width, w_init=_xavier(), name="embedding_in")(h)
    x = graph.nodes["x"].astype(ops.acc_dtype(dtype))    # coordinates: float32 at least
    graph_index = ops.node_graph_index(graph)
    skip_from = ops.padding_graph_index(graph.n_node) if padded else None
    drop = lambda y: hk.dropout(hk.next_rng_key(), c.dropout, y) if (
        is_training and c.dropout > 0) else y
    norm = lambda name: hk.LayerNorm(-1, create_scale=True, create_offset=True, name=name)

    def layer(h):
      h = h + drop(DistanceAttention(c, name="attention")(norm("attention_norm")(h), x,
                                                          graph_index, is_training, skip_from))
      y = norm("ffn_norm")(h)
      y = drop(jax.nn.relu(precision.Linear(c.ffn_dim, w_init=_xavier(), name="ffn_0")(y)))
      return h + drop(precision.Linear(c.width, w_init=_xavier(), name="ffn_1")(y))

    h = stacking.stack_layers(c, layer, is_training)(h)
    return norm("final_norm")(h)
