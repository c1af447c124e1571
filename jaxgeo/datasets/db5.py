"""DB5.5 (Docking Benchmark 5.5, as packaged by EquiDock; see `../shared/data/README.md`):

  <db5>/structures/XXXX_{r,l}_{b,u}.pdb.gz   receptor / ligand, bound / unbound
  <db5>/splits/{train,val,test}.txt           one complex id a line (EquiDock's split)
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

from jaxgeo import structure
from jaxgeo.errors import DataError
from jaxgeo.structure import Protein

__all__ = ["SPLITS", "read_split", "complex_files", "load_complex", "limit_ids",
           "complex_group_ids"]

SPLITS = ("train", "val", "test")


def read_split(db5_dir: str | os.PathLike, split: str,
               splits_dir: str | os.PathLike | None = None) -> list[str]:
  """Complex ids of a split file `<splits_dir or db5/splits>/<split>.txt`, in file order.

  Raises DataError naming the file when it is missing or empty.
  """
  folder = pathlib.Path(splits_dir) if splits_dir is not None else pathlib.Path(db5_dir) / "splits"
  path = folder / f"{split}.txt"
  if not path.is_file():
    raise DataError(f"{path}: split file not found (expected one complex id a line)")
  ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()
         and not line.lstrip().startswith("#")]
  if not ids:
    raise DataError(f"{path}: split file lists no complex")
  return ids


def complex_files(db5_dir: str | os.PathLike, pdb_id: str,
                  bound: bool = True) -> tuple[pathlib.Path, pathlib.Path]:
  """(receptor, ligand) structure files of a DB5.5 complex. Missing -> DataError."""
  folder = pathlib.Path(db5_dir) / "structures"
  state = "b" if bound else "u"
  out = []
  for side in ("r", "l"):
    path = folder / f"{pdb_id}_{side}_{state}.pdb.gz"
    if not path.is_file():
      plain = path.with_suffix("")  # allow unzipped copies
      if plain.is_file():
        path = plain
      else:
        raise DataError(f"{path}: structure of complex {pdb_id} not found")
    out.append(path)
  return out[0], out[1]


def load_complex(db5_dir: str | os.PathLike, pdb_id: str,
                 bound: bool = True) -> tuple[Protein, Protein]:
  """(receptor, ligand) Proteins of a DB5.5 complex (bound structures by default)."""
  rec_path, lig_path = complex_files(db5_dir, pdb_id, bound)
  return structure.load_protein(rec_path), structure.load_protein(lig_path)


def limit_ids(ids: Sequence[str], limit: int | None) -> list[str]:
  """The first `limit` ids (all when limit is None or <= 0)."""
  ids = list(ids)
  return ids[:int(limit)] if limit and int(limit) > 0 else ids


def complex_group_ids(*id_lists: Sequence[str]) -> dict[str, int]:
  """A stable int id per complex: its index in the sorted union of the lists."""
  return {name: i for i, name in enumerate(sorted({n for ids in id_lists for n in ids}))}
