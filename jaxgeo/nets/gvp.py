"""GVP-GNN (Jing et al., ICLR 2021; vector gating of Jing et al. 2021) in Haiku.

Features are (scalar, vector) tuples: scalars `s [..., S]` and vectors `v [..., 3, V]`. The
vectors are stored channels-last ([..., 3, V], unlike the PyTorch code's [..., V, 3]) so that
every vector linear map is one plain matmul over the last axis.

Every operation on vectors is a linear combination of vector channels, a channel norm or a
scaling by invariant scalars, so each layer is O(3)-equivariant (rotations *and*
reflections); what makes a GVP-GNN on proteins chiral is its input features: the sines of the
backbone dihedrals change sign in a mirror image (and a virtual CB recomputed from a mirrored
backbone lands on the other side), see tests/test_nets_equivariance.py.

Speed: the first GVP of a message acts on the concatenation [(s_j, v_j), (e_s, e_v), (s_i,
v_i)]; its linear maps are split into the node parts, computed once per node and gathered per
edge, and the edge part, which is the same function with the same parameters (see
`GVP.on_edges`) for about half the multiply-adds. The last message GVP has no activation,
so its scalar matmul is applied to the per-node mean instead of each edge
(`GVP.mean_over_edges`). On CPU the messages are computed over chunks of edges
(`GVPConfig.edge_chunk`, smaller in evaluation passes: `eval_edge_chunk`; `GVPConv`), so each
chunk's per-edge work stays in the caches.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import jraph

from jaxgeo.nets import edge_chunks, ops, precision, stacking
from jaxgeo.nets.config import GVPConfig

Activation = Optional[Callable[[jax.Array], jax.Array]]
# Scalar ReLU, no vector activation (the gate is sigmoid(W s)): the GGNN-meets-PLM settings.
DEFAULT_ACTIVATIONS: tuple[Activation, Activation] = (jax.nn.relu, None)
_EPS = 1e-8


def norm_no_nan(v: jax.Array, axis: int = -2, keepdims: bool = False, eps: float = _EPS,
                sqrt: bool = True) -> jax.Array:
  """L2 norm over the xyz axis of [..., 3, V], clamped below by `eps` (finite gradients)."""
  out = jnp.maximum(jnp.sum(jnp.square(v), axis=axis, keepdims=keepdims), eps)
  return jnp.sqrt(out) if sqrt else out


def _weight(name: str, shape: tuple[int, int], dtype) -> jax.Array:
  """A [fan_in, fan_out] weight, uniform in +-1/sqrt(fan_in) (PyTorch's nn.Linear scale)."""
  bound = 1.0 / math.sqrt(max(shape[0], 1))
  init = hk.initializers.RandomUniform(-bound, bound)
  return hk.get_parameter(name, shape, dtype=dtype, init=init)


def _bias(name: str, size: int, dtype) -> jax.Array:
  return hk.get_parameter(name, (size,), dtype=dtype, init=jnp.zeros)


def _channel_map(v: jax.Array, w: jax.Array) -> jax.Array:
  """Linear map of vector channels: v [..., 3, c] @ w [c, d] -> [..., 3, d].

  A single input channel is a broadcast product, whose weight gradient is a plain
  reduction (XLA CPU otherwise transposes the whole [E, 3, d] gradient for a 1 x d matmul).
  """
  if w.shape[0] == 1:
    return v * w[0]
  return precision.dense(v, w)


class GVP(hk.Module):
  """Geometric vector perceptron: (s [..., si], v [..., 3, vi]) -> (s [..., so], v [..., 3, vo]).

  vh = v Wh; s' = act_s(Ws [s, |vh|] + b); v' = (vh Wv) * sigmoid(Wsv act_v(s') + bsv) with
  vector gating, else (vh Wv) * act_v(|vh Wv|). With vi = 0 the vector output is 0; with
  vo = 0 only s' is returned (v is None).

  Parameters: wh [vi, h], ws [si + h, so], bs [so], wv [h, vo], wsv [so, vo], bsv [vo] where
  h = h_dim or max(vi, vo).
  """

  def __init__(self, out_dims: tuple[int, int], h_dim: int | None = None,
               activations: tuple[Activation, Activation] = DEFAULT_ACTIVATIONS,
               vector_gate: bool = True, name: str | None = None):
    super().__init__(name=name)
    self.so, self.vo = out_dims
    self.h_dim = h_dim
    self.scalar_act, self.vector_act = activations
    self.vector_gate = vector_gate

  def _hidden(self, vi: int) -> int:
    return self.h_dim or max(vi, self.vo)

  def _scalar_weights(self, si: int, vi: int, dtype) -> tuple[jax.Array, jax.Array]:
    width = si + (self._hidden(vi) if vi else 0)
    return _weight("ws", (width, self.so), dtype), _bias("bs", self.so, dtype)

  def _finish(self, s: jax.Array, vh: jax.Array | None, lead: tuple[int, ...], dtype
              ) -> tuple[jax.Array, jax.Array | None]:
    """From the pre-activation scalars [..., so] and hidden vectors [..., 3, h]."""
    v = None
    if self.vo:
      if vh is None:
        v = ops.varying_like(jnp.zeros(lead + (3, self.vo), dtype), s)
      else:
        v = precision.dense(vh, _weight("wv", (vh.shape[-1], self.vo), dtype))
        if self.vector_gate:
          gate_in = self.vector_act(s) if self.vector_act else s
          gate = (precision.dense(gate_in, _weight("wsv", (self.so, self.vo), dtype)) +
                  _bias("bsv", self.vo, dtype))
          v = v * jax.nn.sigmoid(gate)[..., None, :]
        elif self.vector_act:
          v = v * self.vector_act(norm_no_nan(v, keepdims=True))
    if self.scalar_act:
      s = self.scalar_act(s)
    return s, v

  def __call__(self, s: jax.Array, v: jax.Array | None
               ) -> tuple[jax.Array, jax.Array | None]:
    """Args: s [..., si]; v [..., 3, vi] or None. Returns (s [..., so], v [..., 3, vo] or None)."""
    si = s.shape[-1]
    vi = 0 if v is None else v.shape[-1]
    ws, bs = self._scalar_weights(si, vi, s.dtype)
    vh = None
    if vi:
      vh = _channel_map(v, _weight("wh", (vi, self._hidden(vi)), s.dtype))
      s = jnp.concatenate([s, norm_no_nan(vh)], axis=-1)
    return self._finish(precision.dense(s, ws) + bs, vh, s.shape[:-1], s.dtype)

  def _edge_weights(self, ns: int, nv: int, es: int, ev: int, dtype
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ws, bs, wh) of this GVP on [(s_j, v_j), (e_s, e_v), (s_i, v_i)] (as `__call__`)."""
    vi = 2 * nv + ev
    ws, bs = self._scalar_weights(2 * ns + es, vi, dtype)
    return ws, bs, _weight("wh", (vi, self._hidden(vi)), dtype)

  def node_terms(self, node_s: jax.Array, node_v: jax.Array, es: int, ev: int
                 ) -> tuple[jax.Array, jax.Array]:
    """The node parts of `on_edges` (for edges with es scalar and ev vector channels):
    (from_sender, from_receiver), each [N, so + 3h], to gather per edge."""
    n, ns = node_s.shape
    nv = node_v.shape[-1]
    ws, _, wh = self._edge_weights(ns, nv, es, ev, node_s.dtype)
    h = wh.shape[-1]
    # Rows of ws: [s_j | e_s | s_i | |vh|]; rows of wh: [v_j | e_v | v_i].
    node_w = jnp.concatenate([ws[:ns], ws[ns + es:2 * ns + es]], axis=1)    # [ns, 2 so]
    node_part = precision.dense(node_s, node_w)                             # [N, 2 so]
    vec_w = jnp.concatenate([wh[:nv], wh[nv + ev:]], axis=1)                # [nv, 2 h]
    vec_part = precision.dense(node_v, vec_w)                               # [N, 3, 2 h]
    so = self.so
    from_sender = jnp.concatenate(
        [node_part[:, :so], vec_part[..., :h].reshape(n, 3 * h)], axis=-1)
    from_receiver = jnp.concatenate(
        [node_part[:, so:], vec_part[..., h:].reshape(n, 3 * h)], axis=-1)
    return from_sender, from_receiver

  def edge_terms(self, node_terms: tuple[jax.Array, jax.Array], ns: int, nv: int,
                 edge_s: jax.Array, edge_v: jax.Array | None, senders: jax.Array,
                 receivers: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """`on_edges` for some edges, from the `node_terms` of nodes with ns scalar and nv
    vector channels. Returns (s [E, so], v [E, 3, vo] or None)."""
    es = edge_s.shape[-1]
    ev = 0 if edge_v is None else edge_v.shape[-1]
    dtype = edge_s.dtype
    ws, bs, wh = self._edge_weights(ns, nv, es, ev, dtype)
    h, so = wh.shape[-1], self.so
    from_sender, from_receiver = node_terms
    gathered = (precision.gather(from_sender, senders) +
                precision.gather(from_receiver, receivers))                 # [E, so + 3h]
    e = senders.shape[0]
    vh = gathered[:, so:].reshape(e, 3, h)
    if ev:
      vh = vh + _channel_map(edge_v, wh[nv:nv + ev])
    s = (gathered[:, :so] + precision.dense(edge_s, ws[ns:ns + es]) +
         precision.dense(norm_no_nan(vh), ws[2 * ns + es:]) + bs)
    return self._finish(s, vh, (e,), dtype)

  def on_edges(self, node_s: jax.Array, node_v: jax.Array, edge_s: jax.Array,
               edge_v: jax.Array | None, senders: jax.Array, receivers: jax.Array
               ) -> tuple[jax.Array, jax.Array | None]:
    """This GVP applied to the messages [(s_j, v_j), (e_s, e_v), (s_i, v_i)] of all edges
    j -> i, without forming them (same parameters and result as `__call__` on the
    concatenation).

    Args:
      node_s [N, ns], node_v [N, 3, nv], edge_s [E, es], edge_v [E, 3, ev] or None,
      senders, receivers [E].
    Returns:
      (s [E, so], v [E, 3, vo] or None).
    """
    ev = 0 if edge_v is None else edge_v.shape[-1]
    terms = self.node_terms(node_s, node_v, edge_s.shape[-1], ev)
    return self.edge_terms(terms, node_s.shape[-1], node_v.shape[-1], edge_s, edge_v,
                           senders, receivers)

  def _check_linear(self):
    if self.scalar_act is not None or self.vector_act is not None:
      raise ValueError("mean_over_edges needs a GVP without activations")

  def mean_width(self, si: int, vi: int) -> int:
    """Width of `mean_terms` for inputs of si scalar and vi vector channels."""
    return si + self._hidden(vi) + 3 * self.vo

  def mean_terms(self, s: jax.Array, v: jax.Array) -> jax.Array:
    """Per edge, what `mean_over_edges` averages: [s, |vh|, gated vectors] [E, mean_width]."""
    self._check_linear()
    num_edges, si = s.shape
    vi = v.shape[-1]
    dtype = s.dtype
    ws, bs = self._scalar_weights(si, vi, dtype)        # parameters in `__call__`'s order
    vh = _channel_map(v, _weight("wh", (vi, self._hidden(vi)), dtype))
    x = jnp.concatenate([s, norm_no_nan(vh)], axis=-1)                       # [E, si + h]
    if not self.vo:
      return x
    out_v = precision.dense(vh, _weight("wv", (vh.shape[-1], self.vo), dtype))   # [E, 3, vo]
    if self.vector_gate:
      wsv, bsv = _weight("wsv", (self.so, self.vo), dtype), _bias("bsv", self.vo, dtype)
      gate = precision.dense(x, precision.dense(ws, wsv)) + (precision.dense(bs, wsv) + bsv)
      out_v = out_v * jax.nn.sigmoid(gate)[..., None, :]
    return jnp.concatenate([x, out_v.reshape(num_edges, 3 * self.vo)], axis=-1)

  def from_mean(self, mean: jax.Array, degree: jax.Array, si: int, vi: int
                ) -> tuple[jax.Array, jax.Array | None]:
    """`mean_over_edges` from the per-node mean of `mean_terms` [N, mean_width] and the
    in-degrees [N] (inputs of si scalar and vi vector channels)."""
    self._check_linear()
    dtype = mean.dtype
    ws, bs = self._scalar_weights(si, vi, dtype)
    width = ws.shape[0]
    has_edges = (degree > 0).astype(dtype)[:, None]
    s_out = precision.dense(mean[:, :width], ws) + bs * has_edges
    v_out = mean[:, width:].reshape(-1, 3, self.vo) if self.vo else None
    return s_out, v_out

  def mean_over_edges(self, s: jax.Array, v: jax.Array, receivers: jax.Array,
                      degree: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """The mean over each node's incoming edges of this GVP on edge features, for a GVP
    without activations (the last GVP of a message): same parameters and result as
    `ops.mean_aggregate` of `__call__(s, v)`, in fewer per-edge operations.

    Without a scalar activation s' = [s, |vh|] Ws + b is linear, so its mean is
    mean([s, |vh|]) Ws + b: the [si + h, so] matmul runs on nodes instead of edges, and per
    edge only the vector gate is computed, as [s, |vh|] (Ws Wsv) + (b Wsv + bsv) (a [si + h, vo]
    matmul). Nodes without incoming edges get 0, as from `ops.mean_aggregate`.

    Args:
      s [E, si], v [E, 3, vi] (vi > 0) edge features; receivers [E] sorted; degree [N].
    Returns:
      (s [N, so], v [N, 3, vo] or None).
    """
    mean = ops.mean_aggregate(self.mean_terms(s, v), receivers, degree).astype(s.dtype)
    return self.from_mean(mean, degree, s.shape[-1], v.shape[-1])


class TupleLayerNorm(hk.Module):
  """LayerNorm of scalars; vectors divided by the root-mean-square of their channel norms."""

  def __call__(self, s: jax.Array, v: jax.Array | None
               ) -> tuple[jax.Array, jax.Array | None]:
    s = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name="scalar")(s)
    if v is None:
      return s, None
    vn = norm_no_nan(v, keepdims=True, sqrt=False)                 # [..., 1, V]
    vn = jnp.sqrt(jnp.mean(vn, axis=-1, keepdims=True))             # [..., 1, 1]
    return s, v / vn


def tuple_dropout(s: jax.Array, v: jax.Array | None, rate: float, is_training: bool
                  ) -> tuple[jax.Array, jax.Array | None]:
  """Dropout of scalars elementwise and of vectors by whole channel (all three components
  together), each scaled by 1 / (1 - rate). Identity when not training."""
  if not is_training or rate == 0.0:
    return s, v
  s = hk.dropout(hk.next_rng_key(), rate, s)
  if v is not None:
    keep = jax.random.bernoulli(hk.next_rng_key(), 1.0 - rate,
                                v.shape[:-2] + (1, v.shape[-1]))
    v = jnp.where(keep, v / (1.0 - rate), 0.0)
  return s, v


class GVPConv(hk.Module):
  """Message passing: messages from `n_message` GVPs on [(s_j, v_j), e_ji, (s_i, v_i)],
  averaged over the incoming edges of each node.

  Edges go through the message GVPs in chunks of at most `edge_chunk` (0: all at once;
  `edge_chunks.sum_over_edges`), so the per-edge intermediates of a chunk stay in the CPU's
  caches; with `remat` each chunk is recomputed in the backward pass instead of storing its
  activations (with `chunk_vjp` by the custom VJP of `edge_chunks.stored_chunk_sums`). The
  same function either way: only the order of the additions in each node's sum changes.
  """

  def __init__(self, out_dims: tuple[int, int], n_message: int = 3,
               activations: tuple[Activation, Activation] = DEFAULT_ACTIVATIONS,
               vector_gate: bool = True, edge_chunk: int = 0, remat: bool = False,
               chunk_vjp: bool = False, name: str | None = None):
    super().__init__(name=name)
    self.out_dims = out_dims
    self.n_message = n_message
    self.activations = activations
    self.vector_gate = vector_gate
    self.edge_chunk = edge_chunk
    self.remat = remat
    self.chunk_vjp = chunk_vjp

  def __call__(self, s, v, edge_s, edge_v, senders, receivers, degree, first_padding=None):
    """Args: s [N, ns], v [N, 3, nv], edge_s [E, es], edge_v [E, 3, ev] or None, senders,
    receivers [E] (sorted by receiver), degree [N] in-degrees; first_padding: None, or the
    first padding node (int32 scalar, `ops.num_real_nodes`) of a padded batch: with chunks,
    a chunk whose edges all point at or beyond it is skipped (its messages reach padding
    nodes only).
    Returns: (s [N, so], v [N, 3, vo]) mean incoming messages."""
    last = self.n_message - 1
    gvps = [GVP(self.out_dims, activations=(None, None) if i == last else self.activations,
                vector_gate=self.vector_gate, name=f"message_{i}")
            for i in range(self.n_message)]
    (n, ns), nv = s.shape, v.shape[-1]
    so, vo = self.out_dims
    ev = 0 if edge_v is None else edge_v.shape[-1]
    node_terms = gvps[0].node_terms(s, v, edge_s.shape[-1], ev)

    def messages(edge_s, edge_v, senders, receivers):
      """Per edge, what is averaged: [E', width]."""
      ms, mv = gvps[0].edge_terms(node_terms, ns, nv, edge_s, edge_v, senders, receivers)
      for gvp in gvps[1:last]:
        ms, mv = gvp(ms, mv)
      if last > 0:
        return gvps[last].mean_terms(ms, mv)
      return jnp.concatenate([ms, mv.reshape(ms.shape[0], 3 * vo)], axis=-1)

    def finish(mean):
      if last > 0:
        return gvps[last].from_mean(mean.astype(s.dtype), degree, so, vo)
      mean = mean.astype(s.dtype)
      return mean[:, :so], mean[:, so:].reshape(n, 3, vo)

    width = gvps[last].mean_width(so, vo) if last > 0 else so + 3 * vo
    zeros = jnp.zeros((n, width), ops.acc_dtype(s.dtype))
    total = edge_chunks.sum_over_edges(messages, (edge_s, edge_v), senders, receivers, zeros,
                                       self.edge_chunk, self.remat, first_padding,
                                       recompute_vjp=self.chunk_vjp)
    return finish(ops.mean_from_sum(total, degree))


class GVPConvLayer(hk.Module):
  """GVPConv + residual + LayerNorm, then a GVP feed-forward + residual + LayerNorm."""

  def __init__(self, node_dims: tuple[int, int], n_message: int = 3, n_feedforward: int = 2,
               dropout: float = 0.1,
               activations: tuple[Activation, Activation] = DEFAULT_ACTIVATIONS,
               vector_gate: bool = True, edge_chunk: int = 0, remat: bool = False,
               chunk_vjp: bool = False, name: str | None = None):
    super().__init__(name=name)
    self.node_dims = node_dims
    self.n_message = n_message
    self.n_feedforward = n_feedforward
    self.dropout = dropout
    self.activations = activations
    self.vector_gate = vector_gate
    self.edge_chunk = edge_chunk
    self.remat = remat
    self.chunk_vjp = chunk_vjp

  def __call__(self, s, v, edge_s, edge_v, senders, receivers, degree, is_training: bool,
               first_padding=None):
    """Args as `GVPConv`; returns updated (s [N, ns], v [N, 3, nv])."""
    ds, dv = GVPConv(self.node_dims, self.n_message, self.activations, self.vector_gate,
                     self.edge_chunk, self.remat, self.chunk_vjp, name="conv")(
                         s, v, edge_s, edge_v, senders, receivers, degree, first_padding)
    ds, dv = tuple_dropout(ds, dv, self.dropout, is_training)
    s, v = TupleLayerNorm(name="norm_0")(s + ds, v + dv)

    ns, nv = self.node_dims
    hidden = (4 * ns, 2 * nv)
    fs, fv = s, v
    for i in range(self.n_feedforward):
      last = i == self.n_feedforward - 1
      fs, fv = GVP(self.node_dims if last else hidden,
                   activations=(None, None) if last else self.activations,
                   vector_gate=self.vector_gate, name=f"ff_{i}")(fs, fv)
    fs, fv = tuple_dropout(fs, fv, self.dropout, is_training)
    return TupleLayerNorm(name="norm_1")(s + fs, v + fv)


class GVPGNN(hk.Module):
  """The GVP-GNN encoder: input GVPs on nodes and edges, `num_layers` GVPConvLayers
  (stacked with `hk.layer_stack`), and an output GVP to scalars."""

  def __init__(self, config: GVPConfig, name: str = "gvp_gnn"):
    super().__init__(name=name)
    self.config = config

  def __call__(self, graph: jraph.GraphsTuple, node_inputs: jax.Array,
               node_vectors: jax.Array | None, is_training: bool,
               padded: bool = False) -> jax.Array:
    """Args:
      graph: the batch (edges "s" [E, es], "v" [E, ev, 3], senders/receivers sorted by
        receiver).
      node_inputs: [N, F] invariant node inputs (fusion output, maybe ++ node scalars).
      node_vectors: [N, V, 3] node vectors (graph layout) or None.
      is_training: enables dropout.
      padded: the batch's last graph with nodes is padding (`nets.make_model`): edge chunks
        of padding edges only are skipped. Real nodes' outputs are the same either way.
    Returns:
      [N, node_dims[0]] invariant node embeddings.
    """
    c = self.config
    dtype = node_inputs.dtype
    to_channels_last = lambda x: None if x is None or x.shape[-2] == 0 else jnp.swapaxes(
        x.astype(dtype), -1, -2)
    none = (None, None)
    s, v = TupleLayerNorm(name="node_in_norm")(node_inputs, to_channels_last(node_vectors))
    s, v = GVP(c.node_dims, activations=none, vector_gate=c.vector_gate, name="node_in")(s, v)
    es, ev = TupleLayerNorm(name="edge_in_norm")(graph.edges["s"].astype(dtype),
                                                 to_channels_last(graph.edges.get("v")))
    es, ev = GVP(c.edge_dims, activations=none, vector_gate=c.vector_gate, name="edge_in")(
        es, ev)
    senders, receivers = graph.senders, graph.receivers
    degree = ops.in_degree(receivers, s.shape[0], ops.acc_dtype(dtype))

    chunks = edge_chunks.plan(c.edge_chunk if is_training else c.eval_edge_chunk,
                              senders.shape[0], graph.n_node, padded)

    def layer(s, v):
      return GVPConvLayer(c.node_dims, c.n_message, c.n_feedforward, c.dropout,
                          vector_gate=c.vector_gate, edge_chunk=chunks.edge_chunk,
                          remat=stacking.remat(c, is_training), chunk_vjp=c.chunk_vjp,
                          name="conv_layer")(
                              s, v, es, ev, senders, receivers, degree, is_training,
                              chunks.first_padding)

    s, v = stacking.stack_layers(c, layer, is_training, remat_each_layer=not chunks.chunked)(
        s, v)
    s, v = TupleLayerNorm(name="out_norm")(s, v)
    s, _ = GVP((c.node_dims[0], 0), activations=DEFAULT_ACTIVATIONS, vector_gate=c.vector_gate,
               name="node_out")(s, v)
    return s
