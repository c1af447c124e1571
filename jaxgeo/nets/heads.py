"""Output heads: per-node and per-graph (mean over each graph's real nodes) MLPs.

Both are the papers' `dense` block: Linear(hidden) -> ReLU -> Dropout -> Linear(out).
"""
from __future__ import annotations

import haiku as hk
import jax

from jaxgeo.nets import ops, precision


class MLPHead(hk.Module):
  """[..., F] -> [..., out_dim]."""

  def __init__(self, out_dim: int, hidden: int, dropout: float = 0.1,
               name: str | None = None):
    super().__init__(name=name)
    self.out_dim = out_dim
    self.hidden = hidden
    self.dropout = dropout

  def __call__(self, features: jax.Array, is_training: bool) -> jax.Array:
    y = jax.nn.relu(precision.Linear(self.hidden, name="dense_0")(features))
    if is_training and self.dropout > 0:
      y = hk.dropout(hk.next_rng_key(), self.dropout, y)
    return precision.Linear(self.out_dim, name="dense_1")(y)


def node_head(features: jax.Array, out_dim: int, hidden: int, dropout: float,
              is_training: bool) -> jax.Array:
  """Per-node outputs: features [N, F] -> [N, out_dim]."""
  return MLPHead(out_dim, hidden, dropout, name="node_head")(features, is_training)


def graph_head(features: jax.Array, graph_index: jax.Array, n_node: jax.Array, out_dim: int,
               hidden: int, dropout: float, is_training: bool) -> jax.Array:
  """Per-graph outputs: mean of features [N, F] over each graph's nodes -> [G, out_dim].

  Padding nodes belong to the padding graph, so each real graph averages its real nodes
  only (the padding graph's row is finite and must be masked by the loss).
  """
  pooled = ops.graph_mean(features, graph_index, n_node).astype(features.dtype)
  return MLPHead(out_dim, hidden, dropout, name="graph_head")(pooled, is_training)
