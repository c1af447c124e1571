"""Generated proteins and graphs for the networks' tests and benchmarks.

`random_protein` builds a plausible-looking backbone (a persistent random walk of CA atoms
3.8 A apart, N and C placed along the chain so that consecutive residues are bonded), and
`random_graph` turns it into a `jaxgeo.graph.residue_graph`, optionally with ligand atoms and
language-model vectors. Nothing here is used by the networks themselves.
"""
from __future__ import annotations

from collections.abc import Sequence

import jraph
import numpy as np

from jaxgeo import batching, graph as graph_lib, residues
from jaxgeo.structure import Protein, virtual_cb


def random_protein(rng: np.random.Generator, length: int, num_chains: int = 1,
                   source: str = "synthetic") -> Protein:
  """A protein of `length` residues split into `num_chains` chains."""
  step = rng.normal(size=(length, 3))
  for i in range(1, length):  # persistence: a compact, chain-like walk
    step[i] = 0.6 * step[i - 1] / np.linalg.norm(step[i - 1]) + rng.normal(size=3) * 0.8
  step /= np.linalg.norm(step, axis=-1, keepdims=True)
  ca = np.cumsum(3.8 * step, axis=0)
  direction = np.concatenate([step[1:], step[-1:]])                     # towards next CA
  side = rng.normal(size=(length, 3))
  side -= np.sum(side * direction, -1, keepdims=True) * direction
  side /= np.linalg.norm(side, axis=-1, keepdims=True)
  n = ca - 1.2 * step + 0.8 * side
  c = ca + 1.3 * direction + 0.6 * np.cross(direction, side)
  o = c + 1.2 * side
  backbone = np.stack([n, ca, c, o], axis=1).astype(np.float32)
  cb = virtual_cb(n, ca, c).astype(np.float32)
  atom_positions = np.zeros((length, residues.NUM_ATOM_TYPES, 3), np.float32)
  atom_positions[:, residues.BACKBONE_INDICES] = backbone
  atom_mask = np.zeros((length, residues.NUM_ATOM_TYPES), bool)
  atom_mask[:, residues.BACKBONE_INDICES] = True
  aatype = rng.integers(0, 20, size=length).astype(np.int32)
  chain_id = np.array([chr(ord("A") + i) for i in np.sort(rng.integers(0, num_chains, length))]
                      if num_chains > 1 else ["A"] * length)
  return Protein(
      aatype=aatype, sequence="".join(residues.RESTYPES[a] for a in aatype),
      chain_id=chain_id, residue_number=np.arange(1, length + 1, dtype=np.int32),
      insertion_code=np.array([""] * length), backbone=backbone,
      backbone_mask=np.ones((length, 4), bool), cb=cb, atom_positions=atom_positions,
      atom_mask=atom_mask, source=source)


def random_graph(rng: np.random.Generator, length: int, lm_dim: int = 0,
                 num_ligand_atoms: int = 0, edges: str = "knn", k: int = 10,
                 radius: float = 8.0, max_neighbors: int = 32, label_dim: int = 0,
                 features: str = "rich") -> jraph.GraphsTuple:
  """A residue graph of a random protein (+ ligand atoms near it) of featurisation
  `features` ("rich" or "paper"), with `element` [N] always, `lm` [N, lm_dim] (zeros on
  ligand atoms) and node / graph labels of width `label_dim` when asked."""
  protein = random_protein(rng, length)
  atoms = None
  if num_ligand_atoms:
    centre = protein.ca[rng.integers(0, length)]
    positions = centre + rng.normal(size=(num_ligand_atoms, 3)) * 2.0
    elements = rng.choice(["C", "N", "O", "S", "Cl", "Zn"], size=num_ligand_atoms)
    atoms = (positions.astype(np.float32), list(elements))
  g = graph_lib.residue_graph(protein, edges=edges, k=k, radius=radius,
                              max_neighbors=max_neighbors, atoms=atoms, features=features)
  n = int(g.n_node[0])
  extra = {}
  if "element" not in g.nodes:  # same node keys whether or not a graph has ligand atoms
    extra["element"] = np.zeros(n, np.int32)
  if lm_dim:
    lm = rng.normal(size=(n, lm_dim)).astype(np.float32)
    lm[length:] = 0.0
    extra["lm"] = lm
  if label_dim:
    extra["label"] = rng.normal(size=(n, label_dim)).astype(np.float32)
  if extra:
    g = graph_lib.with_nodes(g, **extra)
  if label_dim:
    g = graph_lib.with_globals(g, label=rng.normal(size=(label_dim,)).astype(np.float32))
  return g


def pad_batch(graphs: Sequence[jraph.GraphsTuple], extra_nodes: int = 1, extra_edges: int = 0,
              extra_graphs: int = 1) -> jraph.GraphsTuple:
  """Batches graphs and pads to (real + extra) nodes / edges / graphs (numpy)."""
  nodes, edges = batching.graph_sizes(graphs)
  bucket = batching.Bucket(int(nodes.sum()) + extra_nodes, int(edges.sum()) + extra_edges,
                           len(graphs) + extra_graphs)
  return batching.pad(list(graphs), bucket)
