"""Writes examples/db5_backbone: a backbone-only copy of DB5.5's bound structures with
EquiDock's split, small enough to ship in the repository (the README's main job trains on it).

  python experiments/make_backbone_examples.py [--src ../shared/data/db5.5]
      [--out examples/db5_backbone] [--train 60]

Each bound receptor / ligand (`XXXX_{r,l}_b.pdb.gz`) is read with `jaxgeo.structure.
load_protein` and written back with `write_pdb` keeping only the atoms N, CA, C, O and CB
(one model, no ligands, no hydrogens; chains, residue numbers and insertion codes kept;
modified residues under their parent's name, e.g. MSE as MET). Every written file is read
again and compared with the original (sequence, chain ids, residue numbers, insertion codes,
N/CA/C/O/CB coordinates to 1e-3 A); a difference stops the script.

Shipped: the first `--train` complexes of EquiDock's train.txt (file order, so `task.limit=N`
with N <= --train picks the same complexes here and on the full DB5.5) and every val and
test complex; `splits/{train,val,test}.txt` list only those. All 253 complexes would be
about 11 MB gzipped (coordinates dominate); the default is about 5 MB.

The output is deterministic (gzip mtime 0): re-running rewrites nothing that is unchanged
and removes structure files that are no longer shipped.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import numpy as np

from jaxgeo import residues, structure
from jaxgeo.datasets import db5
from jaxgeo.io import atomic_write_bytes, atomic_write_text
from jaxgeo.errors import DataError
from jaxgeo.structure import Protein

REPO = pathlib.Path(__file__).resolve().parent.parent
BACKBONE_ATOMS = ("N", "CA", "C", "O", "CB")
TOLERANCE = 1e-3   # A: PDB coordinates have three decimals


def backbone_mask() -> np.ndarray:
  """[37] bool: the atom37 slots of N, CA, C, O, CB."""
  keep = np.zeros(residues.NUM_ATOM_TYPES, bool)
  keep[[residues.ATOM_ORDER[a] for a in BACKBONE_ATOMS]] = True
  return keep


def backbone_copy(protein: Protein) -> Protein:
  """The protein with only its N, CA, C, O, CB atoms and no ligands."""
  mask = protein.atom_mask & backbone_mask()
  return dataclasses.replace(protein, atom_mask=mask,
                             atom_positions=np.where(mask[..., None],
                                                     protein.atom_positions, 0.0),
                             ligands=())


def round_trip_differences(original: Protein, copy: Protein,
                           tolerance: float = TOLERANCE) -> list[str]:
  """What differs between a structure and its backbone copy read back ([] when nothing):
  sequence, chain ids, residue numbers, insertion codes, N/CA/C/O/CB presence and
  coordinates (to `tolerance` A)."""
  if len(original) != len(copy):
    return [f"{len(copy)} residues instead of {len(original)}"]
  out = []
  if original.sequence != copy.sequence:
    out.append("sequence")
  for name in ("chain_id", "residue_number", "insertion_code"):
    if not np.array_equal(getattr(original, name), getattr(copy, name)):
      out.append(name)
  keep = backbone_mask()
  if not np.array_equal(original.atom_mask[:, keep], copy.atom_mask[:, keep]):
    out.append("N/CA/C/O/CB presence")
  else:
    mask = original.atom_mask[:, keep]
    delta = np.abs(original.atom_positions[:, keep] - copy.atom_positions[:, keep])[mask]
    if delta.size and delta.max() > tolerance:
      out.append(f"coordinates (max difference {delta.max():.4f} A)")
  if np.abs(original.cb - copy.cb).max() > tolerance:
    out.append("CB (real or virtual)")
  if copy.atom_mask[:, ~keep].any():
    out.append("atoms beyond N, CA, C, O, CB")
  return out


def shipped_ids(src: pathlib.Path, train: int) -> dict[str, list[str]]:
  """split -> the complex ids to ship: the first `train` of train.txt, all of val and test."""
  out = {split: db5.read_split(src, split) for split in db5.SPLITS}
  out["train"] = db5.limit_ids(out["train"], train)
  return out


def write_if_changed(path: pathlib.Path, data: bytes) -> bool:
  """Writes `data` unless the file already holds exactly it. -> whether it wrote."""
  if path.is_file() and path.read_bytes() == data:
    return False
  atomic_write_bytes(path, data)
  return True


def gzip_pdb(protein: Protein) -> bytes:
  """The bytes `structure.write_pdb` writes for a `.pdb.gz` name (`to_pdb_string`, gzip
  with mtime 0: deterministic), so that an unchanged file is not rewritten."""
  import gzip
  return gzip.compress(structure.to_pdb_string(protein).encode(), mtime=0)


def copy_structure(source: pathlib.Path, target: pathlib.Path) -> tuple[bool, int]:
  """Writes the backbone copy of `source` to `target` and checks it reads back the same.
  -> (whether the file changed, its size). Raises DataError naming both files otherwise."""
  original = structure.load_protein(source)
  data = gzip_pdb(backbone_copy(original))
  changed = write_if_changed(target, data)
  copy = structure.load_protein(target)
  problems = round_trip_differences(original, copy)
  if problems:
    raise DataError(f"{target}: the backbone copy of {source} reads back differently: "
                    + ", ".join(problems))
  return changed, len(data)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--src", default=str(REPO.parent / "shared" / "data" / "db5.5"),
                      help="DB5.5 folder (structures/, splits/)")
  parser.add_argument("--out", default=str(REPO / "examples" / "db5_backbone"))
  parser.add_argument("--train", type=int, default=60,
                      help="train complexes to ship (the first N of train.txt; 0: all)")
  args = parser.parse_args(argv)
  src, out = pathlib.Path(args.src), pathlib.Path(args.out)
  if not (src / "structures").is_dir():
    print(f"make_backbone_examples: {src / 'structures'}: not found (--src)", file=sys.stderr)
    return 2
  ids = shipped_ids(src, args.train)
  names = set()
  changed = total = 0
  for split, split_ids in ids.items():
    for pdb_id in split_ids:
      for source in db5.complex_files(src, pdb_id, bound=True):
        name = f"{source.name.split('.')[0]}.pdb.gz"
        names.add(name)
        wrote, size = copy_structure(source, out / "structures" / name)
        changed += wrote
        total += size
    text = "".join(f"{pdb_id}\n" for pdb_id in split_ids)
    if not (out / "splits" / f"{split}.txt").is_file() or (
        (out / "splits" / f"{split}.txt").read_text() != text):
      atomic_write_text(out / "splits" / f"{split}.txt", text)
      changed += 1
  stale = [p for p in (out / "structures").glob("*.pdb.gz") if p.name not in names]
  for path in stale:
    path.unlink()
  counts = ", ".join(f"{len(v)} {k}" for k, v in ids.items())
  print(f"make_backbone_examples: {out}: {len(names)} structure files ({counts} complexes), "
        f"{total / 1e6:.2f} MB; {changed} file(s) written, {len(stale)} removed; every file "
        "reads back the same (sequence, chains, numbering, N/CA/C/O/CB to 1e-3 A)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
