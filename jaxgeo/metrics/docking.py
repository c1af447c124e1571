"""Docking metrics on the host (numpy): superposition, EquiDock's RMSDs, CAPRI / DockQ.

Superposition: `kabsch(mobile, target)` returns the proper rotation (det = +1) and
translation minimising the RMSD of `mobile @ R.T + t` to `target` (`jaxgeo.geometry`'s
Kabsch, with the inputs checked here).

EquiDock's metrics (Ganea et al., ICLR 2022), on CA coordinates, as its evaluation script
(`src/test_all_methods/eval_pdb_outputset.py` of octavian-ganea/equidock_public) computes them:
- `complex_rmsd`: the predicted complex (ligand CAs then receptor CAs) superposed on the
  true complex, RMSD over all CAs.
- `interface_rmsd`: the same on the interface only. The interface is every (ligand,
  receptor) CA pair closer than 8 A in the *true* complex; each pair contributes its ligand
  CA and its receptor CA, so a residue in k pairs is counted k times (EquiDock indexes the
  coordinates with the pair lists; we keep that weighting so that the numbers match).
- `ligand_rmsd`: RMSD of the ligand CAs without superposition (the receptor stays fixed in
  EquiDock's setting).

CAPRI quantities and DockQ (Basu & Wallner, PLoS One 2016; as bjornwallner/DockQ computes
them) on heavy atoms. Inputs are atom37 arrays per partner: `positions [L, 37, 3]` and
`mask [L, 37]` (`jaxgeo.residues.ATOM_TYPES` order: N, CA, C, CB, O, ...; heavy atoms only),
given as a `(positions, mask)` tuple or any object with `.atom_positions` / `.atom_mask`
(e.g. `jaxgeo.structure.Protein`). Model and native residues must correspond 1:1 (same
count and order in each partner; align them first, e.g. with `match_residues`).
- Residue contact: some heavy-atom pair closer than 5 A (each structure on its own atoms).
- `fnat`: the fraction of the native's ligand-receptor residue contacts found in the model;
  `fnonnat`: the fraction of the model's contacts that are not native.
- Interface residues: residues with a heavy atom closer than 10 A to the partner in the
  native. `capri_irmsd`: the model's backbone atoms (N, CA, C, O) of the interface residues
  superposed on the native's, RMSD.
- `capri_lrmsd`: the model superposed on the native on the receptor's backbone atoms; RMSD
  of the ligand's backbone atoms. As DockQ, the receptor is by default the partner with
  more residues (`receptor="larger"`; ties keep the given receptor); `receptor="given"`
  always superposes on the given receptor.
- DockQ = (fnat + 1 / (1 + (irmsd / 1.5)^2) + 1 / (1 + (lrmsd / 8.5)^2)) / 3.
Backbone atoms enter an RMSD only where both the model and the native have them. A native
without any contact gives nan for fnat and DockQ.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from jaxgeo import errors
from jaxgeo import geometry
from jaxgeo import residues

CA_INDEX = residues.ATOM_ORDER["CA"]
BACKBONE_INDICES = np.asarray(residues.BACKBONE_INDICES)  # N, CA, C, O
EQUIDOCK_INTERFACE_CUTOFF = 8.0
FNAT_CUTOFF = 5.0
INTERFACE_CUTOFF = 10.0
DOCKQ_IRMSD_SCALE = 1.5
DOCKQ_LRMSD_SCALE = 8.5
_PAIR_CHUNK = 8192


# ------------------------------------------------------------------ superposition


def _coords(x, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2 or x.shape[1] != 3:
    raise errors.DataError(f"metrics: {name} must be [N, 3] coordinates, got shape {x.shape}")
  return x


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
  if a.shape != b.shape:
    raise errors.DataError(
        f"metrics: {what}: {a.shape[0]} vs {b.shape[0]} points; the residues of model and "
        "native must correspond 1:1")


def _complex_coords(pred_lig, pred_rec, true_lig, true_rec) -> tuple[np.ndarray, ...]:
  """The four CA coordinate arrays of a predicted and a true complex, checked: each [n, 3],
  the predicted ligand / receptor shaped as the true ones."""
  arrays = tuple(_coords(x, name) for x, name in zip(
      (pred_lig, pred_rec, true_lig, true_rec), ("pred_lig", "pred_rec", "true_lig", "true_rec")))
  _same_shape(arrays[0], arrays[2], "ligand")
  _same_shape(arrays[1], arrays[3], "receptor")
  return arrays


def kabsch(mobile, target) -> tuple[np.ndarray, np.ndarray]:
  """Optimal rigid superposition of `mobile` onto `target` (Kabsch), rotation proper.

  Args:
    mobile: `[N, 3]` coordinates to move.
    target: `[N, 3]` coordinates to match (row i of mobile corresponds to row i of target).
  Returns:
    (R `[3, 3]` with det(R) = +1, t `[3]`) minimising |mobile @ R.T + t - target|.
  """
  mobile = _coords(mobile, "mobile")
  target = _coords(target, "target")
  _same_shape(mobile, target, "kabsch")
  if mobile.shape[0] == 0:
    raise errors.DataError("metrics: kabsch needs at least one point")
  return geometry.kabsch(mobile, target)


def apply_transform(x, r: np.ndarray, t: np.ndarray) -> np.ndarray:
  """`x @ r.T + t` for `x [N, 3]`."""
  return geometry.apply_transform(x, r, t)


def superpose(mobile, target) -> np.ndarray:
  """`mobile [N, 3]` moved onto `target [N, 3]` by `kabsch`; returns `[N, 3]` float64."""
  r, t = kabsch(mobile, target)
  return apply_transform(mobile, r, t)


def rmsd(a, b, align: bool = False) -> float:
  """Root mean square deviation of `a [N, 3]` and `b [N, 3]` (row i to row i).

  Args:
    a: `[N, 3]` coordinates (moved onto `b` first when `align`).
    b: `[N, 3]` coordinates.
    align: superpose `a` on `b` (Kabsch) before measuring.
  Returns:
    RMSD in the unit of the coordinates; nan for N = 0.
  """
  a = _coords(a, "a")
  b = _coords(b, "b")
  _same_shape(a, b, "rmsd")
  return geometry.rmsd(a, b, align=align)


# ------------------------------------------------------------------ EquiDock (CA atoms)


def equidock_interface(true_lig, true_rec,
                       cutoff: float = EQUIDOCK_INTERFACE_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
  """EquiDock's interface: the (ligand, receptor) CA pairs closer than `cutoff` in the truth.

  Args:
    true_lig: `[Nl, 3]` true ligand CA coordinates.
    true_rec: `[Nr, 3]` true receptor CA coordinates.
    cutoff: distance in A (EquiDock: 8).
  Returns:
    (ligand indices `[P]`, receptor indices `[P]`), one entry per pair, in row-major order.
  """
  lig = _coords(true_lig, "true_lig")
  rec = _coords(true_rec, "true_rec")
  d2 = _pairwise_sq_distances(lig, rec)
  li, ri = np.nonzero(d2 < cutoff * cutoff)
  return li, ri


def complex_rmsd(pred_lig, pred_rec, true_lig, true_rec) -> float:
  """EquiDock's complex RMSD: Kabsch of the predicted complex onto the true one, CA RMSD.

  Args:
    pred_lig: `[Nl, 3]` predicted ligand CA coordinates.
    pred_rec: `[Nr, 3]` predicted receptor CA coordinates.
    true_lig: `[Nl, 3]` true ligand CA coordinates.
    true_rec: `[Nr, 3]` true receptor CA coordinates.
  """
  pred_lig, pred_rec, true_lig, true_rec = _complex_coords(pred_lig, pred_rec, true_lig,
                                                          true_rec)
  return rmsd(np.concatenate([pred_lig, pred_rec]), np.concatenate([true_lig, true_rec]),
              align=True)


def interface_rmsd(pred_lig, pred_rec, true_lig, true_rec,
                   cutoff: float = EQUIDOCK_INTERFACE_CUTOFF) -> float:
  """EquiDock's interface RMSD (CA pairs closer than 8 A in the truth; see module notes).

  Args:
    pred_lig: `[Nl, 3]` predicted ligand CA coordinates.
    pred_rec: `[Nr, 3]` predicted receptor CA coordinates.
    true_lig: `[Nl, 3]` true ligand CA coordinates.
    true_rec: `[Nr, 3]` true receptor CA coordinates.
    cutoff: interface CA-CA distance in A.
  Returns:
    The RMSD after superposing the predicted interface on the true one; nan without
    interface pairs.
  """
  pred_lig, pred_rec, true_lig, true_rec = _complex_coords(pred_lig, pred_rec, true_lig,
                                                          true_rec)
  li, ri = equidock_interface(true_lig, true_rec, cutoff)
  if li.shape[0] == 0:
    return float("nan")
  return complex_rmsd(pred_lig[li], pred_rec[ri], true_lig[li], true_rec[ri])


def ligand_rmsd(pred_lig, true_lig) -> float:
  """EquiDock's ligand RMSD: CA RMSD without superposition (`[Nl, 3]` each)."""
  return rmsd(pred_lig, true_lig, align=False)


# ------------------------------------------------------------------ CAPRI / DockQ (atom37)


def _pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Squared distances `[Na, Nb]` of `a [Na, 3]` and `b [Nb, 3]` (exact differences)."""
  return np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)


def _atom37(x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
  """(positions `[L, 37, 3]` float64, mask `[L, 37]` bool) from a tuple or a Protein."""
  if hasattr(x, "atom_positions") and hasattr(x, "atom_mask"):
    pos, mask = x.atom_positions, x.atom_mask
  else:
    try:
      pos, mask = x
    except (TypeError, ValueError):
      raise errors.DataError(
          f"metrics: {name} must be (positions [L, 37, 3], mask [L, 37]) or a Protein") from None
  pos = np.asarray(pos, dtype=np.float64)
  mask = np.asarray(mask).astype(bool)
  n_types = residues.NUM_ATOM_TYPES
  if pos.ndim != 3 or pos.shape[1:] != (n_types, 3) or mask.shape != pos.shape[:2]:
    raise errors.DataError(
        f"metrics: {name}: expected positions [L, {n_types}, 3] and mask [L, {n_types}], "
        f"got {pos.shape} and {mask.shape}")
  return pos, mask


def _compact(pos: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Present atoms first: `[L, A, 3]`, `[L, A]` with A the most atoms of any residue."""
  n_atoms = int(mask.sum(axis=1).max()) if mask.shape[0] else 0
  n_atoms = max(n_atoms, 1)
  order = np.argsort(~mask, axis=1, kind="stable")[:, :n_atoms]
  return (np.take_along_axis(pos, order[..., None], axis=1),
          np.take_along_axis(mask, order, axis=1))


def residue_distances(pos_a, mask_a, pos_b, mask_b, cutoff: float = INTERFACE_CUTOFF) -> np.ndarray:
  """Smallest heavy-atom distance between each residue of A and each residue of B.

  Only pairs that can be closer than `cutoff` are measured atom by atom (a bounding-sphere
  test on residue centres first), so memory stays O(La Lb + chunk).

  Args:
    pos_a: `[La, 37, 3]` atom positions; mask_a: `[La, 37]` bool.
    pos_b: `[Lb, 37, 3]` atom positions; mask_b: `[Lb, 37]` bool.
    cutoff: distance in A below which entries are exact.
  Returns:
    `[La, Lb]` float64: exact where below `cutoff`; entries that are not may be inf.
    Residues without atoms are inf everywhere.
  """
  pa, ma = _compact(np.asarray(pos_a, np.float64), np.asarray(mask_a, bool))
  pb, mb = _compact(np.asarray(pos_b, np.float64), np.asarray(mask_b, bool))
  out = np.full((pa.shape[0], pb.shape[0]), np.inf)
  if out.size == 0:
    return out

  def spheres(p, m):
    count = m.sum(axis=1)
    centre = (p * m[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    radius = np.where(m, np.linalg.norm(p - centre[:, None], axis=-1), 0.0).max(axis=1)
    return centre, radius, count > 0

  ca, ra, va = spheres(pa, ma)
  cb, rb, vb = spheres(pb, mb)
  centre_d = np.sqrt(_pairwise_sq_distances(ca, cb))
  candidate = (centre_d - ra[:, None] - rb[None, :] < cutoff + 1e-6)
  candidate &= va[:, None] & vb[None, :]
  ii, jj = np.nonzero(candidate)
  for start in range(0, ii.shape[0], _PAIR_CHUNK):
    i = ii[start:start + _PAIR_CHUNK]
    j = jj[start:start + _PAIR_CHUNK]
    d2 = np.sum((pa[i][:, :, None, :] - pb[j][:, None, :, :]) ** 2, axis=-1)  # [P, A, B]
    d2 = np.where(ma[i][:, :, None] & mb[j][:, None, :], d2, np.inf)
    out[i, j] = np.sqrt(d2.min(axis=(1, 2)))
  return out


def _check_pair(model, native, name: str):
  mpos, mmask = _atom37(model, f"model {name}")
  npos, nmask = _atom37(native, f"native {name}")
  if mpos.shape[0] != npos.shape[0]:
    raise errors.DataError(
        f"metrics: the model {name} has {mpos.shape[0]} residues but the native has "
        f"{npos.shape[0]}; residues must correspond 1:1 (see match_residues)")
  return mpos, mmask, npos, nmask


def _backbone(pos: np.ndarray, mask: np.ndarray, other_mask: np.ndarray,
              rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Backbone atoms present in both structures: (coordinates `[K, 3]`, selector)."""
  sel = np.zeros(mask.shape, bool)
  rows = np.arange(mask.shape[0]) if rows is None else rows
  sel[np.ix_(rows, BACKBONE_INDICES)] = True
  sel &= mask & other_mask
  return pos[sel], sel


@dataclasses.dataclass(frozen=True)
class DockQResult:
  """CAPRI quantities and DockQ of one model.

  Attributes:
    dockq: DockQ score in [0, 1].
    fnat: fraction of native residue contacts (< 5 A) present in the model.
    fnonnat: fraction of the model's residue contacts that are not native.
    irmsd: backbone RMSD of the native interface residues (< 10 A), after superposition.
    lrmsd: ligand backbone RMSD after superposition on the receptor backbone.
    n_native_contacts: residue contacts in the native.
    n_model_contacts: residue contacts in the model.
    n_shared_contacts: contacts present in both.
    n_interface_residues: native interface residues (ligand + receptor).
    lrmsd_receptor: "receptor" or "ligand": the given partner that was superposed for LRMSD.
  """
  dockq: float
  fnat: float
  fnonnat: float
  irmsd: float
  lrmsd: float
  n_native_contacts: int
  n_model_contacts: int
  n_shared_contacts: int
  n_interface_residues: int
  lrmsd_receptor: str

  @property
  def quality(self) -> str:
    """CAPRI-like class from DockQ: high >= 0.80, medium >= 0.49, acceptable >= 0.23."""
    if not np.isfinite(self.dockq) or self.dockq < 0.23:
      return "incorrect"
    if self.dockq < 0.49:
      return "acceptable"
    return "medium" if self.dockq < 0.80 else "high"

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def dockq_score(fnat_value: float, irmsd_value: float, lrmsd_value: float) -> float:
  """DockQ from its three components (Basu & Wallner 2016)."""
  return float((fnat_value + 1.0 / (1.0 + (irmsd_value / DOCKQ_IRMSD_SCALE) ** 2)
                + 1.0 / (1.0 + (lrmsd_value / DOCKQ_LRMSD_SCALE) ** 2)) / 3.0)


def _contact_stats(m_lig, m_rec, n_lig, n_rec, cutoff: float):
  """(native contacts [Ll, Lr] bool, model contacts [Ll, Lr] bool, native distances)."""
  nd = residue_distances(n_lig[0], n_lig[1], n_rec[0], n_rec[1], max(cutoff, INTERFACE_CUTOFF))
  md = residue_distances(m_lig[0], m_lig[1], m_rec[0], m_rec[1], cutoff)
  return nd < cutoff, md < cutoff, nd


def _fnat_values(native_c: np.ndarray, model_c: np.ndarray) -> tuple[float, float, int, int, int]:
  n_nat = int(native_c.sum())
  n_mod = int(model_c.sum())
  n_shared = int((native_c & model_c).sum())
  fnat_value = n_shared / n_nat if n_nat else float("nan")
  fnonnat_value = (n_mod - n_shared) / n_mod if n_mod else 0.0
  return fnat_value, fnonnat_value, n_nat, n_mod, n_shared


def _irmsd(m_lig, m_rec, n_lig, n_rec, native_d: np.ndarray, cutoff: float) -> tuple[float, int]:
  interface = native_d < cutoff
  lig_rows = np.flatnonzero(interface.any(axis=1))
  rec_rows = np.flatnonzero(interface.any(axis=0))
  a_l, sel_l = _backbone(m_lig[0], m_lig[1], n_lig[1], lig_rows)
  a_r, sel_r = _backbone(m_rec[0], m_rec[1], n_rec[1], rec_rows)
  b_l, b_r = n_lig[0][sel_l], n_rec[0][sel_r]
  model_atoms = np.concatenate([a_l, a_r])
  native_atoms = np.concatenate([b_l, b_r])
  n_res = lig_rows.shape[0] + rec_rows.shape[0]
  if model_atoms.shape[0] == 0:
    return float("nan"), n_res
  return rmsd(model_atoms, native_atoms, align=True), n_res


def _lrmsd(m_lig, m_rec, n_lig, n_rec, receptor: str) -> tuple[float, str]:
  if receptor not in ("larger", "given"):
    raise errors.ConfigError(f"metrics: receptor must be 'larger' or 'given', got {receptor!r}")
  which = "receptor"
  if receptor == "larger" and n_lig[0].shape[0] > n_rec[0].shape[0]:
    m_lig, m_rec, n_lig, n_rec = m_rec, m_lig, n_rec, n_lig
    which = "ligand"
  rec_model, sel = _backbone(m_rec[0], m_rec[1], n_rec[1])
  rec_native = n_rec[0][sel]
  lig_model, sel_l = _backbone(m_lig[0], m_lig[1], n_lig[1])
  lig_native = n_lig[0][sel_l]
  if rec_model.shape[0] == 0 or lig_model.shape[0] == 0:
    return float("nan"), which
  r, t = kabsch(rec_model, rec_native)
  return rmsd(apply_transform(lig_model, r, t), lig_native), which


def fnat(model_lig, model_rec, native_lig, native_rec, cutoff: float = FNAT_CUTOFF) -> float:
  """Fraction of native residue contacts (heavy atoms closer than `cutoff`) in the model.

  Args:
    model_lig, model_rec, native_lig, native_rec: atom37 `(positions [L, 37, 3],
      mask [L, 37])` or Protein, residues 1:1 between model and native of each partner.
    cutoff: contact distance in A (CAPRI: 5).
  Returns:
    fnat in [0, 1]; nan when the native has no contact.
  """
  m_lig = _check_pair(model_lig, native_lig, "ligand")
  m_rec = _check_pair(model_rec, native_rec, "receptor")
  native_c, model_c, _ = _contact_stats(m_lig[:2], m_rec[:2], m_lig[2:], m_rec[2:], cutoff)
  return _fnat_values(native_c, model_c)[0]


def capri_irmsd(model_lig, model_rec, native_lig, native_rec,
                cutoff: float = INTERFACE_CUTOFF) -> float:
  """CAPRI interface RMSD: backbone atoms of the native interface residues (< `cutoff`).

  Args: as `fnat`; cutoff: interface distance in A (DockQ: 10).
  Returns: the RMSD after superposition; nan without interface.
  """
  m_lig = _check_pair(model_lig, native_lig, "ligand")
  m_rec = _check_pair(model_rec, native_rec, "receptor")
  native_d = residue_distances(m_lig[2], m_lig[3], m_rec[2], m_rec[3], cutoff)
  return _irmsd(m_lig[:2], m_rec[:2], m_lig[2:], m_rec[2:], native_d, cutoff)[0]


def capri_lrmsd(model_lig, model_rec, native_lig, native_rec, receptor: str = "larger") -> float:
  """CAPRI ligand RMSD: superpose on the receptor backbone, RMSD of the ligand backbone.

  Args: as `fnat`; receptor: "larger" (DockQ: the partner with more residues) or "given".
  """
  m_lig = _check_pair(model_lig, native_lig, "ligand")
  m_rec = _check_pair(model_rec, native_rec, "receptor")
  return _lrmsd(m_lig[:2], m_rec[:2], m_lig[2:], m_rec[2:], receptor)[0]


def dockq(model_lig, model_rec, native_lig, native_rec, receptor: str = "larger") -> DockQResult:
  """fnat, fnonnat, interface RMSD, ligand RMSD and DockQ of one docked model.

  Args:
    model_lig: the model's ligand, atom37 `(positions [Ll, 37, 3], mask [Ll, 37])` or Protein.
    model_rec: the model's receptor, `[Lr, 37, 3]` / `[Lr, 37]`.
    native_lig: the native ligand, the same Ll residues in the same order.
    native_rec: the native receptor, the same Lr residues in the same order.
    receptor: which partner LRMSD superposes: "larger" (DockQ) or "given".
  Returns:
    DockQResult (nan fnat / dockq when the native has no contact).
  """
  m_lig = _check_pair(model_lig, native_lig, "ligand")
  m_rec = _check_pair(model_rec, native_rec, "receptor")
  model_l, native_l = m_lig[:2], m_lig[2:]
  model_r, native_r = m_rec[:2], m_rec[2:]
  native_c, model_c, native_d = _contact_stats(model_l, model_r, native_l, native_r, FNAT_CUTOFF)
  fnat_value, fnonnat_value, n_nat, n_mod, n_shared = _fnat_values(native_c, model_c)
  irmsd_value, n_res = _irmsd(model_l, model_r, native_l, native_r, native_d, INTERFACE_CUTOFF)
  lrmsd_value, which = _lrmsd(model_l, model_r, native_l, native_r, receptor)
  score = dockq_score(fnat_value, irmsd_value, lrmsd_value) if n_nat else float("nan")
  return DockQResult(
      dockq=score, fnat=fnat_value, fnonnat=fnonnat_value, irmsd=irmsd_value,
      lrmsd=lrmsd_value, n_native_contacts=n_nat, n_model_contacts=n_mod,
      n_shared_contacts=n_shared, n_interface_residues=n_res, lrmsd_receptor=which)


# ------------------------------------------------------------------ Protein helpers


@dataclasses.dataclass(frozen=True)
class ResidueMatch:
  """How the residues of a model were paired with a native's.

  Attributes:
    model_index: `[K]` int indices into the model's residues.
    native_index: `[K]` int indices into the native's residues.
    method: "order" (same count and sequence, paired in order) or "key" (paired by
      (chain, residue number, insertion code)).
    n_model: residues in the model; n_native: residues in the native.
    n_mismatched_names: paired residues whose one-letter codes differ.
  """
  model_index: np.ndarray
  native_index: np.ndarray
  method: str
  n_model: int
  n_native: int
  n_mismatched_names: int

  @property
  def n_matched(self) -> int:
    return int(self.model_index.shape[0])


def match_residues(model, native, method: str = "auto") -> ResidueMatch:
  """Pairs the residues of a model Protein with a native Protein.

  "order": the i-th residue with the i-th (needs equal counts; the way EquiDock's
  evaluation pairs CA atoms). "key": by (chain, residue number, insertion code).
  "auto": "order" when counts and sequences agree, else "key".

  Args:
    model: Protein (`residue_number`, `insertion_code`, `chain_id`, `sequence`).
    native: Protein.
    method: "auto", "order" or "key".
  Returns:
    ResidueMatch.
  """
  n_m, n_n = len(model.sequence), len(native.sequence)
  if method not in ("auto", "order", "key"):
    raise errors.ConfigError(f"metrics: match method must be auto, order or key, got {method!r}")
  if method == "auto":
    method = "order" if (n_m == n_n and model.sequence == native.sequence) else "key"
  if method == "order":
    if n_m != n_n:
      raise errors.DataError(
          f"metrics: {model.source or 'model'} has {n_m} residues but "
          f"{native.source or 'native'} has {n_n}; they cannot be paired in order")
    mi = ni = np.arange(n_m)
  else:
    def keys(p):
      return list(zip(np.asarray(p.chain_id).tolist(), np.asarray(p.residue_number).tolist(),
                      np.asarray(p.insertion_code).tolist()))
    native_pos = {k: i for i, k in enumerate(keys(native))}
    pairs = [(i, native_pos[k]) for i, k in enumerate(keys(model)) if k in native_pos]
    mi = np.array([p[0] for p in pairs], dtype=np.int64)
    ni = np.array([p[1] for p in pairs], dtype=np.int64)
  ms = np.array(list(model.sequence))[mi] if mi.size else np.array([])
  ns = np.array(list(native.sequence))[ni] if ni.size else np.array([])
  return ResidueMatch(model_index=np.asarray(mi), native_index=np.asarray(ni), method=method,
                      n_model=n_m, n_native=n_n, n_mismatched_names=int(np.sum(ms != ns)))


def _matched(model, native, name: str):
  match = match_residues(model, native)
  if match.n_matched == 0:
    raise errors.DataError(
        f"metrics: no residue of the model {name} ({model.source}) matches the native "
        f"({native.source}) by order or by (chain, number, insertion code)")
  return (
      (model.atom_positions[match.model_index], model.atom_mask[match.model_index]),
      (native.atom_positions[match.native_index], native.atom_mask[match.native_index]),
      match)


def dockq_proteins(model_lig, model_rec, native_lig, native_rec,
                   receptor: str = "larger") -> DockQResult:
  """`dockq` on four `jaxgeo.structure.Protein`s, residues paired by `match_residues`.

  Residues are paired in order when counts and sequences agree, else by (chain, residue
  number, insertion code); unpaired residues are left out.

  Args:
    model_lig, model_rec: the model's ligand and receptor Proteins.
    native_lig, native_rec: the native's ligand and receptor Proteins.
    receptor: "larger" or "given" (see `dockq`).
  """
  ml, nl, _ = _matched(model_lig, native_lig, "ligand")
  mr, nr, _ = _matched(model_rec, native_rec, "receptor")
  return dockq(ml, mr, nl, nr, receptor=receptor)


def equidock_rmsds_proteins(model_lig, model_rec, native_lig, native_rec) -> dict:
  """EquiDock's complex / interface / ligand RMSDs on the CAs of four Proteins.

  Residues paired by `match_residues` (in order when counts and sequences agree, as
  EquiDock's evaluation does).

  Returns:
    {"complex_rmsd", "interface_rmsd", "ligand_rmsd"} floats.
  """
  ml = match_residues(model_lig, native_lig)
  mr = match_residues(model_rec, native_rec)
  pl, tl = model_lig.ca[ml.model_index], native_lig.ca[ml.native_index]
  pr, tr = model_rec.ca[mr.model_index], native_rec.ca[mr.native_index]
  return {
      "complex_rmsd": complex_rmsd(pl, pr, tl, tr),
      "interface_rmsd": interface_rmsd(pl, pr, tl, tr),
      "ligand_rmsd": ligand_rmsd(pl, tl),
  }


__all__: Sequence[str] = (
    "kabsch", "apply_transform", "superpose", "rmsd", "equidock_interface", "complex_rmsd",
    "interface_rmsd", "ligand_rmsd", "residue_distances", "fnat", "capri_irmsd",
    "capri_lrmsd", "dockq", "dockq_score", "DockQResult", "match_residues", "ResidueMatch",
    "dockq_proteins", "equidock_rmsds_proteins",
)
