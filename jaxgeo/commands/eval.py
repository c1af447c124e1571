"""`jaxgeo eval RUN_DIR [--checkpoint best|last] [--split val --split test]`: re-evaluate a
run folder's checkpoint."""
from __future__ import annotations

import argparse
import pathlib
import sys

from jaxgeo.commands import add_cpu_devices_argument


def register(subparsers) -> None:
  e = subparsers.add_parser(
      "eval", help="evaluate a run folder's best (or last) checkpoint",
      description="Re-evaluates a run folder's checkpoint on its validation and test splits, "
      "prints the metrics and writes RUN_DIR/eval_<checkpoint>.json. With LM fusion, the "
      "store must hold the language model the run trained with (its fingerprint, RUN_DIR/"
      "lm.json).")
  e.add_argument("run_dir", help="run folder written by `jaxgeo train`")
  e.add_argument("--checkpoint", choices=("best", "last"), default="best")
  e.add_argument("--split", dest="splits", action="append", default=None,
                 choices=("train", "val", "test"), help="split to evaluate (repeatable; "
                 "default: val and test)")
  add_cpu_devices_argument(e, "evaluate")
  e.add_argument("--no-progress", action="store_true", help="no progress bars")
  e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import jax
  from jaxgeo import train
  train.setup_jax(cpu_devices=train.saved_cpu_device_count(args.run_dir,
                                                            args.cpu_devices))
  out = train.evaluate_run(args.run_dir, which=args.checkpoint,
                           splits=tuple(args.splits or ("val", "test")),
                           progress=not args.no_progress,
                           echo=lambda line: print(line, file=sys.stderr))
  print(f"{args.run_dir}: {args.checkpoint} checkpoint (epoch {out['epoch']}), "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s)")
  for split in args.splits or ("val", "test"):
    res = out[split]
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(res["metrics"].items()))
    print(f"  {split:5s} loss {res['loss']:.4f} ({res['count']} items): {metrics}")
  print(f"  written to {pathlib.Path(args.run_dir) / ('eval_' + args.checkpoint + '.json')}")
  return 0
