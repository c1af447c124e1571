"""The `jaxgeo` command: one sub-command a verb.

Each verb is one file in `jaxgeo/commands/` exposing `register(subparsers)`, which adds its
sub-parser and sets `func` (a callable taking the parsed `argparse.Namespace` and returning
an exit status). This module only collects them, so that `jaxgeo --help` lists every verb
without importing JAX.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from jaxgeo.errors import JaxgeoError

# Modules that define sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (
    "jaxgeo.commands.featurize",
    "jaxgeo.commands.convert_esm",
    "jaxgeo.commands.embed",
    "jaxgeo.commands.store",
    "jaxgeo.commands.rows",
    "jaxgeo.commands.train",
    "jaxgeo.commands.eval",
    "jaxgeo.commands.predict",
    "jaxgeo.commands.params",
    "jaxgeo.commands.grid",
    "jaxgeo.commands.report",
    "jaxgeo.commands.dock",
    "jaxgeo.commands.score_docking",
)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="jaxgeo",
      description="Protein language models + geometric deep learning on protein structures.")
  subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
  subparsers.required = True
  for name in COMMAND_MODULES:
    importlib.import_module(name).register(subparsers)
  return parser


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    status = args.func(args)
  except JaxgeoError as e:
    print(f"jaxgeo {args.command}: error: {e}", file=sys.stderr)
    return 2
  except BrokenPipeError:  # e.g. `jaxgeo rows | head`: the reader left; not an error of ours
    import os
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
  except KeyboardInterrupt:
    print(f"jaxgeo {args.command}: interrupted", file=sys.stderr)
    return 130
  return int(status or 0)
