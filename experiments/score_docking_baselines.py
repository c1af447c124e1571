"""Scores the published docking baselines on the 25 DB5.5 test complexes with jaxgeo's metrics.

Data: `../shared/data/db5_docking` (see its README): `ground_truth/XXXX_{l,r}_b_COMPLEX.pdb.gz`
and `decoys/<method>/`. ATTRACT and HDOCK give a ligand and a receptor file; ClusPro,
PatchDock, EquiDock and EquiDock without clashes give the ligand only, paired here with the
ground-truth receptor (as EquiDock's evaluation does).

The scoring is the library's (`jaxgeo.metrics.docking_scores`, also `jaxgeo score-docking
DIR`); this script adds the published numbers and writes the Markdown / JSON results.

Per complex: EquiDock's complex RMSD and interface RMSD (CA atoms; interface = true CA pairs
closer than 8 A), and DockQ with fnat / iRMSD / LRMSD (heavy atoms, Basu & Wallner 2016).
Per method: median, mean and std (population std, as EquiDock's script) over the complexes.

Residues of a decoy are paired with the ground truth in order when the residue counts and
sequences agree (EquiDock's evaluation pairs the CA atoms in order), otherwise by (chain,
residue number, insertion code); the pairing is reported.

Usage:
  python experiments/score_docking_baselines.py [--data DIR] [--out DIR] [--methods m1,m2]
Writes `<out>/docking_baselines.md` and `<out>/docking_baselines.json` (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from jaxgeo import io  # noqa: E402
from jaxgeo.datasets.docking_results import DOCKING_METHODS  # noqa: E402
from jaxgeo.metrics import docking_scores  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "db5_docking"
DEFAULT_OUT = REPO / "experiments" / "results"

# Folder name -> (file suffix, whether the method moves the receptor too).
METHODS = DOCKING_METHODS
DISPLAY = {
    "attract": "ATTRACT", "hdock": "HDOCK", "cluspro": "ClusPro", "patchdock": "PatchDock",
    "equidock": "EquiDock", "equidock_no_clashes": "EquiDock (no clashes)",
}
METRICS = docking_scores.METRICS

# EquiDock's DB5.5 test-set numbers as published (Ganea et al., ICLR 2022, Table 1), as
# reproduced in the "Public" column of NVIDIA BioNeMo's EquiDock model card
# (docs/bionemo/models/equidock.md): median, mean, std.
PUBLISHED = {
    "equidock": {
        "complex_rmsd": (14.13, 14.72, 5.31),
        "interface_rmsd": (11.97, 13.23, 4.93),
    },
}


def complex_ids(data: pathlib.Path) -> list[str]:
  """The complex ids that have a ground-truth ligand file, sorted."""
  return list(docking_scores.find_results(data).complexes)


def score_method(data: pathlib.Path, method: str, cache: dict | None = None) -> list[dict]:
  """`docking_scores.score_complex` for every test complex the method has a ligand file for."""
  del cache  # the library caches the structures it reads
  return docking_scores.score_method(docking_scores.find_results(data), method)


summarize = docking_scores.summarize
pairing_summary = docking_scores.pairing_summary


def _fmt(s: dict) -> str:
  return f"{s['median']:.2f} / {s['mean']:.2f} / {s['std']:.2f}"


def markdown(results: dict) -> str:
  """The results as a Markdown page."""
  lines = [
      "# Docking baselines on the DB5.5 test set (25 complexes), scored with jaxgeo",
      "",
      "Written by `experiments/score_docking_baselines.py` from `../shared/data/db5_docking`",
      "(the published outputs of each method, from octavian-ganea/equidock_public).",
      "Cells: median / mean / std over the complexes (std with ddof=0, as EquiDock's script).",
      "",
      "- Complex RMSD, interface RMSD: EquiDock's definitions (CA atoms; Kabsch of the whole",
      "  predicted complex, or of the interface CA pairs closer than 8 A in the truth).",
      "- DockQ, fnat, iRMSD, LRMSD: CAPRI / DockQ (Basu & Wallner 2016) on heavy atoms; LRMSD",
      "  superposes on the partner with more residues, as DockQ.",
      "- Ligand-only methods (ClusPro, PatchDock, EquiDock) are paired with the ground-truth",
      "  receptor.",
      "",
      "| method | n | complex RMSD (A) | interface RMSD (A) | DockQ | fnat | iRMSD (A) |"
      " LRMSD (A) | high/med/acc/inc |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for method, res in results["methods"].items():
    s = res["summary"]
    c = s["dockq_classes"]
    lines.append(
        f"| {DISPLAY.get(method, method)} | {s['complex_rmsd']['n']} | {_fmt(s['complex_rmsd'])} | "
        f"{_fmt(s['interface_rmsd'])} | {_fmt(s['dockq'])} | {_fmt(s['fnat'])} | "
        f"{_fmt(s['irmsd'])} | {_fmt(s['lrmsd'])} | "
        f"{c['high']}/{c['medium']}/{c['acceptable']}/{c['incorrect']} |")
  lines += ["", "## Against the published numbers", "",
            "| method | metric | published (median / mean / std) | jaxgeo | largest difference |",
            "|---|---|---|---|---|"]
  for method, published in PUBLISHED.items():
    if method not in results["methods"]:
      continue
    s = results["methods"][method]["summary"]
    for metric, ref in published.items():
      ours = (s[metric]["median"], s[metric]["mean"], s[metric]["std"])
      diff = max(abs(a - b) for a, b in zip(ours, ref))
      lines.append(f"| {DISPLAY[method]} | {metric.replace('_', ' ')} | "
                   f"{ref[0]:.2f} / {ref[1]:.2f} / {ref[2]:.2f} | "
                   f"{ours[0]:.2f} / {ours[1]:.2f} / {ours[2]:.2f} | {diff:.3f} |")
  lines += ["", "Published: Ganea et al., ICLR 2022, Table 1 (DB5.5 test set), EquiDock row.",
            "",
            "## Residue pairing (decoy vs ground truth)", "",
            "| method | partner | residues (decoy / truth) | matched | paired in order / by key |"
            " residue-name mismatches | same (chain, number, icode) |",
            "|---|---|---|---|---|---|---|"]
  for method, res in results["methods"].items():
    for side, p in res["pairing"].items():
      lines.append(f"| {DISPLAY.get(method, method)} | {side} | {p['residues_model']} / "
                   f"{p['residues_native']} | {p['matched']} | {p['paired_in_order']} / "
                   f"{p['paired_by_key']} | {p['name_mismatches']} | {p['same_key']} |")
  lines += ["", "Receptor rows of ligand-only methods are the ground truth paired with itself.",
            "Every decoy has the ground truth's residues in the same order (same count, same",
            "residue names), so residues are paired in order, as EquiDock's evaluation pairs",
            "CA atoms. ATTRACT's files rename the chains and renumber some residues (insertion",
            "codes dropped): pairing those by (chain, number, insertion code) would fail.",
            "", f"Run time: {results['seconds']:.1f} s.", ""]
  return "\n".join(lines)


def run(data: pathlib.Path, methods: list[str]) -> dict:
  """Scores every method; returns {"methods": {method: {summary, pairing, complexes}}, ...}."""
  start = time.time()
  results = {"data": os.path.relpath(data, REPO),
             "methods": docking_scores.score_folder(data, methods)["methods"]}
  results["published"] = {m: {k: list(v) for k, v in p.items()} for m, p in PUBLISHED.items()}
  results["seconds"] = time.time() - start
  return results


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
  parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
  parser.add_argument("--methods", default=",".join(METHODS))
  args = parser.parse_args(argv)
  methods = [m for m in args.methods.split(",") if m]
  unknown = [m for m in methods if m not in METHODS]
  if unknown:
    parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
  if not (args.data / "ground_truth").is_dir():
    parser.error(f"{args.data}: no ground_truth/ folder (is ../shared/data present?)")
  results = run(args.data, methods)
  text = markdown(results)
  print(text)
  io.atomic_write_text(args.out / "docking_baselines.md", text)
  io.atomic_write_text(args.out / "docking_baselines.json", json.dumps(results, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
