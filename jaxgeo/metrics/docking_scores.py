"""Scoring docking methods' predicted complexes against the ground truth (host, numpy).

A results folder (the layout of `../shared/data/db5_docking`):

  DIR/ground_truth/ID_l_b_COMPLEX.pdb[.gz], ID_r_b_COMPLEX.pdb[.gz]   the bound complex
  DIR/decoys/METHOD/ID_l_b_SUFFIX.pdb[.gz]                              a method's ligand
  DIR/decoys/METHOD/ID_r_b_SUFFIX.pdb[.gz]                              its receptor, when the
                                                                        method moved it

Complex ids come from the ground-truth ligand files, methods from the sub-folders of
`decoys/` (any names; SUFFIX is whatever follows `ID_l_b_` in the method's file). A method
without a receptor file for a complex is paired with the ground-truth receptor, as EquiDock's
evaluation does for ligand-only methods.

Per complex (`score_complex`): EquiDock's complex / interface / ligand RMSD (CA atoms) and
DockQ with fnat / iRMSD / LRMSD (heavy atoms), residues paired by
`docking.match_residues` (in order when counts and sequences agree, as EquiDock pairs CA
atoms; otherwise by chain, number and insertion code). Per method (`summarize`): median,
mean and std (ddof=0, as EquiDock's script) over the complexes, the DockQ classes, and the
number of complexes with DockQ >= 0.23 (CAPRI acceptable or better); `per_complex` keys the
values of every complex by its id (what a per-complex plot or a paired comparison reads).

    results = docking_scores.score_folder("../shared/data/db5_docking")
    print(docking_scores.table(results))
    results["methods"]["equidock"]["per_complex"]["complex_rmsd"]["1AVX"]    # 18.00
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from jaxgeo import structure
from jaxgeo.errors import DataError
from jaxgeo.metrics import docking

__all__ = ["METRICS", "PER_COMPLEX", "ACCEPTABLE_DOCKQ", "ResultsFolder", "find_results",
           "score_complex", "score_method", "summarize", "pairing_summary", "per_complex",
           "score_folder", "compact", "table"]

METRICS = ("complex_rmsd", "interface_rmsd", "dockq", "fnat", "irmsd", "lrmsd")
PER_COMPLEX = ("complex_rmsd", "interface_rmsd", "dockq")    # keyed by complex id per method
ACCEPTABLE_DOCKQ = 0.23
_GROUND_TRUTH = re.compile(r"^(?P<id>.+)_l_b_COMPLEX\.pdb(\.gz)?$")


@dataclasses.dataclass(frozen=True)
class ResultsFolder:
  """What a results folder holds.

  Attributes:
    root: the folder.
    complexes: complex ids with a ground-truth ligand, sorted.
    methods: method folder names under decoys/, sorted.
  """
  root: pathlib.Path
  complexes: tuple[str, ...]
  methods: tuple[str, ...]

  def ground_truth(self, pdb_id: str) -> tuple[pathlib.Path, pathlib.Path]:
    """(ligand, receptor) ground-truth files. Missing receptor -> DataError."""
    folder = self.root / "ground_truth"
    lig = _existing(folder, f"{pdb_id}_l_b_COMPLEX")
    rec = _existing(folder, f"{pdb_id}_r_b_COMPLEX")
    if lig is None or rec is None:
      raise DataError(f"{folder / (pdb_id + '_r_b_COMPLEX.pdb.gz')}: ground-truth receptor of "
                      f"complex {pdb_id} not found")
    return lig, rec

  def prediction(self, method: str, pdb_id: str
                 ) -> tuple[pathlib.Path | None, pathlib.Path | None]:
    """(ligand file or None when the method has none for the complex, receptor file or
    None when the method did not move the receptor)."""
    folder = self.root / "decoys" / method
    return _method_file(folder, pdb_id, "l"), _method_file(folder, pdb_id, "r")


def _existing(folder: pathlib.Path, stem: str) -> pathlib.Path | None:
  for name in (f"{stem}.pdb", f"{stem}.pdb.gz"):
    if (folder / name).is_file():
      return folder / name
  return None


def _method_file(folder: pathlib.Path, pdb_id: str, side: str) -> pathlib.Path | None:
  found = sorted(p for p in folder.glob(f"{pdb_id}_{side}_b_*.pdb*")
                 if p.name.endswith((".pdb", ".pdb.gz")))
  if len(found) > 1:
    raise DataError(f"{folder}: {len(found)} files for complex {pdb_id} ({side}): "
                    f"{', '.join(p.name for p in found)}; expected one")
  return found[0] if found else None


def find_results(root: str | os.PathLike) -> ResultsFolder:
  """The complexes and methods of a results folder. Missing parts -> DataError naming them."""
  root = pathlib.Path(root)
  truth = root / "ground_truth"
  if not truth.is_dir():
    raise DataError(f"{truth}: no such folder (expected ground_truth/ID_l_b_COMPLEX.pdb[.gz] "
                    "and decoys/METHOD/ under the results folder)")
  ids = sorted({m.group("id") for p in truth.iterdir() if (m := _GROUND_TRUTH.match(p.name))})
  if not ids:
    raise DataError(f"{truth}: no ID_l_b_COMPLEX.pdb[.gz] ground-truth files")
  decoys = root / "decoys"
  if not decoys.is_dir():
    raise DataError(f"{decoys}: no such folder (one sub-folder of predictions per method)")
  methods = sorted(p.name for p in decoys.iterdir() if p.is_dir())
  if not methods:
    raise DataError(f"{decoys}: no method folders")
  return ResultsFolder(root, tuple(ids), tuple(methods))


def score_complex(pred_lig: structure.Protein, pred_rec: structure.Protein,
                  true_lig: structure.Protein, true_rec: structure.Protein,
                  pdb_id: str = "") -> dict:
  """Every metric of one predicted complex against the truth.

  Returns:
    {"id", "complex_rmsd", "interface_rmsd", "ligand_rmsd", "dockq", "fnat", "fnonnat",
     "irmsd", "lrmsd", "quality", "lrmsd_superposed_on", "pairing": {side: {...}}}.
  """
  match_l = docking.match_residues(pred_lig, true_lig)
  match_r = docking.match_residues(pred_rec, true_rec)
  by_key = {"ligand": docking.match_residues(pred_lig, true_lig, method="key").n_matched,
            "receptor": docking.match_residues(pred_rec, true_rec, method="key").n_matched}
  pl, tl = pred_lig.ca[match_l.model_index], true_lig.ca[match_l.native_index]
  pr, tr = pred_rec.ca[match_r.model_index], true_rec.ca[match_r.native_index]

  def atoms(p, index):
    return p.atom_positions[index], p.atom_mask[index]

  q = docking.dockq(atoms(pred_lig, match_l.model_index), atoms(pred_rec, match_r.model_index),
                    atoms(true_lig, match_l.native_index), atoms(true_rec, match_r.native_index))
  return {
      "id": pdb_id,
      "complex_rmsd": docking.complex_rmsd(pl, pr, tl, tr),
      "interface_rmsd": docking.interface_rmsd(pl, pr, tl, tr),
      "ligand_rmsd": docking.ligand_rmsd(pl, tl),
      "dockq": q.dockq, "fnat": q.fnat, "fnonnat": q.fnonnat, "irmsd": q.irmsd,
      "lrmsd": q.lrmsd, "quality": q.quality, "lrmsd_superposed_on": q.lrmsd_receptor,
      "pairing": {
          side: {"method": m.method, "matched": m.n_matched, "model": m.n_model,
                 "native": m.n_native, "name_mismatches": m.n_mismatched_names,
                 "same_key": by_key[side]}
          for side, m in (("ligand", match_l), ("receptor", match_r))
      },
  }


class _Loader:
  """load_protein with a cache (ground truths are shared by every method)."""

  def __init__(self):
    self.cache: dict[str, structure.Protein] = {}

  def __call__(self, path: pathlib.Path) -> structure.Protein:
    key = str(path)
    if key not in self.cache:
      with warnings.catch_warnings():
        # mdtraj warns about the charge columns of some decoy files; coordinates are fine.
        warnings.filterwarnings("ignore", message="Could not parse charge")
        self.cache[key] = structure.load_protein(path)
    return self.cache[key]


def score_method(results: ResultsFolder, method: str, loader: Callable | None = None,
                 progress: bool = False) -> list[dict]:
  """`score_complex` for every complex the method has a ligand file for (id order)."""
  from tqdm.auto import tqdm
  load = loader or _Loader()
  rows = []
  for pdb_id in tqdm(results.complexes, desc=method, leave=False, disable=not progress,
                     unit="complex"):
    lig_path, rec_path = results.prediction(method, pdb_id)
    if lig_path is None:
      continue
    true_lig_path, true_rec_path = results.ground_truth(pdb_id)
    true_lig, true_rec = load(true_lig_path), load(true_rec_path)
    pred_lig = load(lig_path)
    pred_rec = load(rec_path) if rec_path is not None else true_rec
    for side, path, pred, true in (("ligand", lig_path, pred_lig, true_lig),
                                   ("receptor", rec_path, pred_rec, true_rec)):
      # Nothing paired would score the other partner alone (a complex RMSD of 0).
      if path is not None and docking.match_residues(pred, true).n_matched == 0:
        raise DataError(f"{path}: no residue of this predicted {side} matches the ground "
                        f"truth {true.source} in order or by (chain, number, insertion code)")
    rows.append(score_complex(pred_lig, pred_rec, true_lig, true_rec, pdb_id))
  return rows


def summarize(rows: Sequence[dict]) -> dict:
  """{metric: {"median", "mean", "std", "n"}} over complexes (std ddof=0, as EquiDock),
  "dockq_classes" {high, medium, acceptable, incorrect} and "acceptable_or_better" (the
  count with DockQ >= 0.23)."""
  out = {}
  for metric in METRICS:
    values = np.array([r[metric] for r in rows], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size:
      out[metric] = {"median": float(np.median(values)), "mean": float(np.mean(values)),
                     "std": float(np.std(values)), "n": int(values.size)}
    else:
      out[metric] = {"median": float("nan"), "mean": float("nan"), "std": float("nan"),
                     "n": 0}
  qualities = [r["quality"] for r in rows]
  out["dockq_classes"] = {c: qualities.count(c)
                          for c in ("high", "medium", "acceptable", "incorrect")}
  dockq = np.array([r["dockq"] for r in rows], dtype=np.float64)
  out["acceptable_or_better"] = int(np.sum(np.nan_to_num(dockq, nan=0.0) >= ACCEPTABLE_DOCKQ))
  out["complexes"] = len(rows)
  return out


def pairing_summary(rows: Sequence[dict]) -> dict:
  """How the residues of a method's predictions were paired with the truth, per partner."""
  out = {}
  for side in ("ligand", "receptor"):
    p = [r["pairing"][side] for r in rows]
    out[side] = {
        "residues_model": sum(x["model"] for x in p),
        "residues_native": sum(x["native"] for x in p),
        "matched": sum(x["matched"] for x in p),
        "name_mismatches": sum(x["name_mismatches"] for x in p),
        "same_key": sum(x["same_key"] for x in p),
        "paired_in_order": sum(x["method"] == "order" for x in p),
        "paired_by_key": sum(x["method"] == "key" for x in p),
    }
  return out


def per_complex(rows: Sequence[dict], metrics: Sequence[str] = PER_COMPLEX
                ) -> dict[str, dict[str, float]]:
  """{metric: {complex id: value}} of a method's rows (id order; NaN kept as NaN: `summarize`
  leaves those out, so the median of the finite values is the summary's median)."""
  return {metric: {str(r["id"]): float(r[metric]) for r in rows} for metric in metrics}


def score_folder(root: str | os.PathLike, methods: Sequence[str] | None = None,
                 progress: bool = False) -> dict:
  """Scores every method (or `methods`) of a results folder.

  Returns:
    {"complexes": [ids], "methods": {method: {"summary", "pairing", "per_complex", "complexes"}}}:
    `summary` (`summarize`), `pairing` (`pairing_summary`), `per_complex` {complex_rmsd,
    interface_rmsd, dockq: {id: value}} and `complexes` (the `score_complex` rows).
  Raises:
    DataError naming an unknown method or a missing / unreadable file.
  """
  results = find_results(root)
  chosen = list(methods) if methods else list(results.methods)
  unknown = [m for m in chosen if m not in results.methods]
  if unknown:
    raise DataError(f"{results.root / 'decoys'}: no method folder {', '.join(unknown)} "
                    f"(found: {', '.join(results.methods)})")
  loader = _Loader()
  out = {"complexes": list(results.complexes), "methods": {}}
  for method in chosen:
    rows = score_method(results, method, loader, progress)
    out["methods"][method] = {"summary": summarize(rows), "pairing": pairing_summary(rows),
                              "per_complex": per_complex(rows), "complexes": rows}
  return out


def compact(scores: dict) -> dict:
  """`score_folder`'s result without the per-complex rows' details (pairing, fnat, ...):
  {"complexes": [ids], "methods": {method: {"summary", "per_complex"}}} (a few kB for 25
  complexes: small enough to keep next to a figure)."""
  return {"complexes": list(scores["complexes"]),
          "methods": {m: {"summary": r["summary"], "per_complex": r["per_complex"]}
                      for m, r in scores["methods"].items()}}


def table(scores: dict) -> str:
  """One text row per method: complex and interface RMSD median / mean / std, DockQ median /
  mean, and the count with DockQ >= 0.23 (of the complexes scored)."""
  width = max([22] + [len(m) for m in scores["methods"]])
  header = (f"{'method':<{width}s} {'n':>3s}  {'complex RMSD med/mean/std':>26s}  "
            f"{'interface RMSD med/mean/std':>28s}  {'DockQ med/mean':>14s}  {'DockQ>=0.23':>11s}")
  lines = [header]
  for method, res in scores["methods"].items():
    s = res["summary"]

    def three(metric):
      m = s[metric]
      return f"{m['median']:.2f} / {m['mean']:.2f} / {m['std']:.2f}"

    dockq = f"{s['dockq']['median']:.2f} / {s['dockq']['mean']:.2f}"
    lines.append(f"{method:<{width}s} {s['complexes']:>3d}  {three('complex_rmsd'):>26s}  "
                 f"{three('interface_rmsd'):>28s}  {dockq:>14s}  "
                 f"{s['acceptable_or_better']:>11d}")
  return "\n".join(lines)
