"""Graph operations shared by the networks: node-to-graph index, aggregation, activations.

The networks never need padding masks: jraph's padding puts padding nodes and edges in a
padding graph of their own, so aggregating over incoming edges, pooling over each graph's
nodes and attending within each graph already keep real outputs independent of padding.
A batch known to be padded (`apply(..., padded=True)`, `num_real_nodes`) only lets a network
skip work that feeds the padding graph alone.
Aggregations accumulate in at least float32 (float64 stays float64).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import jraph


def acc_dtype(dtype) -> jnp.dtype:
  """The accumulation dtype for `dtype`: float32, or wider when `dtype` is wider."""
  return jnp.promote_types(dtype, jnp.float32)


def varying_like(x, ref: jax.Array):
  """`x` (a pytree) typed as varying over the `jax.shard_map` mesh axes that `ref` varies
  over; outside a shard_map (or when `ref` varies over none) `x` unchanged.

  Inside the trainer's data-parallel steps (`train.make_parallel_steps`) every array computed
  from the batch varies over the data axis, and a constant does not: a scan whose initial
  carry is a constant (zeros) but whose body returns batch-dependent values, or a cond with one
  constant branch, fails shard_map's type check. Networks build such constants with this
  (`ref`: any batch-derived array) so that they type-check on any mesh."""
  axes = jax.typeof(ref).manual_axis_type.varying

  def one(leaf):
    missing = tuple(sorted(axes - jax.typeof(leaf).manual_axis_type.varying))
    return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf
  return x if not axes else jax.tree_util.tree_map(one, x)


def num_nodes(graph: jraph.GraphsTuple) -> int:
  """Static node count N of a (padded) batch."""
  return int(graph.nodes["x"].shape[0])


def node_graph_index(graph: jraph.GraphsTuple) -> jax.Array:
  """[N] int32: the graph each node belongs to (padding nodes: the padding graph)."""
  n_graph = graph.n_node.shape[0]
  return jnp.repeat(jnp.arange(n_graph, dtype=jnp.int32), graph.n_node,
                    total_repeat_length=num_nodes(graph))


def num_real_nodes(n_node: jax.Array) -> jax.Array:
  """Nodes of the real graphs of a padded batch (int32 scalar, traceable): those of the graphs
  before the last graph with nodes, which `jraph.pad_with_graphs` makes the padding graph
  (any graphs after it are empty), as `batching.num_real_graphs` counts. Padding nodes are
  numbered from this count on, and padding edges point into them."""
  index = jnp.arange(n_node.shape[0])
  return jnp.sum(jnp.where(index < padding_graph_index(n_node), n_node, 0)).astype(jnp.int32)


def padding_graph_index(n_node: jax.Array) -> jax.Array:
  """The padding graph of a padded batch: the last graph with nodes (int32 scalar)."""
  index = jnp.arange(n_node.shape[0])
  return jnp.max(jnp.where(n_node > 0, index, -1)).astype(jnp.int32)


def segment_sum(data: jax.Array, segment_ids: jax.Array, num_segments: int,
                sorted_ids: bool = False) -> jax.Array:
  """Sum of `data` [E, ...] over `segment_ids` [E] -> [num_segments, ...], accumulated in
  at least float32 and returned in that dtype."""
  return jax.ops.segment_sum(data.astype(acc_dtype(data.dtype)), segment_ids, num_segments,
                             indices_are_sorted=sorted_ids)


def in_degree(receivers: jax.Array, n: int, dtype=jnp.float32) -> jax.Array:
  """[n] number of incoming edges of each node (receivers [E] sorted)."""
  ones = jnp.ones(receivers.shape, dtype)
  return jax.ops.segment_sum(ones, receivers, n, indices_are_sorted=True)


def mean_aggregate(messages: jax.Array, receivers: jax.Array, degree: jax.Array) -> jax.Array:
  """Mean of messages [E, ...] over incoming edges (receivers [E] sorted) -> [N, ...];
  nodes without edges get 0."""
  return mean_from_sum(segment_sum(messages, receivers, degree.shape[0], sorted_ids=True),
                       degree)


def mean_from_sum(total: jax.Array, degree: jax.Array) -> jax.Array:
  """Sums over incoming edges [N, ...] -> means (nodes without edges keep 0)."""
  scale = 1.0 / jnp.maximum(degree, 1.0).astype(total.dtype)
  return total * scale.reshape(scale.shape + (1,) * (total.ndim - 1))


def graph_mean(features: jax.Array, graph_index: jax.Array, n_node: jax.Array) -> jax.Array:
  """Mean over each graph's nodes: features [N, F] -> [G, F] (accumulated in f32+).

  Padding nodes belong to the padding graph only, so real graphs average real nodes.
  """
  total = segment_sum(features, graph_index, n_node.shape[0], sorted_ids=True)
  count = jnp.maximum(n_node, 1).astype(total.dtype)[:, None]
  return total / count


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  return {"silu": jax.nn.silu, "relu": jax.nn.relu, "gelu": jax.nn.gelu}[name]
