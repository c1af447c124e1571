"""`jaxgeo store verify [--repair] STORE`: check every entry of an embedding store.

Each entry's file is checked against its index row (present, header, size, shape, dtype,
finite values, the SHA-256 recorded when it was written). The report counts ok / missing file /
truncated / corrupt / checksum / non-finite entries, and the entry files the index does not
list (an index emptied or restored from an older copy); `--repair` removes every damaged entry
from the index (and its file), and deletes the unlisted files (a file holds only the array, so
it cannot be re-indexed), so that the next `jaxgeo embed` recomputes them. Exit status 0 when
every entry is ok (or was repaired), 1 when damage remains.
"""
from __future__ import annotations

import argparse


def run_verify(args: argparse.Namespace) -> int:
  from jaxgeo.errors import DataError
  from jaxgeo.lm.store import INDEX_FILE, EmbeddingStore
  if not EmbeddingStore.is_store(args.store):
    raise DataError(f"embedding store {args.store}: no such store (no {INDEX_FILE})")
  store = EmbeddingStore(args.store, create=False)
  report = store.verify_report(repair=args.repair)
  for line in report.problems[:args.show]:
    print(f"  {line}")
  if len(report.problems) > args.show:
    print(f"  ... and {len(report.problems) - args.show} more")
  print(report.summary())
  return 0 if report.clean else 1


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "store", help="check (and repair) an embedding store",
      description="Embedding-store maintenance. `verify` checks every entry and counts what it "
      "finds; with --repair, damaged entries are removed from the index so that the next "
      "`jaxgeo embed` recomputes them.")
  sub = p.add_subparsers(dest="store_command", metavar="ACTION")
  sub.required = True
  v = sub.add_parser("verify", help="check every entry (size, header, finite values, checksum)",
                     description=__doc__.split("\n\n")[1])
  v.add_argument("store", help="embedding store folder")
  v.add_argument("--repair", action="store_true",
                 help="remove damaged entries from the index and delete entry files it "
                 "does not list (the next `jaxgeo embed` recomputes them)")
  v.add_argument("--show", type=int, default=20, help="damaged entries listed (default 20)")
  v.set_defaults(func=run_verify)
