"""`jaxgeo report RUNS_DIR [--out DIR] [--readme README.md] [--docking JSON ...]`: tables and
figures from finished run folders (`--readme`: the summary table and the hours of training
into the README's marked block); with `--docking`, the cumulative distribution of complex
RMSD of the docking methods in score-docking JSON files (`OUT/docking_cdf.png`; RUNS_DIR may
then be left out)."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
  from jaxgeo import io, report
  from jaxgeo.errors import ConfigError
  if args.runs_dir is None and not args.docking:
    raise ConfigError("report: give RUNS_DIR (run folders), --docking JSON ..., or both")
  if args.readme and args.runs_dir is None:
    raise ConfigError("report: --readme needs RUNS_DIR (the summary table is of run folders)")
  if args.docking and args.no_figures:
    raise ConfigError("report: --docking draws a figure; it does not go with --no-figures")
  runs = report.read_runs(args.runs_dir) if args.runs_dir is not None else None
  methods = report.read_docking(args.docking) if args.docking else None
  out = io.output_folder(args.out, f"--out {args.out}", ConfigError)
  if runs is not None:
    written = report.write(runs, out, figures=not args.no_figures)
    print(f"jaxgeo report: {len(runs)} runs -> " + ", ".join(str(p) for p in written))
    if args.readme:
      report.update_markdown(args.readme, report.readme_block(runs))
      print(f"jaxgeo report: summary table -> {args.readme}")
  if methods is not None:
    path = out / report.DOCKING_FIGURE
    report.figure_docking_cdf(methods, path)
    print(f"jaxgeo report: {len(methods)} docking methods ({', '.join(methods)}) -> {path}")
  return 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "report", help="tables and figures of finished runs (the experiment grid's results)",
      description="Reads every finished run folder below RUNS_DIR (config.json, log.jsonl, "
      "test_metrics.json) and writes OUT/results.md (a table per task with mean +- std over "
      "seeds, parameters and train time; the headline table of gains with the language "
      "model: relative, or the absolute difference for correlation metrics; paired "
      "differences over seeds, controls beside it) and PNG figures. "
      "--docking JSON ... draws OUT/docking_cdf.png: the cumulative distribution of complex "
      "RMSD over the complexes of every method in those score-docking JSON files.")
  p.add_argument("runs_dir", nargs="?", default=None,
                 help="a folder of run folders, e.g. experiments/results/runs (optional with "
                 "--docking)")
  p.add_argument("--out", default="experiments/results", help="output folder")
  p.add_argument("--no-figures", action="store_true", help="tables only")
  p.add_argument("--readme", metavar="MD", default=None,
                 help="also rewrite the summary table (primary metric of every row) between "
                 "the markers `<!-- jaxgeo report: summary ... -->` and `<!-- /jaxgeo report: "
                 "summary -->` of this Markdown file, e.g. README.md")
  p.add_argument("--docking", nargs="+", metavar="JSON", default=[],
                 help="score-docking JSON files (`jaxgeo score-docking DIR --json [--compact]`, "
                 "experiments/results/docking_baselines.json): draw OUT/docking_cdf.png")
  p.set_defaults(func=run)
