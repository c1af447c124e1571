"""Residue graphs: exact features, invariance/equivariance, kNN/radius vs brute force."""
import numpy as np
import pytest

from jaxgeo import graph, residues, testing
from jaxgeo.errors import ConfigError, DataError


def random_rotation(rng):
  q, r = np.linalg.qr(rng.standard_normal((3, 3)))
  q *= np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] *= -1
  return q


def moved(protein, rotation, translation):
  import dataclasses
  f = lambda x: (x @ rotation.T + translation).astype(np.float32)
  return dataclasses.replace(protein, backbone=f(protein.backbone), cb=f(protein.cb),
                             atom_positions=f(protein.atom_positions))


def test_dihedrals_recovered_from_ideal_backbone():
  rng = np.random.default_rng(0)
  phi, psi = rng.uniform(-np.pi, np.pi, (2, 25))
  omega = np.pi + 0.1 * rng.standard_normal(25)
  p = testing.make_protein("A" * 25, testing.ideal_backbone(phi, psi, omega))
  g = graph.residue_graph(p)
  s = g.nodes["s"]
  angle = np.arctan2(s[:, :3], s[:, 3:])
  wrap = lambda a: np.abs(np.angle(np.exp(1j * a)))
  assert wrap(angle[1:, 0] - phi[1:]).max() < 1e-4
  assert wrap(angle[:-1, 1] - psi[:-1]).max() < 1e-4
  assert wrap(angle[:-1, 2] - omega[:-1]).max() < 1e-4
  # Undefined at the chain ends: all-zero sin and cos.
  assert np.all(s[0, [0, 3]] == 0) and np.all(s[-1, [1, 2, 4, 5]] == 0)


def test_features_invariant_and_equivariant_under_rigid_motion():
  rng = np.random.default_rng(1)
  p = testing.random_protein(80, rng, chains=2)
  rot, shift = random_rotation(rng), rng.normal(size=3) * 20
  g1 = graph.residue_graph(p, k=10)
  g2 = graph.residue_graph(moved(p, rot, shift), k=10)
  np.testing.assert_array_equal(g1.senders, g2.senders)
  np.testing.assert_array_equal(g1.receivers, g2.receivers)
  np.testing.assert_allclose(g1.nodes["s"], g2.nodes["s"], atol=1e-4)
  np.testing.assert_allclose(g1.edges["s"], g2.edges["s"], atol=1e-4)
  np.testing.assert_allclose(g1.nodes["v"] @ rot.T, g2.nodes["v"], atol=1e-4)
  np.testing.assert_allclose(g1.edges["v"] @ rot.T, g2.edges["v"], atol=1e-4)
  np.testing.assert_allclose(g1.nodes["x"] @ rot.T + shift, g2.nodes["x"], atol=1e-3)


def test_shapes_and_sorted_edges():
  p = testing.random_protein(50, np.random.default_rng(2))
  g = graph.residue_graph(p, k=30)
  assert g.nodes["s"].shape == (50, graph.NODE_SCALAR_DIM)
  assert g.nodes["v"].shape == (50, graph.NODE_VECTOR_DIM, 3)
  assert g.edges["s"].shape == (50 * 30, graph.EDGE_SCALAR_DIM)
  assert g.edges["v"].shape == (50 * 30, 1, 3)
  assert np.all(np.diff(g.receivers) >= 0)
  assert not np.any(g.senders == g.receivers)
  assert g.nodes["aatype"].dtype == np.int32 and g.n_node.tolist() == [50]


def brute_force_knn(x, k):
  d = np.linalg.norm(x[:, None] - x[None], axis=-1)
  np.fill_diagonal(d, np.inf)
  pairs = set()
  for i in range(len(x)):
    for j in np.argsort(d[i], kind="stable")[:min(k, len(x) - 1)]:
      pairs.add((int(j), i))
  return pairs


@pytest.mark.parametrize("n,k", [(1, 5), (7, 30), (60, 5), (3000, 30)])
def test_knn_matches_brute_force(n, k):
  x = np.random.default_rng(n).normal(scale=20, size=(n, 3))
  senders, receivers = graph.knn_edges(x, k)
  if n < 3000:
    assert set(zip(senders.tolist(), receivers.tolist())) == brute_force_knn(x, k)
  else:  # chunked path: check a sample of receivers
    d = np.linalg.norm(x[:50, None] - x[None], axis=-1)
    for i in range(50):
      d[i, i] = np.inf
      expected = set(np.argsort(d[i])[:k].tolist())
      assert set(senders[receivers == i].tolist()) == expected
  assert np.all(np.bincount(receivers, minlength=n) == min(k, n - 1))


def test_radius_graph_with_cap():
  x = np.random.default_rng(3).normal(scale=6, size=(200, 3))
  senders, receivers = graph.radius_edges(x, 8.0, None)
  d = np.linalg.norm(x[:, None] - x[None], axis=-1)
  expected = {(j, i) for i in range(200) for j in range(200) if i != j and d[i, j] < 8.0}
  assert set(zip(senders.tolist(), receivers.tolist())) == expected
  capped_s, capped_r = graph.radius_edges(x, 8.0, 5)
  assert np.bincount(capped_r, minlength=200).max() <= 5
  for i in range(200):
    mine = capped_s[capped_r == i]
    within = np.sort(d[i][(d[i] < 8.0) & (np.arange(200) != i)])
    np.testing.assert_allclose(np.sort(d[i, mine]), within[:5])


def test_chain_breaks_and_partner_flags():
  rng = np.random.default_rng(4)
  a = testing.random_protein(20, rng)
  bb = a.backbone.copy()
  bb[10:] += np.array([30.0, 0, 0], np.float32)  # a break between residues 9 and 10
  broken = testing.make_protein(a.sequence, bb)
  g = graph.residue_graph(broken, k=19)
  flags = g.edges["s"][:, -4:]
  across = (g.senders < 10) != (g.receivers < 10)
  assert np.all(flags[across, 1] == 1) and np.all(flags[~across, 0] == 1)
  assert np.all(g.nodes["v"][9, 0] == 0) and np.all(g.nodes["v"][10, 1] == 0)
  b = testing.random_protein(15, rng)
  c = graph.complex_graph(a, b, k=10)
  partner = c.nodes["partner"]
  inter = partner[c.senders] != partner[c.receivers]
  np.testing.assert_array_equal(c.edges["s"][:, -1], inter)
  # Same chain id "A" in both partners still counts as different chains.
  assert np.all(c.edges["s"][inter, -2] == 1)
  assert np.all(c.edges["s"][inter, graph.NUM_RBF:graph.NUM_RBF + graph.NUM_POSITIONAL] == 0)


def test_atoms_as_extra_nodes():
  p = testing.random_protein(30, np.random.default_rng(5))
  atoms = p.ca[:3] + 1.0
  g = graph.residue_graph(p, k=8, atoms=(atoms, ["C", "N", "Zn"]))
  assert g.n_node.tolist() == [33]
  assert g.nodes["aatype"][-3:].tolist() == [residues.LIGAND_ATOM] * 3
  assert g.nodes["element"][-3:].tolist() == [residues.element_index(e) for e in "C N Zn".split()]
  assert np.all(g.nodes["element"][:30] == 0)
  np.testing.assert_array_equal(g.nodes["s"][-3:], 0)
  with pytest.raises(DataError):
    graph.residue_graph(p, atoms=(atoms, ["C"]))


def test_with_nodes_checks_length_and_bad_options():
  p = testing.random_protein(12, np.random.default_rng(6))
  g = graph.residue_graph(p, k=4)
  g2 = graph.with_nodes(g, lm=np.ones((12, 5), np.float32))
  assert g2.nodes["lm"].shape == (12, 5) and "lm" not in g.nodes
  with pytest.raises(DataError, match="lm"):
    graph.with_nodes(g, lm=np.ones((11, 5)))
  with pytest.raises(ConfigError, match="edges='grid'"):
    graph.residue_graph(p, edges="grid")
  with pytest.raises(ConfigError, match="k=0"):
    graph.residue_graph(p, k=0)


# The paper's featurisation ---------------------------------------------------------------

def _reference_rbf(distance, d_min=0.0, d_max=20.0, count=16):
  """The GGNN-meets-PLM code's `_rbf`, written again here: centres linspace(d_min, d_max,
  count), width (d_max - d_min) / count."""
  mu = np.linspace(d_min, d_max, count)[None, :]
  sigma = (d_max - d_min) / count
  return np.exp(-(((distance[:, None]) - mu) / sigma) ** 2)


def _reference_edge_features(coords, senders, receivers, d_max):
  """The paper's `_edge_features`: RBF(|x_j - x_i|) on [0, d_max] and (x_j - x_i) / |..|,
  with PyG's edge_index = (source j, target i)."""
  vectors = coords[senders] - coords[receivers]
  length = np.linalg.norm(vectors, axis=-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    unit = np.nan_to_num(vectors / length[:, None])
  return _reference_rbf(length, d_max=d_max), unit[:, None, :]


def _protein_with_ca(ca):
  """A protein whose CA atoms are `ca` [L, 3] (backbone atoms placed beside them)."""
  ca = np.asarray(ca, np.float32)
  offsets = np.array([[-1.2, 0.5, 0.0], [0, 0, 0], [1.3, 0.4, 0.0], [1.9, 1.4, 0.0]],
                     np.float32)
  return testing.make_protein("ACDEFG"[:len(ca)], ca[:, None, :] + offsets[None])


@pytest.mark.parametrize("edges,radius", [("radius", 8.0), ("knn", 8.0), ("radius", 6.0)])
def test_paper_features_equal_the_papers_rbf(edges, radius):
  """Hand-built CA positions (distances 3.8, 5.0, 7.9, ...): the "paper" edge scalars are
  the paper's 16 RBFs on [0, cutoff] and the vectors its unit directions."""
  ca = np.array([[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [3.8, 5.0, 0.0], [0.0, 0.0, 7.9],
                 [11.0, 0.0, 0.0]])
  p = _protein_with_ca(ca)
  g = graph.residue_graph(p, edges=edges, k=3, radius=radius, features="paper")
  assert set(g.nodes) == {"x", "aatype"} and set(g.edges) == {"s", "v"}
  assert g.edges["s"].shape == (len(g.senders), graph.PAPER_EDGE_SCALAR_DIM) == (
      len(g.senders), 16)
  assert g.edges["v"].shape == (len(g.senders), 1, 3)
  ref_s, ref_v = _reference_edge_features(ca, g.senders, g.receivers, d_max=radius)
  np.testing.assert_allclose(g.edges["s"], ref_s, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g.edges["v"], ref_v, atol=1e-6)
  d = np.linalg.norm(ca[g.senders] - ca[g.receivers], axis=-1)
  if edges == "radius":
    assert np.all(d < radius) and len(g.senders) == np.sum(
        (np.linalg.norm(ca[:, None] - ca[None], axis=-1) < radius)) - len(ca)
  # Each edge's largest RBF is at the centre (k * cutoff / 15) nearest its distance; kNN
  # edges longer than the cutoff peak at the last centre.
  nearest = np.clip(np.rint(d / (radius / 15)), 0, 15)
  np.testing.assert_array_equal(np.argmax(g.edges["s"], axis=1), nearest)
  if edges == "knn":
    assert d.max() > radius  # the 11 A residue's edges: beyond the cutoff


def _permuted(protein, order):
  """The protein with its residues in another order (every per-residue field)."""
  import dataclasses
  n = len(protein)
  changes = {}
  for field in dataclasses.fields(protein):
    value = getattr(protein, field.name)
    if isinstance(value, np.ndarray) and value.shape[:1] == (n,):
      changes[field.name] = value[order]
  changes["sequence"] = "".join(protein.sequence[i] for i in order)
  return dataclasses.replace(protein, **changes)


def _as_node_sets(g, order=None):
  """Edges as a sorted list of (sender, receiver, features) in original residue numbering,
  and per-node features in original numbering."""
  n = int(g.n_node[0])
  to_original = np.arange(n) if order is None else np.asarray(order)
  s, r = to_original[g.senders], to_original[g.receivers]
  key = np.lexsort((s, r))
  edges = (s[key], r[key], g.edges["s"][key], g.edges["v"][key])
  inverse = np.argsort(to_original)
  nodes = {name: value[inverse] for name, value in g.nodes.items()}
  return edges, nodes


@pytest.mark.parametrize("edges", ["knn", "radius"])
def test_paper_graph_does_not_depend_on_residue_order(edges):
  """Shuffling the residues gives the same graph up to that node permutation (nothing in
  it depends on the chain order); the "rich" features, by design, do depend on it."""
  rng = np.random.default_rng(7)
  a, b = testing.random_protein(30, rng, chains=2), testing.random_protein(12, rng)
  order = rng.permutation(len(a))
  for features in ("paper", "rich"):
    g = graph.complex_graph(a, b, edges=edges, k=8, features=features)
    shuffled = graph.complex_graph(_permuted(a, order), b, edges=edges, k=8,
                                   features=features)
    full_order = np.concatenate([order, len(a) + np.arange(len(b))])
    (s1, r1, es1, ev1), nodes1 = _as_node_sets(g)
    (s2, r2, es2, ev2), nodes2 = _as_node_sets(shuffled, full_order)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(ev1, ev2, atol=1e-6)
    same = np.allclose(es1, es2, atol=1e-6) and all(
        np.allclose(nodes1[k], nodes2[k], atol=1e-6) for k in nodes1)
    if features == "paper":
      assert set(g.nodes) == {"x", "aatype", "partner"}
      assert same, "a paper-featurised graph changed with the residue order"
    else:
      assert not same, "rich features are expected to see the chain order"


def test_paper_features_with_atoms_and_bad_option():
  p = testing.random_protein(20, np.random.default_rng(8))
  atoms = p.ca[:2] + 1.5
  g = graph.residue_graph(p, k=6, atoms=(atoms, ["C", "O"]), features="paper")
  assert set(g.nodes) == {"x", "aatype", "element"}
  assert g.nodes["aatype"][-2:].tolist() == [residues.LIGAND_ATOM] * 2
  assert graph.edge_scalar_dim("paper") == 16 and graph.edge_scalar_dim("rich") == 36
  with pytest.raises(ConfigError, match="features='gvp'"):
    graph.residue_graph(p, features="gvp")
  with pytest.raises(ConfigError, match="features='gvp'"):
    graph.edge_scalar_dim("gvp")
  with pytest.raises(ConfigError, match="radius=0"):
    graph.residue_graph(p, edges="knn", radius=0.0, features="paper")
