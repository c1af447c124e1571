"""jaxgeo.metrics.docking on hand-checked cases (no data files needed)."""
import numpy as np
import pytest

from jaxgeo import errors, residues
from jaxgeo.metrics import docking


def _rotation(rng) -> np.ndarray:
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def _chain(rng, n: int, start=(0.0, 0.0, 0.0)) -> np.ndarray:
  """A random walk of CA-like points 3.8 A apart, `[n, 3]`."""
  steps = rng.normal(size=(n, 3))
  steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
  return np.cumsum(steps, axis=0) + np.asarray(start)


def _atom37(rng, ca: np.ndarray, n_side: int = 4):
  """Atom37 arrays around given CAs: backbone N, CA, C, O and a few side-chain atoms."""
  length = ca.shape[0]
  pos = np.zeros((length, residues.NUM_ATOM_TYPES, 3))
  mask = np.zeros((length, residues.NUM_ATOM_TYPES), bool)
  slots = [residues.ATOM_ORDER[a] for a in ("N", "CA", "C", "O", "CB", "CG", "CD", "NE")]
  slots = slots[:4 + n_side]
  offsets = rng.normal(scale=1.2, size=(length, len(slots), 3))
  offsets[:, 1] = 0.0  # CA in its place
  pos[:, slots] = ca[:, None, :] + offsets
  mask[:, slots] = True
  return pos, mask


def _complex(rng, n_rec=60, n_lig=40, gap=6.0):
  """A receptor blob and a ligand blob touching it: atom37 (pos, mask) pairs."""
  rec_ca = rng.normal(scale=6.0, size=(n_rec, 3))
  lig_ca = rng.normal(scale=5.0, size=(n_lig, 3)) + np.array([12.0 + gap, 0.0, 0.0])
  return _atom37(rng, lig_ca), _atom37(rng, rec_ca)


def _move(pos_mask, r=np.eye(3), t=np.zeros(3)):
  pos, mask = pos_mask
  return pos @ r.T + t, mask


def test_atom37_layout_matches_residues():
  assert residues.ATOM_TYPES[:5] == ("N", "CA", "C", "CB", "O")
  assert docking.CA_INDEX == 1
  np.testing.assert_array_equal(docking.BACKBONE_INDICES, [0, 1, 2, 4])


def test_kabsch_recovers_random_rotation():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 3)) * 10
  for _ in range(5):
    r_true = _rotation(rng)
    t_true = rng.normal(size=3) * 20
    y = x @ r_true.T + t_true
    r, t = docking.kabsch(x, y)
    np.testing.assert_allclose(r, r_true, atol=1e-10)
    np.testing.assert_allclose(t, t_true, atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert docking.rmsd(x, y, align=True) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(docking.superpose(x, y), y, atol=1e-9)


def test_kabsch_proper_rotation_for_mirror_images():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(30, 3))
  y = x * np.array([1.0, 1.0, -1.0])  # a reflection is not reachable by a rotation
  r, _ = docking.kabsch(x, y)
  assert np.linalg.det(r) == pytest.approx(1.0)
  assert docking.rmsd(x, y, align=True) > 0.1


def test_kabsch_is_optimal():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(20, 3))
  y = x @ _rotation(rng).T + rng.normal(scale=0.3, size=(20, 3))
  best = docking.rmsd(x, y, align=True)
  r, t = docking.kabsch(x, y)
  for _ in range(20):  # small perturbations of the optimum never do better
    angle = rng.normal(scale=0.02)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    dr = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    moved = docking.apply_transform(x, dr @ r, t + rng.normal(scale=0.02, size=3))
    assert docking.rmsd(moved, y) >= best - 1e-12


def test_rmsd_basics():
  a = np.zeros((4, 3))
  b = a + np.array([3.0, 4.0, 0.0])
  assert docking.rmsd(a, b) == pytest.approx(5.0)
  assert docking.rmsd(a, b, align=True) == pytest.approx(0.0)
  with pytest.raises(errors.DataError):
    docking.rmsd(np.zeros((3, 3)), np.zeros((4, 3)))


def test_complex_rmsd_invariant_to_global_motion():
  rng = np.random.default_rng(3)
  true_lig, true_rec = _chain(rng, 30), _chain(rng, 50, start=(10.0, 0.0, 0.0))
  pred_lig = true_lig + rng.normal(scale=2.0, size=true_lig.shape)
  pred_rec = true_rec + rng.normal(scale=0.5, size=true_rec.shape)
  base = docking.complex_rmsd(pred_lig, pred_rec, true_lig, true_rec)
  base_i = docking.interface_rmsd(pred_lig, pred_rec, true_lig, true_rec)
  assert base > 0.1 and np.isfinite(base_i)
  r, t = _rotation(rng), rng.normal(size=3) * 50
  moved = (pred_lig @ r.T + t, pred_rec @ r.T + t)
  assert docking.complex_rmsd(*moved, true_lig, true_rec) == pytest.approx(base, abs=1e-9)
  assert docking.interface_rmsd(*moved, true_lig, true_rec) == pytest.approx(base_i, abs=1e-9)
  assert docking.complex_rmsd(true_lig, true_rec, true_lig, true_rec) == pytest.approx(0.0,
                                                                                        abs=1e-9)


def test_complex_rmsd_matches_explicit_formula():
  rng = np.random.default_rng(4)
  true_lig, true_rec = rng.normal(size=(10, 3)), rng.normal(size=(15, 3)) + 3
  pred_lig, pred_rec = rng.normal(size=(10, 3)), rng.normal(size=(15, 3))
  pred = np.concatenate([pred_lig, pred_rec])
  true = np.concatenate([true_lig, true_rec])
  # Reference: SVD of the covariance, reflection fixed on the smallest singular vector.
  pc, tc = pred - pred.mean(0), true - true.mean(0)
  u, _, vt = np.linalg.svd(pc.T @ tc)
  r = vt.T @ u.T
  if np.linalg.det(r) < 0:
    r = vt.T @ np.diag([1, 1, -1]) @ u.T
  expected = np.sqrt(np.mean(np.sum((pc @ r.T - tc) ** 2, axis=1)))
  assert docking.complex_rmsd(pred_lig, pred_rec, true_lig, true_rec) == pytest.approx(expected)


def test_equidock_interface_counts_pairs():
  true_lig = np.array([[0.0, 0, 0], [20.0, 0, 0]])
  true_rec = np.array([[5.0, 0, 0], [0.0, 7.9, 0], [0.0, 8.1, 0]])
  li, ri = docking.equidock_interface(true_lig, true_rec)
  np.testing.assert_array_equal(li, [0, 0])
  np.testing.assert_array_equal(ri, [0, 1])
  # Interface RMSD uses ligand CA 0 twice and receptor CAs 0, 1: moving only ligand CA 1
  # (not at the interface) leaves it unchanged.
  pred_lig = true_lig.copy()
  pred_lig[1] += 30.0
  assert docking.interface_rmsd(pred_lig, true_rec, true_lig, true_rec) == pytest.approx(0.0,
                                                                                         abs=1e-9)
  far = true_lig + 100.0
  assert np.isnan(docking.interface_rmsd(far, true_rec, far, true_rec))


def test_ligand_rmsd_of_shift():
  rng = np.random.default_rng(5)
  lig = _chain(rng, 25)
  shift = np.array([1.0, 2.0, 2.0])  # |shift| = 3
  assert docking.ligand_rmsd(lig + shift, lig) == pytest.approx(3.0)


def test_residue_distances_brute_force():
  rng = np.random.default_rng(6)
  (lp, lm), (rp, rm) = _complex(rng, n_rec=30, n_lig=25, gap=2.0)
  lm[3, 5:] = False  # some residues with fewer atoms
  lm[4] = False  # a residue with no atom at all
  d = docking.residue_distances(lp, lm, rp, rm, cutoff=10.0)
  brute = np.full(d.shape, np.inf)
  for i in range(lp.shape[0]):
    for j in range(rp.shape[0]):
      a, b = lp[i][lm[i]], rp[j][rm[j]]
      if len(a) and len(b):
        brute[i, j] = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min()
  close = brute < 10.0
  assert close.sum() > 10
  np.testing.assert_allclose(d[close], brute[close])
  assert np.all(d[~close] >= 10.0)
  assert np.all(np.isinf(d[4]))


def test_dockq_identity_is_one():
  rng = np.random.default_rng(7)
  lig, rec = _complex(rng)
  result = docking.dockq(lig, rec, lig, rec)
  assert result.n_native_contacts > 0
  assert result.fnat == 1.0 and result.fnonnat == 0.0
  assert result.irmsd == pytest.approx(0.0, abs=1e-9)
  assert result.lrmsd == pytest.approx(0.0, abs=1e-9)
  assert result.dockq == pytest.approx(1.0)
  assert result.quality == "high"
  # A global rigid motion of the model changes nothing.
  r, t = _rotation(rng), np.array([40.0, -3.0, 8.0])
  moved = docking.dockq(_move(lig, r, t), _move(rec, r, t), lig, rec)
  assert moved.dockq == pytest.approx(1.0)
  assert moved.irmsd == pytest.approx(0.0, abs=1e-9)


def test_dockq_far_ligand_is_zero():
  rng = np.random.default_rng(8)
  lig, rec = _complex(rng)
  far = _move(lig, t=np.array([500.0, 0.0, 0.0]))
  result = docking.dockq(far, rec, lig, rec)
  assert result.fnat == 0.0
  assert result.n_model_contacts == 0
  assert result.lrmsd == pytest.approx(500.0, rel=1e-6)
  assert result.irmsd > 50.0
  assert result.dockq < 0.01
  assert result.quality == "incorrect"


@pytest.mark.parametrize("d", [0.5, 2.0, 7.0])
def test_rigid_shift_of_ligand_gives_lrmsd_d(d):
  rng = np.random.default_rng(9)
  lig, rec = _complex(rng)
  direction = rng.normal(size=3)
  shift = d * direction / np.linalg.norm(direction)
  result = docking.dockq(_move(lig, t=shift), rec, lig, rec)
  assert result.lrmsd == pytest.approx(d, abs=1e-9)
  assert 0.0 < result.irmsd < d
  assert result.dockq == pytest.approx(docking.dockq_score(result.fnat, result.irmsd, d))
  assert docking.capri_lrmsd(_move(lig, t=shift), rec, lig, rec) == pytest.approx(d)
  assert docking.capri_irmsd(_move(lig, t=shift), rec, lig, rec) == pytest.approx(result.irmsd)
  assert docking.fnat(_move(lig, t=shift), rec, lig, rec) == pytest.approx(result.fnat)


def test_lrmsd_superposes_on_the_larger_partner():
  rng = np.random.default_rng(10)
  lig, rec = _complex(rng, n_rec=30, n_lig=60)  # the "ligand" is larger
  shift = np.array([0.0, 3.0, 0.0])
  result = docking.dockq(_move(lig, t=shift), rec, lig, rec)
  assert result.lrmsd_receptor == "ligand"
  assert result.lrmsd == pytest.approx(3.0)  # the smaller partner moved by 3 relative
  given = docking.dockq(_move(lig, t=shift), rec, lig, rec, receptor="given")
  assert given.lrmsd_receptor == "receptor"
  assert given.lrmsd == pytest.approx(3.0)


def test_fnat_counts_contacts_by_hand():
  """Two one-atom-per-residue partners, contacts checked by hand."""
  def partner(points):
    pos = np.zeros((len(points), residues.NUM_ATOM_TYPES, 3))
    mask = np.zeros((len(points), residues.NUM_ATOM_TYPES), bool)
    pos[:, 1] = points
    mask[:, 1] = True
    return pos, mask
  native_rec = partner([[0.0, 0, 0], [10.0, 0, 0]])
  native_lig = partner([[4.0, 0, 0], [10.0, 4.5, 0], [30.0, 0, 0]])  # contacts (0,0), (1,1)
  model_lig = partner([[4.0, 0, 0], [10.0, 6.0, 0], [14.0, 0, 0]])  # keeps (0,0), adds (2,1)
  result = docking.dockq(model_lig, native_rec, native_lig, native_rec)
  assert result.n_native_contacts == 2
  assert result.n_model_contacts == 2
  assert result.n_shared_contacts == 1
  assert result.fnat == pytest.approx(0.5)
  assert result.fnonnat == pytest.approx(0.5)


def test_only_atoms_present_in_both_count():
  rng = np.random.default_rng(11)
  lig, rec = _complex(rng)
  model_pos, model_mask = lig[0].copy(), lig[1].copy()
  model_pos[:, 4] += 50.0  # a wild O everywhere ...
  model_mask[:, 4] = False  # ... but absent from the model: ignored
  result = docking.dockq((model_pos, model_mask), rec, lig, rec)
  assert result.lrmsd == pytest.approx(0.0, abs=1e-9)
  assert result.irmsd == pytest.approx(0.0, abs=1e-9)


def test_native_without_contacts_gives_nan():
  rng = np.random.default_rng(12)
  lig, rec = _complex(rng)
  far = _move(lig, t=np.array([300.0, 0, 0]))
  result = docking.dockq(far, rec, far, rec)
  assert result.n_native_contacts == 0
  assert np.isnan(result.fnat) and np.isnan(result.dockq)


def test_input_errors():
  rng = np.random.default_rng(13)
  lig, rec = _complex(rng)
  short = (lig[0][:-1], lig[1][:-1])
  with pytest.raises(errors.DataError, match="1:1"):
    docking.dockq(short, rec, lig, rec)
  with pytest.raises(errors.DataError):
    docking.dockq((lig[0][:, :14], lig[1][:, :14]), rec, lig, rec)
  with pytest.raises(errors.ConfigError):
    docking.dockq(lig, rec, lig, rec, receptor="biggest")


class _FakeProtein:
  """The attributes of jaxgeo.structure.Protein that the wrappers use."""

  def __init__(self, pos, mask, chain="A", numbers=None, sequence=None, source="fake"):
    n = pos.shape[0]
    self.atom_positions, self.atom_mask = pos.astype(np.float32), mask
    self.chain_id = np.array([chain] * n)
    self.residue_number = np.arange(1, n + 1) if numbers is None else np.asarray(numbers)
    self.insertion_code = np.array([""] * n)
    self.sequence = sequence or "A" * n
    self.source = source

  @property
  def ca(self):
    return self.atom_positions[:, 1]


def test_protein_wrappers_and_residue_matching():
  rng = np.random.default_rng(14)
  lig, rec = _complex(rng)
  native_lig, native_rec = _FakeProtein(*lig, chain="B"), _FakeProtein(*rec)
  # A model ligand missing its first two residues: paired by (chain, number, icode).
  model_lig = _FakeProtein(lig[0][2:], lig[1][2:], chain="B",
                           numbers=np.arange(3, lig[0].shape[0] + 1))
  match = docking.match_residues(model_lig, native_lig)
  assert match.method == "key" and match.n_matched == lig[0].shape[0] - 2
  np.testing.assert_array_equal(match.native_index, np.arange(2, lig[0].shape[0]))
  result = docking.dockq_proteins(model_lig, native_rec, native_lig, native_rec)
  assert result.lrmsd == pytest.approx(0.0, abs=1e-4)
  assert docking.match_residues(native_lig, native_lig).method == "order"
  rmsds = docking.equidock_rmsds_proteins(native_lig, native_rec, native_lig, native_rec)
  assert rmsds["complex_rmsd"] == pytest.approx(0.0, abs=1e-4)
  assert rmsds["interface_rmsd"] == pytest.approx(0.0, abs=1e-4)
