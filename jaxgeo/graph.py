"""Residue graphs: a `Protein` -> one `jraph.GraphsTuple` of numpy arrays.

Nodes are residues at their CA; edges join each residue (receiver) to its k nearest
neighbours or to those within a radius (senders), sorted by receiver so that segment sums
can use `indices_are_sorted=True`. Two featurisations (`residue_graph(features=...)`):

"paper" (Wu et al. 2023, the GGNN-meets-PLM code): what the paper's networks see. Per node
only its identity and position; per edge the CA distance and direction. Nothing depends on
the order of the residues in the chain (the language model is what adds sequence order):

- `nodes["x"]  [N, 3]`: CA coordinates; `nodes["aatype"] [N]` (+ `partner`, `element` as
  below). No `s` or `v` node arrays.
- `edges["s"]  [E, 16]`: Gaussian RBFs of the CA distance, 16 centres evenly on
  [0, cutoff], width cutoff / 16 (the paper's `_rbf(D, D_max=cutoff)`). The cutoff is the
  `radius` option (8 A by default) for both edge types: kNN edges longer than it get RBFs
  that fade to ~0, as in the paper's kNN option, which also keeps D_max at the radius.
- `edges["v"]  [E, 1, 3]`: unit vector from the receiver's CA to the sender's CA.

"rich" (GVP-CPD style, Jing et al. 2021; our extension, the function's default):

- `nodes["s"]  [N, 6]`: sin, cos of the backbone dihedrals phi, psi, omega (0 where undefined:
  chain ends, chain breaks, missing atoms).
- `nodes["v"]  [N, 3, 3]`: unit vectors CA->next CA, CA->previous CA (0 across a chain break or
  at a chain end) and CA->CB (real or virtual CB).
- `nodes["x"]  [N, 3]`: CA coordinates (Angstrom), for EGNN / Molformer.
- `nodes["aatype"] [N]`: residue type (`jaxgeo.residues`); `residues.LIGAND_ATOM` for atoms.
- `edges["s"]  [E, 36]`: RBF of the CA distance (16 centres on 0..20 A) ++ sinusoidal encoding
  of the sequence separation within a chain (16; 0 between chains) ++ 4 flags: same chain with
  no break between, same chain across a break, different chains, different partners.
- `edges["v"]  [E, 1, 3]`: as in "paper".

Optional node arrays (`lm`, `partner`, `element`, `label`) are added with `with_nodes`, so
every array travels with the graph through padding and batching.
"""
from __future__ import annotations

from collections.abc import Sequence

import jraph
import numpy as np

from jaxgeo import residues
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.structure import Protein, concatenate

NUM_RBF = 16
RBF_MAX = 20.0
NUM_POSITIONAL = 16
NUM_EDGE_FLAGS = 4
NODE_SCALAR_DIM = 6
NODE_VECTOR_DIM = 3
EDGE_SCALAR_DIM = NUM_RBF + NUM_POSITIONAL + NUM_EDGE_FLAGS
EDGE_VECTOR_DIM = 1
FEATURES = ("paper", "rich")
# The paper's featurisation: 16 RBFs on [0, cutoff]; cutoff = the radius option.
PAPER_NUM_RBF = 16
PAPER_EDGE_SCALAR_DIM = PAPER_NUM_RBF
DEFAULT_RADIUS = 8.0
# A peptide bond C(i)-N(i+1) is ~1.33 A; CA(i)-CA(i+1) ~3.8 A.
_MAX_PEPTIDE_BOND = 2.0
_MAX_CONSECUTIVE_CA = 4.2
_ROW_CHUNK = 2048


def _unit(v: np.ndarray, eps: float = 1e-6) -> np.ndarray:
  norm = np.linalg.norm(v, axis=-1, keepdims=True)
  return np.where(norm > eps, v / np.maximum(norm, eps), 0.0)


def _dihedral(p0, p1, p2, p3) -> np.ndarray:
  """Dihedral angles of [..., 3] point quadruples, radians in (-pi, pi]."""
  b0, b1, b2 = p1 - p0, p2 - p1, p3 - p2
  n1 = np.cross(b0, b1)
  n2 = np.cross(b1, b2)
  x = np.sum(n1 * n2, axis=-1)
  y = np.sum(np.cross(n1, n2) * _unit(b1), axis=-1)
  return np.arctan2(y, x)


def chain_connected(protein: Protein, partner: np.ndarray | None = None) -> np.ndarray:
  """[L-1] bool: residue i and i+1 are bonded (same chain and partner, no break)."""
  bb, mask = protein.backbone, protein.backbone_mask
  same_chain = protein.chain_id[1:] == protein.chain_id[:-1]
  if partner is not None:
    same_chain &= partner[1:] == partner[:-1]
  has_bond_atoms = mask[:-1, 2] & mask[1:, 0]
  bond = np.linalg.norm(bb[:-1, 2] - bb[1:, 0], axis=-1)
  ca_gap = np.linalg.norm(bb[:-1, 1] - bb[1:, 1], axis=-1)
  close = np.where(has_bond_atoms, bond < _MAX_PEPTIDE_BOND, ca_gap < _MAX_CONSECUTIVE_CA)
  return same_chain & close


def node_features(protein: Protein, connected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """GVP node features.

  Args:
    protein: L residues.
    connected: [L-1] bool from `chain_connected`.
  Returns:
    scalars [L, 6] (sin/cos of phi, psi, omega), vectors [L, 3, 3].
  """
  length = len(protein)
  n, ca, c = (protein.backbone[:, i].astype(np.float64) for i in range(3))
  m = protein.backbone_mask
  angles = np.zeros((length, 3))
  defined = np.zeros((length, 3), dtype=bool)
  if length > 1:
    ok = connected & m[:-1, 2] & m[1:, 0] & m[:-1, 1] & m[1:, 1]
    ok_phi = ok & m[1:, 2]        # C(i-1), N(i), CA(i), C(i): stored at i+1
    ok_psi = ok & m[:-1, 0]       # N(i), CA(i), C(i), N(i+1): stored at i
    angles[1:, 0] = _dihedral(c[:-1], n[1:], ca[1:], c[1:])
    defined[1:, 0] = ok_phi
    angles[:-1, 1] = _dihedral(n[:-1], ca[:-1], c[:-1], n[1:])
    defined[:-1, 1] = ok_psi
    angles[:-1, 2] = _dihedral(ca[:-1], c[:-1], n[1:], ca[1:])
    defined[:-1, 2] = ok
  scalars = np.concatenate([np.sin(angles) * defined, np.cos(angles) * defined], axis=-1)

  forward = np.zeros((length, 3))
  backward = np.zeros((length, 3))
  if length > 1:
    step = _unit(ca[1:] - ca[:-1]) * connected[:, None]
    forward[:-1] = step
    backward[1:] = -step
  sidechain = _unit(protein.cb.astype(np.float64) - ca)
  vectors = np.stack([forward, backward, sidechain], axis=1)
  return scalars.astype(np.float32), vectors.astype(np.float32)


def knn_edges(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest neighbours of each point (self excluded).

  Args:
    x: [N, 3] coordinates.
    k: neighbours per node (fewer when N <= k).
  Returns:
    senders [E], receivers [E] int32, sorted by receiver then sender.
  """
  return _neighbour_edges(x, k=k, radius=None)


def radius_edges(x: np.ndarray, radius: float, max_neighbors: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Pairs closer than `radius`, keeping at most the `max_neighbors` nearest per receiver."""
  return _neighbour_edges(x, k=max_neighbors, radius=radius)


def _neighbour_edges(x, k, radius):
  x = np.asarray(x, dtype=np.float64)
  n = x.shape[0]
  senders, receivers = [], []
  for start in range(0, n, _ROW_CHUNK):
    rows = np.arange(start, min(n, start + _ROW_CHUNK))
    d2 = np.sum((x[rows, None, :] - x[None, :, :]) ** 2, axis=-1)
    d2[np.arange(len(rows)), rows] = np.inf
    limit = n - 1 if k is None else min(k, n - 1)
    if limit <= 0:
      continue
    if limit < n - 1:
      nearest = np.argpartition(d2, limit - 1, axis=1)[:, :limit]
    else:
      nearest = np.broadcast_to(np.arange(n), (len(rows), n))
    near_d2 = np.take_along_axis(d2, nearest, axis=1)
    keep = np.isfinite(near_d2)
    if radius is not None:
      keep &= near_d2 < radius * radius
    r_idx, col = np.nonzero(keep)
    receivers.append(rows[r_idx])
    senders.append(nearest[r_idx, col])
  if not senders:
    return np.zeros((0,), np.int32), np.zeros((0,), np.int32)
  senders = np.concatenate(senders)
  receivers = np.concatenate(receivers)
  order = np.lexsort((senders, receivers))
  return senders[order].astype(np.int32), receivers[order].astype(np.int32)


def rbf(distance: np.ndarray, num: int = NUM_RBF, d_max: float = RBF_MAX) -> np.ndarray:
  """Gaussian radial basis [E] -> [E, num], centres evenly on [0, d_max]."""
  centres = np.linspace(0.0, d_max, num)
  sigma = d_max / num
  return np.exp(-(((distance[:, None] - centres[None, :]) / sigma) ** 2))


def positional_encoding(offset: np.ndarray, num: int = NUM_POSITIONAL) -> np.ndarray:
  """Transformer sinusoidal encoding of the sequence separation [E] -> [E, num]."""
  frequency = np.exp(np.arange(0, num, 2) * -(np.log(10000.0) / num))
  angles = offset[:, None] * frequency[None, :]
  return np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)


def edge_features(x: np.ndarray, senders: np.ndarray, receivers: np.ndarray,
                  chain_key: np.ndarray, segment: np.ndarray, partner: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Edge scalars [E, 36] and vectors [E, 1, 3] (see the module docstring).

  Args:
    x: [N, 3] node coordinates.
    senders, receivers: [E] node indices.
    chain_key: [N] int chain identity (different partners never share one).
    segment: [N] int id of the unbroken chain segment a node lies in.
    partner: [N] int partner of each node, or None.
  """
  vec = x[senders].astype(np.float64) - x[receivers]
  distance = np.linalg.norm(vec, axis=-1)
  same_chain = chain_key[senders] == chain_key[receivers]
  same_segment = segment[senders] == segment[receivers]
  offset = (senders.astype(np.float64) - receivers) * same_chain
  positional = positional_encoding(offset) * same_chain[:, None]
  inter_partner = (partner[senders] != partner[receivers]) if partner is not None else (
      np.zeros_like(same_chain))
  flags = np.stack([same_chain & same_segment, same_chain & ~same_segment, ~same_chain,
                    inter_partner], axis=-1)
  scalars = np.concatenate([rbf(distance), positional, flags], axis=-1).astype(np.float32)
  vectors = _unit(vec)[:, None, :].astype(np.float32)
  return scalars, vectors


def paper_edge_features(x: np.ndarray, senders: np.ndarray, receivers: np.ndarray,
                        cutoff: float = DEFAULT_RADIUS) -> tuple[np.ndarray, np.ndarray]:
  """The paper's edge features (see the module docstring).

  Args:
    x: [N, 3] node coordinates.
    senders, receivers: [E] node indices.
    cutoff: the RBF centres lie evenly on [0, cutoff] (Angstrom).
  Returns:
    scalars [E, 16] Gaussian RBFs of the distance, vectors [E, 1, 3] unit vectors from the
    receiver to the sender (0 for coincident points).
  """
  vec = x[senders].astype(np.float64) - x[receivers]
  distance = np.linalg.norm(vec, axis=-1)
  scalars = rbf(distance, num=PAPER_NUM_RBF, d_max=cutoff).astype(np.float32)
  return scalars, _unit(vec)[:, None, :].astype(np.float32)


def edge_scalar_dim(features: str) -> int:
  """Width of `edges["s"]` for a featurisation ("paper": 16, "rich": 36)."""
  check_features(features)
  return PAPER_EDGE_SCALAR_DIM if features == "paper" else EDGE_SCALAR_DIM


def check_features(features: str) -> str:
  """Returns `features`, or raises ConfigError when it is not one of FEATURES."""
  if features not in FEATURES:
    raise ConfigError(f"graph option features={features!r}: expected one of {FEATURES}")
  return features


def residue_graph(protein: Protein, edges: str = "knn", k: int = 30,
                  radius: float = DEFAULT_RADIUS, max_neighbors: int | None = 32,
                  partner: np.ndarray | None = None,
                  atoms: tuple[np.ndarray, Sequence[str]] | None = None,
                  features: str = "rich") -> jraph.GraphsTuple:
  """A protein (or complex) as one residue graph of numpy arrays.

  Args:
    protein: L residues.
    edges: "knn" (k nearest CA neighbours) or "radius" (CA within `radius`, at most
      `max_neighbors` nearest per residue).
    k: neighbours per residue for "knn".
    radius: cutoff in Angstrom for "radius"; with features="paper" also the RBF range
      [0, radius] of both edge types.
    max_neighbors: cap for "radius" (None: no cap).
    partner: optional [L] int (0/1): which partner of a complex each residue belongs to;
      stored as `nodes["partner"]` (and, with "rich", flagged on inter-partner edges).
    atoms: optional non-protein atoms (e.g. a ligand) as extra nodes: positions [A, 3] and
      element symbols [A]. They get aatype `residues.LIGAND_ATOM`, `nodes["element"]`
      (residues 0), partner 1 (when `partner` is given); with "rich" also zero dihedral and
      vector features, and a chain of their own each (edge flag "different chain").
    features: "paper" or "rich" (see the module docstring).
  Returns:
    GraphsTuple with n_node [1], n_edge [1], globals {}, and
    "rich": nodes {s [L, 6], v [L, 3, 3], x [L, 3], aatype [L]}, edges {s [E, 36], v [E, 1, 3]};
    "paper": nodes {x [L, 3], aatype [L]}, edges {s [E, 16], v [E, 1, 3]};
    (+ nodes partner [L], element [L] when given).
  """
  check_features(features)
  n_res = len(protein)
  x = protein.ca.astype(np.float32)
  n_atoms = 0
  if atoms is not None:
    atom_x = np.asarray(atoms[0], dtype=np.float32).reshape(-1, 3)
    elements = list(atoms[1])
    n_atoms = atom_x.shape[0]
    if len(elements) != n_atoms:
      raise DataError(f"{protein.source}: {len(elements)} elements for {n_atoms} atoms")
    x = np.concatenate([x, atom_x])
  if edges not in ("knn", "radius"):
    raise ConfigError(f"graph option edges={edges!r}: expected 'knn' or 'radius'")
  if (edges == "radius" or features == "paper") and radius <= 0:
    raise ConfigError(f"graph option radius={radius}: must be positive")
  if edges == "knn":
    if k < 1:
      raise ConfigError(f"graph option k={k}: must be at least 1")
    senders, receivers = knn_edges(x, k)
  else:
    senders, receivers = radius_edges(x, radius, max_neighbors)

  if partner is not None:
    partner = np.asarray(partner, dtype=np.int32)
    if partner.shape != (len(protein),):
      raise DataError(f"{protein.source}: partner has shape {partner.shape}, "
                      f"expected ({len(protein)},)")
  if features == "paper":
    edge_s, edge_v = paper_edge_features(x, senders, receivers, cutoff=radius)
    nodes = {"x": x, "aatype": np.concatenate([
        protein.aatype.astype(np.int32), np.full(n_atoms, residues.LIGAND_ATOM, np.int32)])}
    if partner is not None:
      nodes["partner"] = np.concatenate([partner, np.ones(n_atoms, np.int32)])
  else:
    nodes, edge_s, edge_v = _rich_features(protein, x, senders, receivers, partner, n_atoms)
  if atoms is not None:
    nodes["element"] = np.concatenate([
        np.zeros(n_res, np.int32),
        np.array([residues.element_index(e) for e in elements], np.int32)])
  return jraph.GraphsTuple(
      nodes=nodes, edges={"s": edge_s, "v": edge_v}, senders=senders, receivers=receivers,
      n_node=np.array([len(x)], np.int32), n_edge=np.array([len(senders)], np.int32),
      globals={})


def _rich_features(protein: Protein, x: np.ndarray, senders: np.ndarray,
                   receivers: np.ndarray, partner: np.ndarray | None, n_atoms: int
                   ) -> tuple[dict, np.ndarray, np.ndarray]:
  """Node dict and edge scalars / vectors of the "rich" featurisation (L residues followed
  by `n_atoms` atoms in `x`)."""
  n_res = len(protein)
  connected = chain_connected(protein, partner)
  chain_names = protein.chain_id if partner is None else np.char.add(
      partner.astype(str), np.char.add("|", protein.chain_id.astype(str)))
  _, chain_key = np.unique(chain_names, return_inverse=True)
  segment = np.concatenate([[0], np.cumsum(~connected)]) if n_res > 1 else np.zeros(1, int)
  node_s, node_v = node_features(protein, connected)
  aatype = protein.aatype.astype(np.int32)
  if n_atoms:
    own = np.arange(1, n_atoms + 1)  # every atom its own chain and segment
    chain_key = np.concatenate([chain_key, chain_key.max() + own])
    segment = np.concatenate([segment, segment.max() + own])
    if partner is not None:
      partner = np.concatenate([partner, np.ones(n_atoms, np.int32)])
    node_s = np.concatenate([node_s, np.zeros((n_atoms, NODE_SCALAR_DIM), np.float32)])
    node_v = np.concatenate([node_v, np.zeros((n_atoms, NODE_VECTOR_DIM, 3), np.float32)])
    aatype = np.concatenate([aatype, np.full(n_atoms, residues.LIGAND_ATOM, np.int32)])

  edge_s, edge_v = edge_features(x, senders, receivers, chain_key, segment, partner)
  nodes = {"s": node_s, "v": node_v, "x": x, "aatype": aatype}
  if partner is not None:
    nodes["partner"] = partner
  return nodes, edge_s, edge_v


def complex_graph(first: Protein, second: Protein, **graph_options) -> jraph.GraphsTuple:
  """Both partners of a complex in one graph: `nodes["partner"]` 0 for `first`, 1 for
  `second`; with features="rich" edges between them are flagged inter-partner. Options
  (edges, k, radius, max_neighbors, atoms, features) as `residue_graph`."""
  joined = concatenate([first, second])
  partner = np.concatenate([np.zeros(len(first), np.int32), np.ones(len(second), np.int32)])
  return residue_graph(joined, partner=partner, **graph_options)


def with_nodes(graph: jraph.GraphsTuple, **arrays: np.ndarray) -> jraph.GraphsTuple:
  """Returns the graph with extra node arrays (e.g. `lm=[N, D]`, `label=[N]`).

  This is the hook where static per-residue language-model features are attached.
  Raises DataError when an array's first dimension is not the graph's node count.
  """
  n = int(np.sum(graph.n_node))
  nodes = dict(graph.nodes)
  for name, value in arrays.items():
    value = np.asarray(value)
    if value.shape[:1] != (n,):
      raise DataError(f"node array {name!r} has shape {value.shape}; the graph has {n} nodes")
    nodes[name] = value
  return graph._replace(nodes=nodes)


def with_globals(graph: jraph.GraphsTuple, **arrays) -> jraph.GraphsTuple:
  """Returns the single graph with extra per-graph arrays (each stored with a leading [1])."""
  globals_ = dict(graph.globals or {})
  for name, value in arrays.items():
    globals_[name] = np.asarray(value)[None]
  return graph._replace(globals=globals_)
