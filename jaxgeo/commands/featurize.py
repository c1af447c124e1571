"""`jaxgeo featurize`: structures -> residue graphs, with a summary of sizes and padding."""
from __future__ import annotations

import argparse
import os
import pathlib
import time

STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")


def _is_structure_name(name: str) -> bool:
  parts = name.lower().removesuffix(".gz").split(".")
  return any("." + p in STRUCTURE_SUFFIXES for p in parts[1:])


def structure_files(folder: str | os.PathLike) -> list[pathlib.Path]:
  """Structure files in a folder (PDB / mmCIF, optionally gzipped, DB5.5 '.pdb.2.gz' too),
  sorted by name; a file is itself (whatever its name: the reader sniffs the format).
  Raises DataError when the path is missing or the folder holds none."""
  from jaxgeo.errors import DataError
  folder = pathlib.Path(folder)
  if folder.is_file():
    return [folder]
  if not folder.is_dir():
    kind = "file" if _is_structure_name(folder.name) else "folder"
    raise DataError(f"{folder}: no such {kind}")
  files = [path for path in sorted(folder.iterdir())
           if path.is_file() and _is_structure_name(path.name)]
  if not files:
    raise DataError(f"{folder}: no structure files (.pdb, .cif, optionally .gz)")
  return files


def add_graph_options(parser: argparse.ArgumentParser) -> None:
  """The residue-graph options shared by the commands that build graphs."""
  parser.add_argument("--edges", choices=("knn", "radius"), default="knn",
                      help="k nearest CA neighbours or CA radius graph (default: knn)")
  parser.add_argument("--k", type=int, default=30, help="neighbours for knn (default: 30)")
  parser.add_argument("--radius", type=float, default=8.0,
                      help="cutoff in Angstrom for radius graphs (default: 8)")
  parser.add_argument("--max-neighbors", type=int, default=32,
                      help="neighbour cap for radius graphs (default: 32)")
  parser.add_argument("--features", choices=("paper", "rich"), default="paper",
                      help="node/edge features: the paper's (residue type at the CA, 16 RBFs "
                      "and the direction per edge) or rich (GVP-CPD: dihedrals, neighbour "
                      "vectors, sequence-separation edges) (default: paper)")


def check_graph_options(args: argparse.Namespace) -> None:
  """Raises ConfigError naming the option when a graph option is out of range (once, before
  any file is read)."""
  from jaxgeo.errors import ConfigError
  if args.edges == "knn" and args.k < 1:
    raise ConfigError(f"--k {args.k}: must be at least 1")
  if args.edges == "radius" and not args.radius > 0:
    raise ConfigError(f"--radius {args.radius}: must be positive")
  if args.edges == "radius" and args.max_neighbors < 1:
    raise ConfigError(f"--max-neighbors {args.max_neighbors}: must be at least 1")


def check_options(args: argparse.Namespace) -> None:
  """Raises ConfigError naming the first out-of-range option of `jaxgeo featurize`."""
  from jaxgeo.errors import ConfigError
  check_graph_options(args)
  for option, value in (("--batch-graphs", args.batch_graphs), ("--max-buckets", args.max_buckets)):
    if value < 1:
      raise ConfigError(f"{option} {value}: must be at least 1")
  if args.limit is not None and args.limit < 1:
    raise ConfigError(f"--limit {args.limit}: must be a positive number of files")


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      "featurize", help="turn structures (a folder or one file) into residue graphs and "
      "summarise them",
      description="Reads every PDB/mmCIF file (optionally .gz) in FOLDER (or the one file "
      "FOLDER names), builds its residue "
      "graph, chooses padding buckets and prints structures/s, residues/s and the padding "
      "efficiency. Unreadable files are reported and skipped.")
  parser.add_argument("folder", metavar="FOLDER", help="folder of structure files, or one file")
  add_graph_options(parser)
  parser.add_argument("--chains", default=None, help="keep only these chains, e.g. A or A,B")
  parser.add_argument("--batch-graphs", type=int, default=8, help="graphs per batch (default: 8)")
  parser.add_argument("--max-buckets", type=int, default=4, help="padding buckets (default: 4)")
  parser.add_argument("--limit", type=int, default=None, help="read only the first N files")
  parser.add_argument("--quiet", action="store_true", help="no progress bar")
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from tqdm import tqdm

  from jaxgeo import batching, graph, structure
  from jaxgeo.errors import DataError, StructureError

  check_options(args)
  files = structure_files(args.folder)[: args.limit]
  graphs, failures, residues = [], [], 0
  start = time.perf_counter()
  for path in tqdm(files, desc="featurize", unit="structure", disable=args.quiet):
    try:
      protein = structure.load_protein(path, chains=args.chains)
      graphs.append(graph.residue_graph(protein, edges=args.edges, k=args.k, radius=args.radius,
                                        max_neighbors=args.max_neighbors,
                                        features=args.features))
      residues += len(protein)
    except (StructureError, DataError) as e:  # a file's problem; option errors stop the run
      failures.append(str(e))
  seconds = time.perf_counter() - start
  for failure in failures:
    print(f"skipped: {failure}")
  if not graphs:
    raise DataError(f"{args.folder}: none of {len(files)} files could be read")
  buckets = batching.choose_buckets(graphs, args.batch_graphs, args.max_buckets)
  efficiency = batching.padding_efficiency(graphs, buckets, args.batch_graphs)
  sizes, edges = batching.graph_sizes(graphs)
  print(f"structures: {len(graphs)} read, {len(failures)} skipped, in {seconds:.1f} s "
        f"({len(graphs) / seconds:.1f} structures/s, {residues / seconds:.0f} residues/s)")
  print(f"residues per structure: mean {sizes.mean():.0f}, min {sizes.min()}, max {sizes.max()}; "
        f"edges: mean {edges.mean():.0f}")
  print("buckets (n_node, n_edge, n_graph): " +
        ", ".join(f"({b.n_node}, {b.n_edge}, {b.n_graph})" for b in buckets))
  print(f"padding efficiency over one epoch of {efficiency['batches']} batches: "
        f"nodes {efficiency['nodes']:.1%}, edges {efficiency['edges']:.1%}")
  return 0
