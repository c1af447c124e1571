"""`jaxgeo rows [--markdown] [--names]`: the experiment rows (`jaxgeo.rows.ROWS`)."""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
  from jaxgeo import rows
  if args.names:
    print("\n".join(rows.names()))
  else:
    print(rows.table(markdown=args.markdown))
  return 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "rows", help="list the experiment rows (task x network x fusion x language model)",
      description="Lists the named experiments that `jaxgeo train --config NAME`, "
      "`jaxgeo embed --config NAME` and `./launch.sh NAME` accept.")
  p.add_argument("--markdown", action="store_true", help="a Markdown table")
  p.add_argument("--names", action="store_true", help="names only, one a line")
  p.set_defaults(func=run)
