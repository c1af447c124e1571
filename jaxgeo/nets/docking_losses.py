"""EquiDock's training losses (Ganea et al., ICLR 2022), pure jnp, masked for padding.

All take the IEGMN outputs (`jaxgeo.nets.iegmn.make_iegmn`) and the batch of `pair_graph`
graphs, padded (`jaxgeo.batching.pad`: the last graph is taken for the padding graph), and
return one value per graph `[G]` (0 for the padding graph); `docking_loss` averages them
over the real graphs. Jit them (the Sinkhorn loop especially).

- `ligand_mse`: mean over the ligand's CAs and the 3 coordinates of (x_pred - x_true)^2
  (PyTorch's `MSELoss`, a third of the squared ligand RMSD).
- `ot_keypoint_loss`: optimal transport between the pocket points and the keypoints, with
  cost |p_input - y_ligand|^2 + |p - y_receptor|^2 (the pocket in the ligand's input frame
  against the ligand keypoints, and in the receptor's frame against the receptor keypoints),
  uniform marginals; EquiDock solves it exactly (EMD) and keeps the plan fixed in the
  backward pass; we solve it by log-domain Sinkhorn (entropy `sinkhorn_epsilon` times the
  mean cost) and stop its gradient likewise. Loss = sum plan * cost.
- `intersection_loss`: the non-intersection loss with EquiDock's surface function
  G_P(x) = -sigma log(1e-3 + sum_{a in P} exp(-|x - a|^2 / sigma)):
  mean_{ligand i} max(0, gamma - G_receptor(l_i)) + mean_{receptor j} max(0, gamma - G_ligand(r_j)),
  sigma = 25, gamma (surface constant) = 10.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import jraph

from jaxgeo.nets import ops

_TINY = 1e-30


@dataclasses.dataclass(frozen=True)
class DockingLossConfig:
  """Weights and constants of the docking loss (EquiDock's defaults).

  Attributes:
    ligand_mse_weight: weight of the ligand CA MSE.
    ot_weight: weight of the keypoint OT loss (EquiDock's `pocket_ot_loss_weight`).
    intersection_weight: weight of the non-intersection loss (EquiDock: 10).
    intersection_sigma: sigma of the surface function (EquiDock: 25).
    intersection_surface: gamma, the surface level (EquiDock's `intersection_surface_ct`: 10).
    sinkhorn_epsilon: entropic regularisation, relative to each graph's mean cost.
    sinkhorn_iterations: Sinkhorn iterations.
  """
  ligand_mse_weight: float = 1.0
  ot_weight: float = 1.0
  intersection_weight: float = 10.0
  intersection_sigma: float = 25.0
  intersection_surface: float = 10.0
  sinkhorn_epsilon: float = 0.01
  sinkhorn_iterations: int = 100


def _graph_info(batch: jraph.GraphsTuple):
  """(graph index [N], graph mask [G] bool: real graphs)."""
  return ops.node_graph_index(batch), jraph.get_graph_padding_mask(batch)


def _segment_mean(values: jax.Array, weights: jax.Array, segments: jax.Array, n: int
                  ) -> jax.Array:
  total = jax.ops.segment_sum(values * weights, segments, n)
  count = jax.ops.segment_sum(weights, segments, n)
  return total / jnp.maximum(count, 1.0)


def ligand_mse(output: dict, batch: jraph.GraphsTuple) -> jax.Array:
  """`[G]` mean squared error of the predicted ligand CA coordinates (0 for padding)."""
  graph_index, graph_mask = _graph_info(batch)
  ligand = (batch.nodes["partner"] == 0).astype(output["x_pred"].dtype)
  sq = jnp.mean(jnp.square(output["x_pred"] - batch.nodes["x_true"]), axis=-1)   # [N]
  per_graph = _segment_mean(sq, ligand, graph_index, graph_mask.shape[0])
  return jnp.where(graph_mask, per_graph, 0.0)


def _segment_logsumexp(v: jax.Array, valid: jax.Array, segments: jax.Array, n: int
                       ) -> jax.Array:
  """log sum_{rows in segment, valid} exp(v) for `v [N, K]` -> `[n, K]` (very negative
  for segments without valid rows)."""
  v = jnp.where(valid[:, None], v, -jnp.inf)
  top = jax.ops.segment_max(v, segments, n)
  top = jnp.where(jnp.isfinite(top), top, 0.0)
  total = jax.ops.segment_sum(jnp.exp(v - top[segments]), segments, n)
  return top + jnp.log(jnp.maximum(total, _TINY))


def sinkhorn_plan(cost: jax.Array, valid: jax.Array, segments: jax.Array, n_seg: int,
                  epsilon: float, iterations: int) -> jax.Array:
  """Entropic OT plans between each segment's valid rows and the K columns.

  Args:
    cost: `[N, K]` cost of row i (in segment segments[i]) to column k of its segment.
    valid: `[N]` bool: rows that carry mass (uniform over a segment's valid rows).
    segments: `[N]` int segment of each row; n_seg: number of segments.
    epsilon: entropic regularisation relative to each segment's mean valid cost.
    iterations: Sinkhorn iterations (log domain).
  Returns:
    `[N, K]` plan (0 on invalid rows); each segment's plan sums to 1 (to 0 when the segment
    has no valid row); no gradient flows through it.
  """
  cost = jax.lax.stop_gradient(cost)
  num_k = cost.shape[1]
  vf = valid.astype(cost.dtype)
  count = jax.ops.segment_sum(vf, segments, n_seg)                              # [S]
  mean_cost = jax.ops.segment_sum(jnp.mean(cost, axis=1) * vf, segments, n_seg) / jnp.maximum(
      count, 1.0)
  eps = epsilon * jnp.maximum(mean_cost, 1e-6)                                  # [S]
  eps_rows = eps[segments][:, None]                                            # [N, 1]
  log_a = -jnp.log(jnp.maximum(count, 1.0))[segments]                          # [N]
  log_b = -jnp.log(float(num_k))

  def body(_, state):
    f, g = state                                                                # [N], [S, K]
    f = eps_rows[:, 0] * (log_a - jax.nn.logsumexp((g[segments] - cost) / eps_rows, axis=1))
    f = jnp.where(valid, f, 0.0)
    lse = _segment_logsumexp((f[:, None] - cost) / eps_rows, valid, segments, n_seg)
    g = eps[:, None] * (log_b - lse)
    return f, g

  f0 = jnp.zeros(cost.shape[0], cost.dtype)
  g0 = jnp.zeros((n_seg, num_k), cost.dtype)
  f, g = jax.lax.fori_loop(0, iterations, body, ops.varying_like((f0, g0), cost))
  plan = jnp.exp((f[:, None] + g[segments] - cost) / eps_rows)
  return jax.lax.stop_gradient(jnp.where(valid[:, None], plan, 0.0))


def ot_keypoint_loss(output: dict, batch: jraph.GraphsTuple, epsilon: float = 0.01,
                     iterations: int = 100) -> jax.Array:
  """`[G]` EquiDock's keypoint OT loss (0 for padding and for graphs without pocket)."""
  graph_index, graph_mask = _graph_info(batch)
  n_graph = graph_mask.shape[0]
  lig_k = jnp.take(output["ligand_keypoints"], graph_index, axis=0)            # [N, K, 3]
  rec_k = jnp.take(output["receptor_keypoints"], graph_index, axis=0)
  p_in = batch.nodes["pocket_input"].astype(lig_k.dtype)[:, None, :]
  p = batch.nodes["pocket"].astype(lig_k.dtype)[:, None, :]
  cost = (jnp.sum(jnp.square(p_in - lig_k), axis=-1) +
          jnp.sum(jnp.square(p - rec_k), axis=-1))                              # [N, K]
  valid = batch.nodes["pocket_mask"].astype(bool)
  plan = sinkhorn_plan(cost, valid, graph_index, n_graph, epsilon, iterations)
  per_graph = jax.ops.segment_sum(jnp.sum(plan * cost, axis=1), graph_index, n_graph)
  return jnp.where(graph_mask, per_graph, 0.0)


def surface_function(points: jax.Array, x: jax.Array, pair_mask: jax.Array, sigma: float
                     ) -> jax.Array:
  """EquiDock's G(x) = -sigma log(1e-3 + sum_a exp(-|x - a|^2 / sigma)) over the points a
  with `pair_mask[i, a]`: `x [M, 3]`, `points [P, 3]`, `pair_mask [M, P]` -> `[M]`."""
  d2 = jnp.sum(jnp.square(x[:, None, :] - points[None, :, :]), axis=-1)       # [M, P]
  total = jnp.sum(jnp.where(pair_mask, jnp.exp(-d2 / sigma), 0.0), axis=1)
  return -sigma * jnp.log(1e-3 + total)


def intersection_loss(output: dict, batch: jraph.GraphsTuple, sigma: float = 25.0,
                      surface: float = 10.0) -> jax.Array:
  """`[G]` EquiDock's non-intersection loss of the predicted complex (0 for padding)."""
  graph_index, graph_mask = _graph_info(batch)
  n_graph = graph_mask.shape[0]
  x = output["x_pred"]
  partner = batch.nodes["partner"]
  same = graph_index[:, None] == graph_index[None, :]
  other = same & (partner[:, None] != partner[None, :])                          # [N, N]
  g = surface_function(x, x, other, sigma)                                # [N]
  penalty = jax.nn.relu(surface - g)
  lig = (partner == 0).astype(x.dtype)
  per_graph = (_segment_mean(penalty, lig, graph_index, n_graph) +
               _segment_mean(penalty, 1.0 - lig, graph_index, n_graph))
  return jnp.where(graph_mask, per_graph, 0.0)


def docking_loss(output: dict, batch: jraph.GraphsTuple,
                 config: DockingLossConfig = DockingLossConfig()
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted sum of the three losses, averaged over the real graphs.

  Returns:
    (scalar loss, {"ligand_mse", "ot", "intersection", "loss"} averages over real graphs).
  """
  graph_mask = jraph.get_graph_padding_mask(batch)
  n_real = jnp.maximum(jnp.sum(graph_mask), 1)
  terms = {
      "ligand_mse": ligand_mse(output, batch),
      "ot": ot_keypoint_loss(output, batch, config.sinkhorn_epsilon, config.sinkhorn_iterations),
      "intersection": intersection_loss(output, batch, config.intersection_sigma,
                                        config.intersection_surface),
  }
  means = {k: jnp.sum(v) / n_real for k, v in terms.items()}
  loss = (config.ligand_mse_weight * means["ligand_mse"] + config.ot_weight * means["ot"] +
          config.intersection_weight * means["intersection"])
  means["loss"] = loss
  return loss, means
