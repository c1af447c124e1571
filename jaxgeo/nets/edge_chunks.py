"""Sums over incoming edges computed chunk by chunk (CPU cache blocking), in Haiku.

A message pass sums per-edge terms into their receivers. Over all edges at once, every
per-edge intermediate ([E, width]) streams through memory; over chunks of edges (a scan that
adds each chunk's terms into the node sums) a chunk's intermediates stay in the CPU's caches,
and with `remat` each chunk is recomputed in the backward pass instead of storing its
activations. The same function either way: only the order of the additions in each node's
sum changes. On a padded batch (`nets.make_model`'s `padded=True`) a chunk whose edges all
point into the padding graph is skipped: its terms reach padding nodes only.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from jaxgeo.nets import ops

Terms = Callable[..., Any]   # (*edge_arrays, senders, receivers) -> pytree of [E', ...] arrays


def num_chunks(num_edges: int, edge_chunk: int) -> int:
  """Chunks of at most `edge_chunk` edges (0: one chunk) that `num_edges` edges form."""
  return 1 if edge_chunk <= 0 else max(1, -(-num_edges // edge_chunk))


class Plan(NamedTuple):
  """How a network passes messages over one batch (`plan`)."""
  edge_chunk: int                     # edges per chunk here (0: all at once)
  chunked: bool                       # more than one chunk: remat each chunk, not each layer
  first_padding: jax.Array | None     # `sum_over_edges`' first_padding


def plan(edge_chunk: int, num_edges: int, n_node: jax.Array, padded: bool) -> Plan:
  """The chunking of a message pass over `num_edges` edges: `edge_chunk` on CPU only (cache
  blocking; accelerators want all edges in one kernel); with chunks, the first padding node
  of a padded batch (`nets.make_model`'s `padded`; `n_node` [G]) so that chunks of padding
  edges only are skipped (fixed-count batches carry ~30% padding edges on DB5.5; packed ones
  less than a chunk). With chunks, a network's `remat` recomputes each chunk (the per-edge
  activations, which are what costs memory) instead of each layer, so the messages are
  computed twice, not 3x."""
  edge_chunk = edge_chunk if jax.default_backend() == "cpu" else 0
  chunked = num_chunks(num_edges, edge_chunk) > 1
  first_padding = ops.num_real_nodes(n_node) if padded and chunked else None
  return Plan(edge_chunk, chunked, first_padding)


def sum_over_edges(terms: Terms, edge_arrays: tuple, senders: jax.Array, receivers: jax.Array,
                   zeros: Any, edge_chunk: int = 0, remat: bool = False,
                   first_padding: jax.Array | None = None) -> Any:
  """Sum of `terms` over each node's incoming edges, in chunks of at most `edge_chunk` edges.

  Args:
    terms: per-edge terms of some edges: terms(*edge_arrays[chunk], senders[chunk],
      receivers[chunk]) -> a pytree of [E', ...] arrays. The receivers it is given are valid
      node indices (the chunks' own padding edges point at the last node and are dropped
      from the sums); it may create Haiku parameters (the first chunk creates them at init).
    edge_arrays: [E, ...] arrays (or None) split with the edges.
    senders, receivers: [E] int32, sorted by receiver.
    zeros: the sums before any edge, a pytree of `terms`' structure with [N, ...] zeros in
      the accumulation dtype (at least float32).
    edge_chunk: edges per chunk (0: all at once).
    remat: recompute each chunk in the backward pass (with more than one chunk).
    first_padding: None, or the first padding node of a padded batch (int32 scalar,
      `ops.num_real_nodes`): chunks whose first receiver is at or beyond it are skipped.
  Returns:
    the pytree of `terms`' structure with [N, ...] sums, accumulated in at least float32.
  """
  num_nodes = jax.tree_util.tree_leaves(zeros)[0].shape[0]
  zeros = ops.varying_like(zeros, receivers)   # a data-parallel scan's carry
  num_edges = senders.shape[0]
  chunks = num_chunks(num_edges, edge_chunk)
  node_sum = lambda t, r: ops.segment_sum(t, r, num_nodes, sorted_ids=True)
  if chunks == 1:
    out = terms(*edge_arrays, senders, receivers)
    return jax.tree_util.tree_map(lambda z, t: z + node_sum(t, receivers), zeros, out)
  size = -(-num_edges // chunks)
  pad = chunks * size - num_edges

  def split(x, fill):  # [E, ...] -> [chunks, size, ...]; padding edges are summed into
    if x is None:      # node N, which segment_sum drops (and gathered from node N - 1)
      return None
    if pad:
      x = jnp.concatenate([x, jnp.full((pad,) + x.shape[1:], fill, x.dtype)])
    return x.reshape((chunks, size) + x.shape[1:])

  def add_chunk(total, chunk):
    *arrays, senders, receivers = chunk
    out = terms(*arrays, senders, jnp.minimum(receivers, num_nodes - 1))
    return jax.tree_util.tree_map(lambda s, t: s + node_sum(t, receivers), total, out)

  def step(total, chunk):
    if first_padding is None or hk.running_init():
      return add_chunk(total, chunk), None
    receivers = chunk[-1]                # sorted: the chunk's first edge decides
    return hk.cond(receivers[0] < first_padding, lambda t: add_chunk(t, chunk),
                   lambda t: t, total), None

  xs = tuple(split(x, 0) for x in edge_arrays) + (split(senders, 0),
                                                   split(receivers, num_nodes))
  total, _ = hk.scan(hk.remat(step) if remat else step, zeros, xs)
  return total
