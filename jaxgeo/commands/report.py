"""`jaxgeo report RUNS_DIR [--out DIR]`: tables and figures from finished run folders."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
  from jaxgeo import report
  runs = report.read_runs(args.runs_dir)
  written = report.write(runs, args.out, figures=not args.no_figures)
  print(f"jaxgeo report: {len(runs)} runs -> " + ", ".join(str(p) for p in written))
  return 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "report", help="tables and figures of finished runs (the experiment grid's results)",
      description="Reads every finished run folder below RUNS_DIR (config.json, log.jsonl, "
      "test_metrics.json) and writes OUT/results.md (a table per task with mean +- std over "
      "seeds, parameters and train time; the headline table of relative gains with the "
      "language model, paired differences over seeds, controls beside it) and PNG figures.")
  p.add_argument("runs_dir", help="a folder of run folders, e.g. experiments/results/runs")
  p.add_argument("--out", default="experiments/results", help="output folder")
  p.add_argument("--no-figures", action="store_true", help="tables only")
  p.set_defaults(func=run)
