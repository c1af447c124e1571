"""`jaxgeo grid`: run the experiment grid (resumable), then `jaxgeo report` on its results.

    jaxgeo grid --tasks position,interface,affinity --nets gvp,egnn \
        --fusions none,replace,project,random-lm --features paper --seeds 0,1,2 [--lm unirep]
"""
from __future__ import annotations

import argparse


def _names(text: str) -> tuple[str, ...]:
  return tuple(t.strip() for t in text.split(",") if t.strip())


def run(args: argparse.Namespace) -> int:
  from jaxgeo import grid, report, train
  from jaxgeo.errors import ConfigError
  try:
    seeds = tuple(int(s) for s in _names(args.seeds))
  except ValueError:
    raise ConfigError(f"--seeds {args.seeds!r}: expected integers separated by commas") from None
  if args.max_runs is not None and args.max_runs < 0:
    raise ConfigError(f"--max-runs {args.max_runs}: must be >= 0")
  spec = grid.GridSpec(tasks=_names(args.tasks), networks=_names(args.nets),
                       variants=_names(args.fusions), features=_names(args.features),
                       seeds=seeds, lm=args.lm, budget=args.budget)
  cells = list(grid.cells(spec))
  print(f"jaxgeo grid: {len(cells)} cells ({len(set(c.row for c in cells))} rows x "
        f"{len(seeds)} seeds), budget {args.budget}; runs in {args.runs}, results in "
        f"{args.results}")
  if args.list:
    for cell in cells:
      print(cell.name)
    return 0
  train.setup_jax()
  status = grid.run(spec, args.runs, args.results, progress=not args.no_progress,
                    stop_after=args.max_runs)
  counts = {k: sum(1 for v in status.values() if v.split(":")[0] == k)
            for k in ("kept", "trained", "pending", "failed")}
  print("jaxgeo grid: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
  for name, value in status.items():
    if value.startswith("failed"):
      print(f"  {name}: {value}")
  if not args.no_report and not grid.has_results(args.results):
    print(f"jaxgeo grid: no cell has finished yet (no results in {args.results}): no report "
          "written")
  elif not args.no_report:
    written = report.write(report.read_runs(args.results), args.report_dir)
    print("jaxgeo grid: report written: " + ", ".join(str(p) for p in written))
  return 1 if counts["failed"] else 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "grid", help="run the experiment grid (every task x network x fusion x seed; resumable)",
      description="Trains each cell of the grid into RUNS/{row}-seed{seed} (skipping cells "
      "whose results are kept, resuming interrupted ones), copies each finished run's small "
      "results (config, log, test metrics) into RESULTS, then writes the report (tables and "
      "figures). Budgets per task come from the row table (jaxgeo/rows.py GRID_BUDGETS).")
  p.add_argument("--tasks", default="position,interface,affinity")
  p.add_argument("--nets", default="gvp,egnn")
  p.add_argument("--fusions", default="none,replace,project,random-lm",
                 help="none, replace, concat, project, random-lm")
  p.add_argument("--features", default="paper", help="paper and/or rich")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--lm", choices=("unirep", "unirep256", "esm2"), default="unirep",
                 help="UniRep 1900 (offline), UniRep 256 (offline; its random-lm control is "
                 "UniRep 256 at random) or ESM-2 650M (converted weights)")
  p.add_argument("--budget", default="cpu", help="a budget of jaxgeo/rows.py GRID_BUDGETS")
  p.add_argument("--runs", default="runs/grid", help="run folders (checkpoints)")
  p.add_argument("--results", default="experiments/results/runs",
                 help="the small results of finished runs (committed)")
  p.add_argument("--report-dir", default="experiments/results",
                 help="where `jaxgeo report` writes tables and figures")
  p.add_argument("--max-runs", type=int, default=None,
                 help="train at most N cells in this call")
  p.add_argument("--list", action="store_true", help="only list the cells")
  p.add_argument("--no-report", action="store_true", help="do not write the report")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.set_defaults(func=run)
