"""EGNN (Satorras, Hoogeboom & Welling, ICML 2021) in Haiku.

An E_GCL layer on edges j -> i (messages flow sender -> receiver):

  m_ij = phi_e([h_i, h_j, |x_i - x_j|^2, a_ij])              edge MLP, 2 layers, act after each
  x_i <- x_i + mean_j (x_i - x_j) / (|x_i - x_j| + eps) * phi_x(m_ij)     (optional)
  h_i <- h_i + phi_h([h_i, sum_j m_ij])                      node MLP, residual

(a_ij: the graph's edge scalars; the division by |x_i - x_j| is `normalize`, off in the
paper's code and in `paper_config`, on by default in `EGNNConfig`.) phi_x's last layer has no bias and a xavier-uniform
init of small gain (0.001), so the coordinate update starts near zero. Scalars (h) are
E(3)-invariant and the coordinates equivariant, under reflections too: EGNN sees only
distances.

Speed: the first layer of phi_e on [h_i, h_j, ...] is computed as h W_i and h W_j per node,
then gathered per edge (same parameters, far fewer multiply-adds: a residue graph has ~10x
more edges than nodes). On CPU a wide EGNN sums its messages over chunks of edges
(`EGNNConfig.edge_chunk`, `edge_chunks.sum_over_edges`: each chunk's [chunk, hidden]
activations stay in the caches, and padding-only chunks of a padded batch are skipped); with
`EGNNConfig.store_chunk_dots` its training passes keep each chunk's matmul outputs for the
backward pass instead of recomputing the chunk.
"""
from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp
import jraph

from jaxgeo.nets import edge_chunks, ops, precision, stacking
from jaxgeo.nets.config import EGNNConfig


def _small_gain_init(gain: float) -> hk.initializers.Initializer:
  """Xavier-uniform with gain `gain` (PyTorch's xavier_uniform_)."""
  return hk.initializers.VarianceScaling(scale=gain * gain, mode="fan_avg",
                                         distribution="uniform")


class EGCL(hk.Module):
  """One E(n)-equivariant graph convolutional layer (E_GCL)."""

  def __init__(self, config: EGNNConfig, edge_chunk: int = 0, remat: bool = False,
               update_coords: bool | None = None, store_dots: bool = False,
               name: str | None = None):
    """edge_chunk: edges per chunk of the message pass (0: all at once); `EGNN` passes
    `config.edge_chunk` on CPU. remat: recompute each chunk in the backward pass (with
    chunks; `EGNN` passes `config.remat` in training passes). update_coords: None for
    `config.update_coords`; False returns x unchanged without computing phi_x (its
    parameters, if the config has them, are then not read: `EGNN`'s last layer when nothing
    reads the coordinates). store_dots: keep each chunk's matmul outputs for the backward
    pass instead (`edge_chunks.sum_over_edges`; `EGNN` passes `config.store_chunk_dots` in
    training passes)."""
    super().__init__(name=name)
    self.config = config
    self.edge_chunk = edge_chunk
    self.remat = remat
    self.store_dots = store_dots
    self.update_coords = config.update_coords if update_coords is None else update_coords

  def __call__(self, h: jax.Array, x: jax.Array, edge_attr: jax.Array, senders: jax.Array,
               receivers: jax.Array, degree: jax.Array, first_padding: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array]:
    """Args:
      h: [N, hidden] node features; x: [N, 3] coordinates.
      edge_attr: [E, A] edge features; senders, receivers: [E] (sorted by receiver).
      degree: [N] in-degrees.
      first_padding: None, or the first padding node of a padded batch (int32 scalar): edge
        chunks (`EGNNConfig.edge_chunk`) of padding edges only are skipped.
    Returns:
      (h [N, hidden], x [N, 3]).
    """
    c = self.config
    act = ops.activation(c.activation)
    hidden = c.hidden
    n = h.shape[0]
    dtype = h.dtype

    # phi_e first layer on [h_i, h_j, radial, a_ij]: rows [h_i | h_j | radial | a_ij].
    width_in = 2 * hidden + 1 + edge_attr.shape[-1]
    w1 = hk.get_parameter("edge_mlp_0_w", (width_in, hidden), dtype,
                          init=hk.initializers.TruncatedNormal(1.0 / math.sqrt(width_in)))
    b1 = hk.get_parameter("edge_mlp_0_b", (hidden,), dtype, init=jnp.zeros)
    node_part = precision.dense(h, jnp.concatenate([w1[:hidden], w1[hidden:2 * hidden]],
                                                   axis=1))                   # [N, 2H]
    edge_mlp_1 = precision.Linear(hidden, name="edge_mlp_1")
    attention = precision.Linear(1, name="attention") if c.attention else None
    coord_mlp = CoordMLP(c, name="coord_mlp") if self.update_coords else None

    def terms(edge_attr, senders, receivers):
      """Per edge: m_ij [E', H] and, with coordinate updates, (x_i - x_j) phi_x(m_ij) [E', 3]."""
      diff = jnp.take(x, receivers, axis=0) - jnp.take(x, senders, axis=0)    # x_i - x_j [E', 3]
      radial = jnp.sum(jnp.square(diff), axis=-1, keepdims=True)              # [E', 1]
      m = (precision.gather(node_part[:, :hidden], receivers) +
           precision.gather(node_part[:, hidden:], senders) +
           radial.astype(dtype) * w1[2 * hidden] +
           precision.dense(edge_attr, w1[2 * hidden + 1:]) + b1)
      m = act(m)
      m = act(edge_mlp_1(m))                                                  # m_ij [E', H]
      if attention is not None:
        m = m * jax.nn.sigmoid(attention(m))
      if coord_mlp is None:
        return m, None
      p = coord_mlp(dtype)
      phi = precision.dense(act(precision.dense(m, p["w0"]) + p["b0"]), p["w1"])   # [E', 1]
      if c.normalize:
        diff = diff / (jnp.sqrt(radial + 1e-8) + 1e-6)
      return m, diff * phi

    acc = ops.acc_dtype(dtype)
    zeros = (jnp.zeros((n, hidden), acc),
             jnp.zeros((n, 3), ops.acc_dtype(x.dtype)) if coord_mlp else None)
    agg, coord_sum = edge_chunks.sum_over_edges(
        terms, (edge_attr,), senders, receivers, zeros, self.edge_chunk, self.remat,
        first_padding, self.store_dots)
    if coord_mlp is not None:
      x = x + ops.mean_from_sum(coord_sum, degree).astype(x.dtype)
    agg = agg.astype(dtype)                                                   # [N, H]
    out = act(precision.Linear(hidden, name="node_mlp_0")(jnp.concatenate([h, agg], axis=-1)))
    h = h + precision.Linear(hidden, name="node_mlp_1")(out)
    return h, x


class CoordMLP(hk.Module):
  """Parameters of phi_x: Linear(hidden) -> act -> Linear(1, no bias, small-gain init)."""

  def __init__(self, config: EGNNConfig, name: str | None = None):
    super().__init__(name=name)
    self.config = config

  def __call__(self, dtype) -> dict[str, jax.Array]:
    hidden = self.config.hidden
    return {
        "w0": hk.get_parameter("w0", (hidden, hidden), dtype,
                               init=hk.initializers.TruncatedNormal(1.0 / math.sqrt(hidden))),
        "b0": hk.get_parameter("b0", (hidden,), dtype, init=jnp.zeros),
        "w1": hk.get_parameter("w1", (hidden, 1), dtype,
                               init=_small_gain_init(self.config.coord_gain)),
    }


class EGNN(hk.Module):
  """`num_layers` E_GCL layers (stacked with `hk.layer_stack`) after an optional input
  linear layer."""

  def __init__(self, config: EGNNConfig, name: str = "egnn"):
    super().__init__(name=name)
    self.config = config

  def __call__(self, graph: jraph.GraphsTuple, node_inputs: jax.Array, is_training: bool,
               padded: bool = False) -> tuple[jax.Array, jax.Array]:
    """Args:
      graph: the batch (nodes "x" [N, 3]; edges "s" [E, A]; senders/receivers sorted by
        receiver).
      node_inputs: [N, F] invariant node inputs.
      is_training: a training pass (the layer scan unrolls `unroll` layers, else
        `eval_unroll`; `remat` applies to training passes only; EGNN has no dropout).
      padded: the batch's last graph with nodes is padding (`nets.make_model`): edge chunks
        of padding edges only are skipped. Real nodes' outputs are the same either way.
    Returns:
      (h [N, hidden] invariant features, x [N, 3] updated coordinates). With
      `return_coords=False` (the papers' networks) nothing reads the last layer's
      coordinate update, so the last layer runs outside the layer scan without it
      (`stacking.stack_layers(last_layer=...)`; same parameters) and x is the coordinates
      after the layer before it. Inside the scan body it was computed all the same, and
      skipping it there with a `lax.cond` made the training step slower, not faster (its
      backward pass materialises zero cotangents for the skipped branch's edge-sized
      operands).
    """
    c = self.config
    dtype = node_inputs.dtype
    h = node_inputs
    if c.input_linear:
      h = precision.Linear(c.hidden, name="embedding_in")(h)
    x = graph.nodes["x"].astype(ops.acc_dtype(dtype))    # coordinates: float32 at least
    edge_attr = graph.edges["s"].astype(dtype)
    senders, receivers = graph.senders, graph.receivers
    degree = ops.in_degree(receivers, h.shape[0], ops.acc_dtype(dtype))
    chunks = edge_chunks.plan(c.edge_chunk, senders.shape[0], graph.n_node, padded)
    remat = stacking.remat(c, is_training)
    store = c.store_chunk_dots and is_training and chunks.chunked

    def layer(h, x, update_coords=None):
      return EGCL(c, chunks.edge_chunk, remat, update_coords, store, name="gcl")(
          h, x, edge_attr, senders, receivers, degree, chunks.first_padding)

    last = None
    if c.update_coords and not c.return_coords:
      last = lambda h, x: layer(h, x, update_coords=False)
    return stacking.stack_layers(c, layer, is_training, remat_each_layer=not chunks.chunked,
                                 last_layer=last)(h, x)
