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
(`key_block`); a scan over query blocks runs an online-softmax scan over key blocks (as in
flash attention) and skips, with `lax.cond`, every key block whose graph range does not
overlap the query block's. The work is then about sum_g (n_g + block)^2 instead of the N^2 of
masked attention over the whole batch, and memory is one block pair at a time (the inner
step is rematerialised in the backward pass). Entries of a processed block that belong to
another graph are masked before the softmax. Padding nodes form the padding graph, so they
never mix with real nodes.
"""
from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp
import jraph

from jaxgeo.nets import ops
from jaxgeo.nets.config import MolformerConfig

_MASKED = -1e9


def _xavier() -> hk.initializers.Initializer:
  return hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")


def distance_function(d: jax.Array, params: dict) -> jax.Array:
  """Per-head distance function: d [...] -> [H, ...] (ReLU MLP 1 -> H -> H)."""
  hidden = jax.nn.relu(d[..., None] * params["w1"] + params["b1"])          # [..., H]
  out = hidden @ params["w2"] + params["b2"]                                # [..., H]
  return jnp.moveaxis(out, -1, 0)


def _pad_rows(a: jax.Array, rows: int, value) -> jax.Array:
  extra = rows - a.shape[0]
  if extra == 0:
    return a
  pad = jnp.full((extra,) + a.shape[1:], value, a.dtype)
  return jnp.concatenate([a, pad], axis=0)


def graph_attention(q: jax.Array, k: jax.Array, v: jax.Array, x: jax.Array,
                    graph_index: jax.Array, dist_params: dict, distance_scale: float,
                    query_block: int, key_block: int, dropout_rate: float = 0.0,
                    rng: jax.Array | None = None) -> jax.Array:
  """Distance-modulated softmax attention within each graph (see the module docstring).

  Args:
    q, k, v: [N, H, dk] queries, keys, values.
    x: [N, 3] coordinates.
    graph_index: [N] non-decreasing graph of each node.
    dist_params: {"w1" [H], "b1" [H], "w2" [H, H], "b2" [H]} of `distance_function`.
    distance_scale: distances are multiplied by this first.
    query_block, key_block: block sizes.
    dropout_rate, rng: dropout on the attention probabilities (rng None: no dropout).
  Returns:
    [N, H, dk] attention outputs.
  """
  n, heads, dk = q.shape
  bq, bk = min(query_block, n), min(key_block, n)
  nq, nk = -(-n // bq), -(-n // bk)
  last_graph = graph_index[-1]
  # Extra query rows join the last graph (their outputs are dropped); extra key columns get
  # a graph index no query has.
  q_graph = _pad_rows(graph_index, nq * bq, 0)
  q_graph = jnp.where(jnp.arange(nq * bq) < n, q_graph, last_graph).reshape(nq, bq)
  k_graph = jnp.where(jnp.arange(nk * bk) < n, _pad_rows(graph_index, nk * bk, 0),
                      last_graph + 1).reshape(nk, bk)
  q_lo, q_hi = q_graph[:, 0], q_graph[:, -1]
  k_lo, k_hi = k_graph[:, 0], k_graph[:, -1]
  acc_t = ops.acc_dtype(q.dtype)
  qs = _pad_rows(q * (1.0 / math.sqrt(dk)), nq * bq, 0).reshape(nq, bq, heads, dk)
  xq = _pad_rows(x, nq * bq, 0).reshape(nq, bq, 3)
  ks = _pad_rows(k, nk * bk, 0).reshape(nk, bk, heads, dk)
  vs = _pad_rows(v, nk * bk, 0).reshape(nk, bk, heads, dk)
  xk = _pad_rows(x, nk * bk, 0).reshape(nk, bk, 3)
  use_dropout = rng is not None and dropout_rate > 0.0

  def key_step(carry, kj, qi):
    m, l, acc = carry

    def compute(carry):
      m, l, acc = carry
      qb, gq, xqb = qs[qi], q_graph[qi], xq[qi]
      kb, vb, gk, xkb = ks[kj], vs[kj], k_graph[kj], xk[kj]
      scores = jnp.einsum("qhd,khd->hqk", qb, kb).astype(acc_t)              # [H, bq, bk]
      d2 = jnp.sum(jnp.square(xqb[:, None, :] - xkb[None, :, :]), axis=-1)
      d = jnp.sqrt(d2 + 1e-12) * distance_scale                              # [bq, bk]
      scores = scores * distance_function(d.astype(acc_t), dist_params)
      same = (gq[:, None] == gk[None, :])[None]
      scores = jnp.where(same, scores, _MASKED)
      m_new = jnp.maximum(m, jnp.max(scores, axis=-1))                       # [H, bq]
      p = jnp.exp(scores - m_new[..., None])
      correction = jnp.exp(m - m_new)
      l_new = l * correction + jnp.sum(p, axis=-1)
      if use_dropout:
        key = jax.random.fold_in(rng, qi * nk + kj)
        keep = jax.random.bernoulli(key, 1.0 - dropout_rate, p.shape)
        p = jnp.where(keep, p / (1.0 - dropout_rate), 0.0)
      pv = jnp.einsum("hqk,khd->hqd", p.astype(vb.dtype), vb).astype(acc_t)
      acc_new = acc * correction[..., None] + pv
      return m_new, l_new, acc_new

    overlap = (q_lo[qi] <= k_hi[kj]) & (k_lo[kj] <= q_hi[qi])
    return jax.lax.cond(overlap, compute, lambda c: c, carry), None

  def query_step(_, qi):
    init = (jnp.full((heads, bq), 2 * _MASKED, acc_t), jnp.zeros((heads, bq), acc_t),
            jnp.zeros((heads, bq, dk), acc_t))
    step = jax.checkpoint(lambda c, kj: key_step(c, kj, qi))
    (m, l, acc), _ = jax.lax.scan(step, init, jnp.arange(nk))
    out = acc / jnp.maximum(l, 1e-30)[..., None]                              # [H, bq, dk]
    return None, jnp.swapaxes(out, 0, 1).astype(q.dtype)                     # [bq, H, dk]

  _, out = jax.lax.scan(query_step, None, jnp.arange(nq))
  return out.reshape(nq * bq, heads, dk)[:n]


class DistanceAttention(hk.Module):
  """Multi-head self-attention within each graph, scores modulated by distance."""

  def __init__(self, config: MolformerConfig, name: str | None = None):
    super().__init__(name=name)
    self.config = config

  def __call__(self, h: jax.Array, x: jax.Array, graph_index: jax.Array,
               is_training: bool) -> jax.Array:
    """h [N, width], x [N, 3], graph_index [N] -> [N, width]."""
    c = self.config
    heads, dk = c.num_heads, c.width // c.num_heads
    n = h.shape[0]
    proj = lambda name: hk.Linear(c.width, w_init=_xavier(), name=name)(h).reshape(n, heads, dk)
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
    out = graph_attention(q, k, v, x, graph_index, dist_params, c.distance_scale,
                          c.query_block, c.key_block, c.dropout, rng)
    return hk.Linear(c.width, w_init=_xavier(), name="output")(out.reshape(n, c.width))


class Molformer(hk.Module):
  """Pre-norm encoder of `num_layers` distance-aware attention layers (hk.layer_stack)."""

  def __init__(self, config: MolformerConfig, name: str = "molformer"):
    super().__init__(name=name)
    self.config = config

  def __call__(self, graph: jraph.GraphsTuple, node_inputs: jax.Array, is_training: bool
               ) -> jax.Array:
    """Args:
      graph: the batch (nodes "x" [N, 3]; n_node [G]).
      node_inputs: [N, F] invariant node inputs.
      is_training: enables dropout.
    Returns:
      [N, width] invariant node features.
    """
    c = self.config
    dtype = node_inputs.dtype
    h = node_inputs
    if c.input_linear:
      h = hk.Linear(c.width, w_init=_xavier(), name="embedding_in")(h)
    x = graph.nodes["x"].astype(dtype)
    graph_index = ops.node_graph_index(graph)
    drop = lambda y: hk.dropout(hk.next_rng_key(), c.dropout, y) if (
        is_training and c.dropout > 0) else y
    norm = lambda name: hk.LayerNorm(-1, create_scale=True, create_offset=True, name=name)

    def layer(h):
      h = h + drop(DistanceAttention(c, name="attention")(norm("attention_norm")(h), x,
                                                          graph_index, is_training))
      y = norm("ffn_norm")(h)
      y = drop(jax.nn.relu(hk.Linear(c.ffn_dim, w_init=_xavier(), name="ffn_0")(y)))
      return h + drop(hk.Linear(c.width, w_init=_xavier(), name="ffn_1")(y))

    h = hk.layer_stack(c.num_layers, name="layers")(layer)(h)
    return norm("final_norm")(h)
