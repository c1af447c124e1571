"""`jaxgeo score-docking DIR [--methods m1,m2] [--json [--compact]]`: score docking methods'
predicted complexes against the ground truth (`jaxgeo.metrics.docking_scores`).

DIR: `ground_truth/ID_{l,r}_b_COMPLEX.pdb[.gz]` and `decoys/METHOD/ID_l_b_SUFFIX.pdb[.gz]`
(plus `ID_r_b_SUFFIX` where the method moved the receptor), as `../shared/data/db5_docking`.

`--json` prints, per method, the summary, `per_complex` ({complex_rmsd, interface_rmsd, dockq:
{complex id: value}}) and every complex's full row; `--compact` keeps the summary and
`per_complex` only (the input of `jaxgeo report --docking`).
"""
from __future__ import annotations

import argparse
import json
import math


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "score-docking", help="complex / interface RMSD and DockQ of docking methods' outputs",
      description="Scores every method folder under DIR/decoys against DIR/ground_truth: "
      "EquiDock's complex and interface RMSD (CA atoms; median / mean / std over the "
      "complexes), DockQ (median / mean) and the number of complexes with DockQ >= 0.23. "
      "Ligand-only methods are paired with the ground-truth receptor.")
  p.add_argument("folder", metavar="DIR", help="results folder (ground_truth/, decoys/METHOD/)")
  p.add_argument("--methods", default="", help="comma-separated method folders (default: all)")
  p.add_argument("--json", action="store_true", help="print JSON (summaries, per-complex "
                 "values keyed by complex id, per-complex rows) instead of the table")
  p.add_argument("--compact", action="store_true", help="with --json: summaries and "
                 "per-complex values only (complex / interface RMSD, DockQ by complex id)")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.set_defaults(func=run)


def _finite(obj):
  """NaN / inf -> None, so that the JSON is standard."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  return obj


def run(args: argparse.Namespace) -> int:
  from jaxgeo.errors import ConfigError
  from jaxgeo.metrics import docking_scores
  if args.compact and not args.json:
    raise ConfigError("score-docking: --compact goes with --json")
  methods = [m.strip() for m in args.methods.split(",") if m.strip()]
  scores = docking_scores.score_folder(args.folder, methods or None,
                                       progress=not args.no_progress)
  if args.json:
    if args.compact:
      scores = docking_scores.compact(scores)
    print(json.dumps(_finite(scores), indent=1, default=float))
  else:
    print(f"{args.folder}: {len(scores['complexes'])} complexes; RMSDs in A (EquiDock's, CA "
          "atoms); DockQ on heavy atoms")
    print(docking_scores.table(scores))
  return 0
