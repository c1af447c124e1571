"""Prints finished runs' test metrics side by side (one column per run folder).

  python experiments/compare_runs.py runs/A runs/B [...] [--markdown]

Reads each run's test_metrics.json (written by `jaxgeo train`).
"""
import argparse
import json
import pathlib
import sys


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", help="run folders")
  parser.add_argument("--markdown", action="store_true", help="a markdown table")
  args = parser.parse_args()
  results = []
  for run in args.runs:
    path = pathlib.Path(run) / "test_metrics.json"
    if not path.is_file():
      print(f"compare_runs: {path}: not found (has the run finished?)", file=sys.stderr)
      return 2
    results.append(json.loads(path.read_text()))
  primary = results[0]["primary_metric"]
  # The primary metric first, then the others alphabetically.
  metrics = sorted({k for r in results for k in r["test"]}, key=lambda k: (k != primary, k))
  header = ["test metric"] + [f"{r['network']}/{r['fusion']} ({r['name']})" for r in results]
  rows = [[m] + [f"{r['test'].get(m, float('nan')):.4f}" for r in results] for m in metrics]
  rows.append(["parameters"] + [f"{r['parameters']:,}" for r in results])
  rows.append(["best epoch / run"] + [f"{r['best_epoch']} / {r['epochs_run']}" for r in results])
  rows.append(["train seconds"] + [f"{r['train_seconds_total']:.0f}" for r in results])
  if args.markdown:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
      print("| " + " | ".join(row) + " |")
  else:
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
      print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
  print(f"primary metric: {primary} ({'higher' if results[0]['higher_is_better'] else 'lower'} "
        "is better)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
