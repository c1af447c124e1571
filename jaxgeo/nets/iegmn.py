"""EquiDock's IEGMN (Ganea et al., ICLR 2022): rigid protein-protein docking, in Haiku.

A docking example is ONE graph holding both partners (so that `jaxgeo.batching` pads pairs
like any other graph); see `pair_graph`. Nodes are residues at their CA:

  nodes["partner"] [N] int32        0 = ligand, 1 = receptor
  nodes["x"]       [N, 3] float32   input CA coordinates: the ligand randomly rotated and
                                    translated away from its bound pose, the receptor as bound
  nodes["x_true"]  [N, 3] float32   bound CA coordinates in the receptor's frame
  nodes["aatype"]  [N] int32        residue types (and optionally nodes["lm"] [N, D])
  nodes["surface"] [N, 5] float32   EquiDock's log(mu_r_norm) surface-awareness features
  nodes["pocket"], nodes["pocket_input"] [N, 3], nodes["pocket_mask"] [N] bool
                                    the OT loss's pocket points (see `pair_graph`)
  edges["s"]       [E, 27] float32  15 RBFs of the CA distance ++ 12 relative orientations
  globals["ligand_rotation"] [G, 3, 3], globals["ligand_translation"] [G, 3]
                                    the random motion of the ligand: x = x_true @ R^T + t

Edges join each residue to its k = 10 nearest CA neighbours within 30 A of the SAME partner.

The network (EquiDock's `IEGMN_Layer`, `IEGMN` with `rot_model="kb_att"`):
  per layer, for each partner's graph, with x the current coordinates and h the features,
    m_ji  = phi_e([h_j, h_i, f_ji, exp(-|x_j - x_i|^2 / 1.5^s), s = 0..14])   (edge j -> i)
    mu_i  = sum_{j in other partner} softmax_j(q(h_i) . k(h_j)) v(h_j)         (cross-graph)
    x_i  <- c x_i^0 + (1 - c) x_i + mean_j (x_j - x_i) phi_x(m_ji)
    h_i  <- w phi_h([h_i, mean_j m_ji, mu_i, h_i^0]) + (1 - w) h_i    (w = skip weight)
  then K keypoints per partner, one per attention head: the ligand's
    y_k = sum_i softmax_i(key_k(h_i) . query_k(mean_r g(h_r)) / sqrt(d)) z_i
  (z the final coordinates; the query is built from the receptor's mean, and conversely), and
  (R, t) = Kabsch(ligand keypoints -> receptor keypoints). The prediction moves the ligand's
  INPUT coordinates by (R, t); the receptor stays where it is.

Everything the layers see is E(3)-invariant (distances, the orientation features, residue
types) or equivariant (coordinates), so the predicted complex does not depend on how either
input is rotated or translated. The orientation features use the backbone's local frames,
which are chiral: a mirror image of both inputs does NOT give the mirrored prediction
(with `orientation=False` in `pair_graph` it does; tests/test_nets_iegmn.py measures both).

Padding: the padding graph holds padding nodes only, and everything (edges, cross attention,
keypoint attention, means) stays within a graph and a partner, so real outputs do not depend
on padding; rows of the padding graph are finite but meaningless.
"""
from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxgeo import geometry
from jaxgeo import graph as graph_lib
from jaxgeo.errors import DataError
from jaxgeo.nets import ops
from jaxgeo.nets import config as nets_config
from jaxgeo.nets.config import FusionConfig, IEGMNConfig  # noqa: F401 (re-export)
from jaxgeo.nets.fusion import Fusion
from jaxgeo.structure import Protein

# EquiDock's featurisation constants.
DISTANCE_SCALES = tuple(1.5 ** s for s in range(15))      # exp(-d^2 / scale), A^2
SURFACE_SIGMAS = (1.0, 2.0, 5.0, 10.0, 30.0)              # mu_r_norm softmax temperatures
NUM_ORIENTATION = 12
EDGE_DIM = len(DISTANCE_SCALES) + NUM_ORIENTATION
SURFACE_DIM = len(SURFACE_SIGMAS)
KNN = 10
GRAPH_CUTOFF = 30.0
POCKET_CUTOFF = 8.0
TRANSLATION_INTERVAL = 5.0


def tiny_config(**changes) -> IEGMNConfig:
  """A small IEGMN for tests: 2 layers of width 16, 8 keypoints, 16-wide embedding."""
  config = IEGMNConfig(fusion=FusionConfig(mode="none", embed_dim=16), num_layers=2, hidden=16,
                       num_keypoints=8)
  return config.replace(**changes)


def validate(config: IEGMNConfig) -> IEGMNConfig:
  """Raises ConfigError naming the option for an invalid setting."""
  return nets_config.validate_iegmn(config)


# ------------------------------------------------------------------ data: one pair, one graph


def local_frames(protein: Protein) -> np.ndarray:
  """EquiDock's residue frames [L, 3, 3], rows (n, u, v): u = unit(N - CA),
  n = unit(u x unit(C - CA)), v = n x u. Zero where N, CA or C is missing or degenerate."""
  bb = protein.backbone.astype(np.float64)
  u = graph_lib._unit(bb[:, 0] - bb[:, 1])
  c = graph_lib._unit(bb[:, 2] - bb[:, 1])
  n = graph_lib._unit(np.cross(u, c))
  v = np.cross(n, u)
  ok = protein.backbone_mask[:, :3].all(axis=1) & (np.linalg.norm(n, axis=-1) > 0.5)
  return np.stack([n, u, v], axis=1) * ok[:, None, None]


def edge_features(x: np.ndarray, frames: np.ndarray, senders: np.ndarray,
                  receivers: np.ndarray, orientation: bool = True) -> np.ndarray:
  """EquiDock's edge features [E, 27] for edges sender j -> receiver i.

  15 RBFs exp(-|x_j - x_i|^2 / 1.5^s) (s = 0..14) ++ the frame of i applied to
  (x_j - x_i, n_j, u_j, v_j) (12; zeros when `orientation` is False).
  """
  rel = x[senders].astype(np.float64) - x[receivers]
  d2 = np.sum(rel * rel, axis=-1, keepdims=True)
  rbf = np.exp(-d2 / np.asarray(DISTANCE_SCALES)[None, :])
  basis = frames[receivers]                                               # [E, 3, 3]
  if orientation:
    parts = [np.einsum("eij,ej->ei", basis, rel)]
    parts += [np.einsum("eij,ej->ei", basis, frames[senders, a]) for a in range(3)]
    orient = np.concatenate(parts, axis=-1)
  else:
    orient = np.zeros((rel.shape[0], NUM_ORIENTATION))
  return np.concatenate([rbf, orient], axis=-1).astype(np.float32)


def surface_features(x: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
  """EquiDock's surface-awareness node features log(mu_r_norm) [N, 5].

  For node i with neighbours j: w = softmax_j(-|x_i - x_j|^2 / sigma) (sigma in 1, 2, 5, 10,
  30), ratio = |sum_j w (x_i - x_j)| / sum_j w |x_i - x_j|: near 1 at the surface, near 0
  inside. (EquiDock measures the softmax distance between residues' atoms; we use CAs.)
  """
  n = x.shape[0]
  diff = x[receivers].astype(np.float64) - x[senders]
  dist = np.linalg.norm(diff, axis=-1)
  out = np.zeros((n, SURFACE_DIM))
  for si, sigma in enumerate(SURFACE_SIGMAS):
    logits = -dist ** 2 / sigma
    top = np.full(n, -np.inf)
    np.maximum.at(top, receivers, logits)
    w = np.exp(logits - top[receivers])
    total = np.bincount(receivers, w, minlength=n)
    w = w / np.maximum(total[receivers], 1e-30)
    mean_vec = np.stack([np.bincount(receivers, w * diff[:, a], minlength=n) for a in range(3)],
                        axis=-1)
    denom = np.bincount(receivers, w * dist, minlength=n)
    out[:, si] = np.linalg.norm(mean_vec, axis=-1) / np.maximum(denom, 1e-12)
  return np.log(np.maximum(out, 1e-6)).astype(np.float32)


def _pocket_points(true_lig: np.ndarray, true_rec: np.ndarray, cutoff: float
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Per-residue pocket points [Nl + Nr, 3] (bound frame) and their mask [Nl + Nr].

  EquiDock's pocket is the midpoints of the (ligand, receptor) CA pairs closer than 8 A in
  the bound complex. We keep one point per interface residue (so that it travels as a node
  array): the mean of the midpoints of the residue's pairs.
  """
  d2 = np.sum((true_lig[:, None, :] - true_rec[None, :, :]) ** 2, axis=-1)
  pair = d2 < cutoff * cutoff                                              # [Nl, Nr]
  mid = 0.5 * (true_lig[:, None, :] + true_rec[None, :, :])              # [Nl, Nr, 3]
  count_l = pair.sum(axis=1)
  count_r = pair.sum(axis=0)
  lig_pts = (pair[..., None] * mid).sum(axis=1) / np.maximum(count_l, 1)[:, None]
  rec_pts = (pair[..., None] * mid).sum(axis=0) / np.maximum(count_r, 1)[:, None]
  return (np.concatenate([lig_pts, rec_pts]).astype(np.float32),
          np.concatenate([count_l > 0, count_r > 0]))


def pair_graph(ligand: Protein, receptor: Protein, rng=0, k: int = KNN,
               cutoff: float = GRAPH_CUTOFF, translation_interval: float = TRANSLATION_INTERVAL,
               orientation: bool = True, pocket_cutoff: float = POCKET_CUTOFF,
               perturb: bool = True, ligand_lm: np.ndarray | None = None,
               receptor_lm: np.ndarray | None = None) -> jraph.GraphsTuple:
  """One docking example (a ligand-receptor pair) as one graph of numpy arrays.

  Args:
    ligand: the ligand in its bound pose (the receptor's frame), Nl residues.
    receptor: the receptor, Nr residues; it stays where it is.
    rng: a numpy Generator or a seed for the ligand's random motion (EquiDock's: centre the
      ligand, rotate it uniformly, translate it by a uniform direction times a length uniform
      in [0, translation_interval]).
    k: neighbours per residue (EquiDock: 10), within `cutoff` A (EquiDock: 30), same partner.
    orientation: include the 12 relative-orientation edge features (else zeros).
    pocket_cutoff: CA-CA distance of EquiDock's pocket pairs (8 A).
    perturb: move the ligand (False: its input is its bound pose; for tests).
    ligand_lm, receptor_lm: optional [Nl, D], [Nr, D] language-model vectors -> nodes["lm"].
  Returns:
    GraphsTuple with n_node [1] = Nl + Nr (ligand first) and the arrays of the module
    docstring; edges sorted by receiver.
  """
  if len(ligand) < 3 or len(receptor) < 3:
    raise DataError(f"pair_graph: {ligand.source or 'ligand'} has {len(ligand)} and "
                    f"{receptor.source or 'receptor'} {len(receptor)} residues; docking needs "
                    "at least 3 each")
  if (ligand_lm is None) != (receptor_lm is None):
    raise DataError("pair_graph: give language-model vectors for both partners or neither")
  rng = np.random.default_rng(rng)
  true_lig = ligand.ca.astype(np.float64)
  true_rec = receptor.ca.astype(np.float64)
  if perturb:
    rot, shift = geometry.random_rigid_motion(rng, translation_interval)
    t_in = shift - rot @ true_lig.mean(axis=0)
  else:
    rot, t_in = np.eye(3), np.zeros(3)
  moved = geometry.move_protein(ligand, rot, t_in)
  n_lig = len(ligand)
  xs, edge_s, senders, receivers, surface = [], [], [], [], []
  for offset, protein in ((0, moved), (n_lig, receptor)):
    x = protein.ca.astype(np.float64)
    s, r = graph_lib.radius_edges(x, cutoff, max_neighbors=k)   # kNN within the cutoff
    xs.append(x)
    edge_s.append(edge_features(x, local_frames(protein), s, r, orientation))
    surface.append(surface_features(x, s, r))
    senders.append(s + offset)
    receivers.append(r + offset)
  pocket, pocket_mask = _pocket_points(true_lig, true_rec, pocket_cutoff)
  pocket_input = pocket.astype(np.float64)
  pocket_input[:n_lig] = geometry.apply_transform(pocket[:n_lig], rot, t_in)
  n = n_lig + len(receptor)
  nodes = {
      "x": np.concatenate(xs).astype(np.float32),
      "x_true": np.concatenate([true_lig, true_rec]).astype(np.float32),
      "aatype": np.concatenate([ligand.aatype, receptor.aatype]).astype(np.int32),
      "partner": np.concatenate([np.zeros(n_lig, np.int32), np.ones(len(receptor), np.int32)]),
      "surface": np.concatenate(surface),
      "pocket": pocket,
      "pocket_input": pocket_input.astype(np.float32),
      "pocket_mask": pocket_mask,
  }
  if ligand_lm is not None:
    nodes["lm"] = np.concatenate([ligand_lm, receptor_lm]).astype(np.float32)
    if nodes["lm"].shape[0] != n:
      raise DataError(f"pair_graph: language-model vectors for {nodes['lm'].shape[0]} "
                      f"residues, the pair has {n}")
  senders = np.concatenate(senders).astype(np.int32)
  receivers = np.concatenate(receivers).astype(np.int32)
  return jraph.GraphsTuple(
      nodes=nodes, edges={"s": np.concatenate(edge_s)}, senders=senders, receivers=receivers,
      n_node=np.array([n], np.int32), n_edge=np.array([senders.shape[0]], np.int32),
      globals={"ligand_rotation": rot[None].astype(np.float32),
               "ligand_translation": t_in[None].astype(np.float32)})


def example_batch(config: IEGMNConfig, n_per_partner: int = 3) -> jraph.GraphsTuple:
  """A minimal pair graph with the arrays (and widths) the IEGMN of `config` reads: every
  partner a triangle of `n_per_partner` nodes at made-up positions. For shapes only
  (`jax.eval_shape` of `init`, parameter counts)."""
  n = 2 * n_per_partner
  idx = np.arange(n_per_partner)
  s, r = np.meshgrid(idx, idx, indexing="ij")
  keep = s != r
  senders = np.concatenate([s[keep], s[keep] + n_per_partner]).astype(np.int32)
  receivers = np.concatenate([r[keep], r[keep] + n_per_partner]).astype(np.int32)
  x = np.arange(3 * n, dtype=np.float32).reshape(n, 3) % 7.0
  nodes = {"x": x, "x_true": x, "aatype": np.zeros(n, np.int32),
           "partner": np.repeat(np.arange(2, dtype=np.int32), n_per_partner),
           "surface": np.zeros((n, SURFACE_DIM), np.float32), "pocket": x,
           "pocket_input": x, "pocket_mask": np.ones(n, bool)}
  if config.fusion.mode != "none":
    nodes["lm"] = np.zeros((n, config.fusion.lm_dim), np.float32)
  return jraph.GraphsTuple(
      nodes=nodes, edges={"s": np.zeros((senders.shape[0], EDGE_DIM), np.float32)},
      senders=senders, receivers=receivers, n_node=np.array([n], np.int32),
      n_edge=np.array([senders.shape[0]], np.int32),
      globals={"ligand_rotation": np.eye(3, dtype=np.float32)[None],
               "ligand_translation": np.zeros((1, 3), np.float32)})


# ------------------------------------------------------------------ network


def _masked_softmax(logits: jax.Array, mask: jax.Array, axis: int) -> jax.Array:
  """Softmax over `axis` restricted to `mask`; all-masked slices give zeros."""
  logits = jnp.where(mask, logits, -1e30)
  top = jax.lax.stop_gradient(jnp.max(logits, axis=axis, keepdims=True))
  e = jnp.exp(logits - top) * mask
  return e / jnp.maximum(jnp.sum(e, axis=axis, keepdims=True), 1e-30)


class _MLP(hk.Module):
  """Linear -> dropout -> leaky ReLU -> (LayerNorm) -> Linear, as EquiDock's MLPs."""

  def __init__(self, hidden: int, out: int, config: IEGMNConfig, layer_norm: bool,
               name: str | None = None):
    super().__init__(name=name)
    self.hidden, self.out, self.config, self.layer_norm = hidden, out, config, layer_norm

  def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
    c = self.config
    x = hk.Linear(self.hidden, name="linear_0")(x)
    if is_training and c.dropout > 0:
      x = hk.dropout(hk.next_rng_key(), c.dropout, x)
    x = jax.nn.leaky_relu(x, c.leaky_relu_slope)
    if self.layer_norm:
      x = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name="norm")(x)
    return hk.Linear(self.out, name="linear_1")(x)


class IEGMNLayer(hk.Module):
  """One IEGMN layer on both partners at once (see the module docstring)."""

  def __init__(self, config: IEGMNConfig, name: str | None = None):
    super().__init__(name=name)
    self.config = config

  def __call__(self, h: jax.Array, x: jax.Array, h0: jax.Array, x0: jax.Array,
               edge_attr: jax.Array, senders: jax.Array, receivers: jax.Array,
               degree: jax.Array, cross_mask: jax.Array, is_training: bool
               ) -> tuple[jax.Array, jax.Array]:
    """Args:
      h: [N, H_in] features; x: [N, 3] coordinates; h0: [N, F] input features;
      x0: [N, 3] input coordinates; edge_attr: [E, A]; senders, receivers: [E] sorted by
      receiver; degree: [N] in-degrees; cross_mask: [N, N] bool, True where i may attend to
      j (same graph, other partner).
    Returns:
      (h [N, hidden], x [N, 3]).
    """
    c = self.config
    leaky = lambda v: jax.nn.leaky_relu(v, c.leaky_relu_slope)
    out = c.hidden
    rel = jnp.take(x, senders, axis=0) - jnp.take(x, receivers, axis=0)        # x_j - x_i [E, 3]
    parts = [jnp.take(h, senders, axis=0), jnp.take(h, receivers, axis=0)]
    if c.edge_features:
      parts.append(edge_attr)
    if c.distances_in_layers:
      d2 = jnp.sum(jnp.square(rel), axis=-1, keepdims=True)
      scales = jnp.asarray(DISTANCE_SCALES, h.dtype)
      parts.append(jnp.exp(-d2 / scales))
    m = _MLP(out, out, c, c.layer_norm, name="edge_mlp")(jnp.concatenate(parts, -1), is_training)

    if c.cross_messages:
      q = leaky(hk.Linear(h.shape[-1], with_bias=False, name="cross_q")(h))
      k = leaky(hk.Linear(h.shape[-1], with_bias=False, name="cross_k")(h))
      v = hk.Linear(h.shape[-1], with_bias=False, name="cross_v")(h)
      attention = _masked_softmax(q @ k.T, cross_mask, axis=1)                 # [N, N]
      cross = attention @ v
    else:
      cross = jnp.zeros_like(h)

    coef = _MLP(out, 1, c, False, name="coord_mlp")(m, is_training)            # [E, 1]
    x_update = ops.mean_aggregate(rel * coef, receivers, degree).astype(x.dtype)
    x_new = c.x_connection * x0 + (1.0 - c.x_connection) * x + x_update
    aggregated = ops.mean_aggregate(m, receivers, degree).astype(h.dtype)
    node_in = jnp.concatenate([h, aggregated, cross, h0], axis=-1)
    update = _MLP(h.shape[-1], out, c, c.layer_norm, name="node_mlp")(node_in, is_training)
    if h.shape[-1] == out:
      h_new = c.skip_weight * update + (1.0 - c.skip_weight) * h
    else:
      h_new = update
    return h_new, x_new


def segment_softmax(logits: jax.Array, segments: jax.Array, num_segments: int) -> jax.Array:
  """Softmax of `logits [N, K]` over the rows of each segment (`segments [N]`)."""
  top = jax.ops.segment_max(logits, segments, num_segments)
  top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
  e = jnp.exp(logits - top[segments])
  total = jax.ops.segment_sum(e, segments, num_segments)
  return e / jnp.maximum(total[segments], 1e-30)


class Keypoints(hk.Module):
  """EquiDock's "kb_att" keypoints: K attention heads per partner over its nodes."""

  def __init__(self, config: IEGMNConfig, name: str = "keypoints"):
    super().__init__(name=name)
    self.config = config

  def __call__(self, h: jax.Array, z: jax.Array, segments: jax.Array, n_graph: int,
               is_training: bool) -> jax.Array:
    """Args:
      h: [N, H] final features; z: [N, 3] final coordinates;
      segments: [N] int, 2 * graph + partner.
      n_graph: G.
    Returns:
      [G, 2, K, 3] keypoints (index 1: 0 ligand, 1 receptor); zeros for an empty partner.
    """
    c = self.config
    d = h.shape[-1]
    num_k = c.num_keypoints
    g = hk.Linear(d, name="mean_mlp")(h)
    if is_training and c.dropout > 0:
      g = hk.dropout(hk.next_rng_key(), c.dropout, g)
    g = jax.nn.leaky_relu(g, c.leaky_relu_slope)
    n_seg = 2 * n_graph
    count = jax.ops.segment_sum(jnp.ones_like(segments, h.dtype), segments, n_seg)
    means = jax.ops.segment_sum(g, segments, n_seg) / jnp.maximum(count, 1.0)[:, None]
    keys = hk.Linear(num_k * d, with_bias=False, name="key")(h).reshape(-1, num_k, d)
    queries = hk.Linear(num_k * d, with_bias=False, name="query")(means).reshape(n_seg, num_k, d)
    other = segments + 1 - 2 * (segments % 2)                  # the other partner's segment
    logits = jnp.einsum("nkd,nkd->nk", keys, jnp.take(queries, other, axis=0)) / math.sqrt(d)
    weights = segment_softmax(logits, segments, n_seg)                        # [N, K]
    points = jax.ops.segment_sum(weights[:, :, None] * z[:, None, :], segments, n_seg)
    return points.reshape(n_graph, 2, num_k, 3)


def _forward(config: IEGMNConfig, graph: jraph.GraphsTuple, is_training: bool
             ) -> dict[str, jax.Array]:
  graph = jax.tree_util.tree_map(jnp.asarray, graph)
  nodes = graph.nodes
  for key in ("x", "aatype", "partner"):
    if key not in nodes:
      raise DataError(f"IEGMN needs nodes[{key!r}] (build docking examples with "
                      "jaxgeo.nets.iegmn.pair_graph); the batch has none")
  if config.surface_features and "surface" not in nodes:
    raise DataError("iegmn.surface_features=True needs nodes['surface'] (pair_graph adds it)")
  dtype = jnp.result_type(nodes["x"].dtype, jnp.float32)
  x_in = nodes["x"].astype(dtype)
  partner = nodes["partner"].astype(jnp.int32)
  n = x_in.shape[0]
  n_graph = graph.n_node.shape[0]
  graph_index = ops.node_graph_index(graph)
  segments = 2 * graph_index + partner
  # Work with each partner centred on its own centroid (the network is translation
  # equivariant, so this changes nothing but float32 round-off, which it keeps small).
  centre = _segment_mean(x_in, segments, 2 * n_graph)                         # [2G, 3]
  x0 = x_in - jnp.take(centre, segments, axis=0)

  h0 = Fusion(config.fusion)(nodes, dtype)
  if config.surface_features:
    h0 = jnp.concatenate([h0, nodes["surface"].astype(dtype)], axis=-1)
  edge_attr = graph.edges["s"].astype(dtype)
  senders, receivers = graph.senders, graph.receivers
  degree = ops.in_degree(receivers, n, ops.acc_dtype(dtype))
  cross_mask = ((graph_index[:, None] == graph_index[None, :]) &
                (partner[:, None] != partner[None, :]))

  h, x = h0, x0
  first = IEGMNLayer(config, name="layer_0")
  shared = IEGMNLayer(config, name="layer_shared") if config.shared_layers else None
  for i in range(config.num_layers):
    layer = first if i == 0 else (shared or IEGMNLayer(config, name=f"layer_{i}"))
    h, x = layer(h, x, h0, x0, edge_attr, senders, receivers, degree, cross_mask, is_training)

  points = Keypoints(config)(h, x, segments, n_graph, is_training)             # [G, 2, K, 3]
  lig_points, rec_points = points[:, 0], points[:, 1]
  rotation, shift = geometry.kabsch_jnp(lig_points, rec_points)               # centred frames
  centre = centre.reshape(n_graph, 2, 3)
  moved = (jnp.einsum("nij,nj->ni", jnp.take(rotation, graph_index, axis=0), x0)
           + jnp.take(shift + centre[:, 1], graph_index, axis=0))
  x_pred = jnp.where((partner == 0)[:, None], moved, x_in)
  # back to the input frames: y -> y + centroid; t = shift + c_receptor - R c_ligand
  translation = shift + centre[:, 1] - jnp.einsum("gij,gj->gi", rotation, centre[:, 0])
  x_out = x + jnp.take(centre.reshape(-1, 3), segments, axis=0)
  return {"rotation": rotation, "translation": translation,
          "ligand_keypoints": lig_points + centre[:, 0, None],
          "receptor_keypoints": rec_points + centre[:, 1, None], "x_pred": x_pred,
          "x_out": x_out}


def _segment_mean(values: jax.Array, segments: jax.Array, num_segments: int) -> jax.Array:
  """Mean of `values [N, F]` over each segment -> `[num_segments, F]` (0 when empty)."""
  total = jax.ops.segment_sum(values, segments, num_segments)
  count = jax.ops.segment_sum(jnp.ones(values.shape[:1], values.dtype), segments, num_segments)
  return total / jnp.maximum(count, 1.0)[:, None]


def make_iegmn(config: IEGMNConfig) -> hk.Transformed:
  """IEGMN as a pure (init, apply) pair.

  init(rng, batch) -> params; apply(params, rng, batch, is_training=False, padded=False) -> dict
  (`padded`, the promise of `nets.make_model`, is accepted and not used):
    "rotation" [G, 3, 3], "translation" [G, 3]: the rigid motion of each graph's ligand
      (input frame -> receptor frame), x -> x @ R^T + t;
    "ligand_keypoints", "receptor_keypoints" [G, K, 3]: the keypoints (ligand ones in the
      ligand's input frame, receptor ones in the receptor's);
    "x_pred" [N, 3]: ligand nodes moved by their graph's (R, t), receptor nodes unchanged;
    "x_out" [N, 3]: the IEGMN layers' output coordinates (the keypoints' support).
  `batch` is a (padded) batch of `pair_graph` graphs; rows of the padding graph are finite
  but meaningless. `is_training` must be a Python bool.
  """
  validate(config)

  def forward(graph: jraph.GraphsTuple, is_training: bool = False,
              padded: bool = False) -> dict[str, jax.Array]:
    del padded   # nothing in IEGMN to skip
    return _forward(config, graph, is_training)

  return hk.transform(forward)


def count_params(params) -> int:
  """Number of scalars in a parameter tree."""
  return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params)))
