"""Interface residues of two partners by distance: the labels of the interface tasks
(DB5.5 `interface`, ATOM3D `atom3d_ppi`).

- definition "ca" (the paper's): a residue's CA is within `cutoff` (8 A) of a CA of the
  partner;
- definition "heavy" (ATOM3D's PPI labels): some heavy atom of the residue is within `cutoff`
  (6 A) of a heavy atom of the partner.
"""
from __future__ import annotations

import numpy as np

from jaxgeo.errors import ConfigError
from jaxgeo.metrics import docking
from jaxgeo.structure import Protein

__all__ = ["DEFINITIONS", "interface_labels"]

# definition -> default cutoff (A)
DEFINITIONS = {"ca": 8.0, "heavy": 6.0}


def _ca_distances_below(a: np.ndarray, b: np.ndarray, cutoff: float) -> np.ndarray:
  """[La, Lb] bool: |a_i - b_j| < cutoff for a [La, 3], b [Lb, 3] (row chunks)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  out = np.zeros((a.shape[0], b.shape[0]), bool)
  for start in range(0, a.shape[0], 512):
    d2 = np.sum((a[start:start + 512, None, :] - b[None, :, :]) ** 2, axis=-1)
    out[start:start + 512] = d2 < cutoff * cutoff
  return out


def interface_labels(first: Protein, second: Protein, definition: str = "ca",
                     cutoff: float | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Interface residues of two partners.

  Args:
    first: La residues; second: Lb residues (in the same frame).
    definition: "ca" (CA-CA distance) or "heavy" (closest heavy-atom pair).
    cutoff: Angstrom; default 8 for "ca", 6 for "heavy".
  Returns:
    (labels of first [La] bool, labels of second [Lb] bool).
  """
  if definition not in DEFINITIONS:
    raise ConfigError(f"task.definition={definition!r}: expected one of {sorted(DEFINITIONS)}")
  cutoff = DEFINITIONS[definition] if cutoff is None else float(cutoff)
  if cutoff <= 0:
    raise ConfigError(f"task.cutoff={cutoff}: must be positive")
  if definition == "ca":
    contact = _ca_distances_below(first.ca, second.ca, cutoff)
  else:
    d = docking.residue_distances(first.atom_positions, first.atom_mask, second.atom_positions,
                                  second.atom_mask, cutoff)
    contact = d < cutoff
  return contact.any(axis=1), contact.any(axis=0)
