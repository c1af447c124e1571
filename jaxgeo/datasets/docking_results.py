"""Docking results of six methods on the 25 DB5.5 test complexes (EquiDock's release):

  <docking>/ground_truth/XXXX_{l,r}_b_COMPLEX.pdb.gz
  <docking>/decoys/<method>/XXXX_{l,r}_b_<METHOD>.pdb.gz   (ligand-only methods: `l` only)
"""
from __future__ import annotations

import os
import pathlib

from jaxgeo.errors import ConfigError, DataError

__all__ = ["DOCKING_METHODS", "ground_truth_files", "docking_complex_ids", "decoy_files"]

# Folder name -> (file suffix, whether the method also outputs a (moved) receptor).
DOCKING_METHODS: dict[str, tuple[str, bool]] = {
    "attract": ("ATTRACT", True),
    "hdock": ("HDOCK", True),
    "cluspro": ("CLUSPRO", False),
    "patchdock": ("PATCHDOCK", False),
    "equidock": ("EQUIDOCK", False),
    "equidock_no_clashes": ("EQUIDOCK_NO_CLASHES", False),
}


def ground_truth_files(docking_dir: str | os.PathLike,
                       pdb_id: str) -> tuple[pathlib.Path, pathlib.Path]:
  """(receptor, ligand) ground-truth files of a docking test complex. Missing -> DataError."""
  folder = pathlib.Path(docking_dir) / "ground_truth"
  out = []
  for side in ("r", "l"):
    path = folder / f"{pdb_id}_{side}_b_COMPLEX.pdb.gz"
    if not path.is_file():
      raise DataError(f"{path}: ground truth of complex {pdb_id} not found")
    out.append(path)
  return out[0], out[1]


def docking_complex_ids(docking_dir: str | os.PathLike) -> list[str]:
  """Ids of the complexes with a ground-truth ligand file, sorted. None -> DataError."""
  folder = pathlib.Path(docking_dir) / "ground_truth"
  if not folder.is_dir():
    raise DataError(f"{folder}: no such folder (docking results, see shared/data/README.md)")
  ids = sorted(p.name.split("_")[0] for p in folder.glob("*_l_b_COMPLEX.pdb.gz"))
  if not ids:
    raise DataError(f"{folder}: no *_l_b_COMPLEX.pdb.gz ground-truth files")
  return ids


def decoy_files(docking_dir: str | os.PathLike, method: str,
                pdb_id: str) -> tuple[pathlib.Path | None, pathlib.Path]:
  """(receptor file or None for ligand-only methods, ligand file) of one method's model."""
  if method not in DOCKING_METHODS:
    raise ConfigError(f"docking method {method!r}: unknown; choose from "
                      f"{', '.join(DOCKING_METHODS)}")
  suffix, moves_receptor = DOCKING_METHODS[method]
  folder = pathlib.Path(docking_dir) / "decoys" / method
  lig = folder / f"{pdb_id}_l_b_{suffix}.pdb.gz"
  if not lig.is_file():
    raise DataError(f"{lig}: {method} model of complex {pdb_id} not found")
  rec = None
  if moves_receptor:
    rec = folder / f"{pdb_id}_r_b_{suffix}.pdb.gz"
    if not rec.is_file():
      raise DataError(f"{rec}: {method} receptor of complex {pdb_id} not found")
  return rec, lig
