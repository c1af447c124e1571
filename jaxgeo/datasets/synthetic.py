"""Generated structures: ideal backbones built from dihedrals, random proteins (the position
task's CPU demo, tests and examples).

Backbones are placed atom by atom with the NeRF construction (Parsons et al. 2005) from
ideal bond lengths and angles (Engh & Huber), so tests know the true dihedrals.
"""
from __future__ import annotations

import numpy as np

from jaxgeo import residues
from jaxgeo.structure import Protein, concatenate, virtual_cb

__all__ = ["ideal_backbone", "make_protein", "random_protein"]

# Bond lengths (A) and angles (degrees) of an ideal peptide backbone.
_N_CA, _CA_C, _C_N, _C_O = 1.458, 1.525, 1.329, 1.231
_N_CA_C, _CA_C_N, _C_N_CA, _CA_C_O = 111.2, 116.2, 121.7, 120.5


def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle_deg: float,
           torsion: float) -> np.ndarray:
  """The point d with |cd| = bond, angle bcd = angle, dihedral abcd = torsion (radians)."""
  angle = np.deg2rad(angle_deg)
  bc = (c - b) / np.linalg.norm(c - b)
  n = np.cross(b - a, bc)
  n /= np.linalg.norm(n)
  m = np.cross(n, bc)
  d2 = np.array([-bond * np.cos(angle), bond * np.sin(angle) * np.cos(torsion),
                 bond * np.sin(angle) * np.sin(torsion)])
  return c + d2[0] * bc + d2[1] * m + d2[2] * n


def ideal_backbone(phi: np.ndarray, psi: np.ndarray, omega: np.ndarray | None = None
                   ) -> np.ndarray:
  """Backbone [L, 4, 3] (N, CA, C, O) with the given dihedrals (radians, each [L]).

  phi[0] and psi[-1], omega[-1] are undefined for a chain and ignored.
  """
  length = len(phi)
  omega = np.full(length, np.pi) if omega is None else np.asarray(omega)
  n = np.array([0.0, 0.0, 0.0])
  ca = np.array([_N_CA, 0.0, 0.0])
  angle = np.deg2rad(180.0 - _N_CA_C)
  c = ca + _CA_C * np.array([np.cos(angle), np.sin(angle), 0.0])
  atoms = [[n, ca, c]]
  for i in range(1, length):
    n_prev, ca_prev, c_prev = atoms[-1]
    n_i = _place(n_prev, ca_prev, c_prev, _C_N, _CA_C_N, psi[i - 1])
    ca_i = _place(ca_prev, c_prev, n_i, _N_CA, _C_N_CA, omega[i - 1])
    c_i = _place(c_prev, n_i, ca_i, _CA_C, _N_CA_C, phi[i])
    atoms.append([n_i, ca_i, c_i])
  atoms = np.array(atoms)
  oxygens = np.array([
      _place(atoms[i, 0], atoms[i, 1], atoms[i, 2], _C_O, _CA_C_O, psi[i] + np.pi)
      for i in range(length)])
  return np.concatenate([atoms, oxygens[:, None]], axis=1)


def make_protein(sequence: str, backbone: np.ndarray, chain_id: str | np.ndarray = "A",
                 residue_number: np.ndarray | None = None, source: str = "generated") -> Protein:
  """A Protein from a sequence and a backbone [L, 4, 3]; CB virtual (absent for Gly)."""
  length = len(sequence)
  aatype = residues.sequence_to_aatype(sequence)
  atom_positions = np.zeros((length, residues.NUM_ATOM_TYPES, 3), np.float32)
  atom_mask = np.zeros((length, residues.NUM_ATOM_TYPES), bool)
  atom_positions[:, residues.BACKBONE_INDICES] = backbone
  atom_mask[:, residues.BACKBONE_INDICES] = True
  cb = virtual_cb(backbone[:, 0], backbone[:, 1], backbone[:, 2]).astype(np.float32)
  cb_slot = residues.ATOM_ORDER["CB"]
  has_cb = np.array([s != "G" for s in sequence])
  atom_positions[has_cb, cb_slot] = cb[has_cb]
  atom_mask[has_cb, cb_slot] = True
  chain_ids = np.full(length, chain_id) if isinstance(chain_id, str) else np.asarray(chain_id)
  return Protein(
      aatype=aatype, sequence=sequence.upper(), chain_id=chain_ids.astype(str),
      residue_number=(np.arange(1, length + 1, dtype=np.int32) if residue_number is None
                      else np.asarray(residue_number, np.int32)),
      insertion_code=np.full(length, "", dtype="<U1"),
      backbone=backbone.astype(np.float32), backbone_mask=np.ones((length, 4), bool), cb=cb,
      atom_positions=atom_positions, atom_mask=atom_mask, source=source)


def random_protein(length: int, rng: np.random.Generator, chains: int = 1,
                   source: str = "generated") -> Protein:
  """A random compact-ish protein: chains of helix/strand/loop segments with random
  sequences, each chain placed at a random offset. Deterministic given `rng`."""
  pieces = []
  sizes = np.diff(np.linspace(0, length, chains + 1).astype(int))
  for chain_index, size in enumerate(sizes):
    phi = np.empty(size)
    psi = np.empty(size)
    i = 0
    while i < size:
      run = int(rng.integers(4, 12))
      kind = rng.integers(3)
      centre = [(-1.1, -0.7), (-2.1, 2.3), (-1.5, 0.5)][kind]  # helix, strand, loop
      spread = 0.15 if kind < 2 else 0.8
      phi[i:i + run] = centre[0] + spread * rng.standard_normal(min(run, size - i))
      psi[i:i + run] = centre[1] + spread * rng.standard_normal(min(run, size - i))
      i += run
    backbone = ideal_backbone(phi, psi)
    backbone = backbone + rng.normal(scale=15.0, size=3) * chain_index
    sequence = "".join(rng.choice(list(residues.RESTYPES), size))
    pieces.append(make_protein(sequence, backbone, chain_id=chr(ord("A") + chain_index),
                               source=source))
  return concatenate(pieces, source=source)
