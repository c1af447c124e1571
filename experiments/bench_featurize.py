"""Featurization throughput: every DB5.5 structure -> residue graph, and padding efficiency.

  python experiments/bench_featurize.py [--data ../shared/data] [--edges knn|radius]

Prints structures/s, residues/s (reading + graph building, one process) and the padding
efficiency of the buckets chosen for the bound chains, and writes
experiments/results/bench_featurize.json.
"""
import argparse
import json
import pathlib
import platform
import time

from jaxgeo import batching, graph, structure
from jaxgeo.commands.featurize import structure_files
from jaxgeo.io import atomic_write_json

REPO = pathlib.Path(__file__).resolve().parent.parent


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
  parser.add_argument("--edges", default="knn", choices=("knn", "radius"))
  parser.add_argument("--batch-graphs", type=int, default=8)
  parser.add_argument("--max-buckets", type=int, default=4)
  args = parser.parse_args()

  files = structure_files(pathlib.Path(args.data) / "db5.5" / "structures")
  read_s = graph_s = 0.0
  residues = 0
  bound = []
  for path in files:
    t0 = time.perf_counter()
    protein = structure.load_protein(path)
    t1 = time.perf_counter()
    g = graph.residue_graph(protein, edges=args.edges, radius=8.0, max_neighbors=32)
    t2 = time.perf_counter()
    read_s += t1 - t0
    graph_s += t2 - t1
    residues += len(protein)
    if path.name.endswith("_b.pdb.gz"):
      bound.append(g)
  total = read_s + graph_s
  t0 = time.perf_counter()
  buckets = batching.choose_buckets(bound, args.batch_graphs, args.max_buckets)
  efficiency = batching.padding_efficiency(bound, buckets, args.batch_graphs)
  bucket_s = time.perf_counter() - t0
  sizes, _ = batching.graph_sizes(bound)
  result = {
      "structures": len(files), "residues": residues, "seconds": round(total, 2),
      "structures_per_s": round(len(files) / total, 1),
      "residues_per_s": round(residues / total),
      "read_fraction": round(read_s / total, 2),
      "edges": args.edges, "bound_chains": len(bound),
      "bound_residues_mean": round(float(sizes.mean()), 1), "bound_residues_max": int(sizes.max()),
      "buckets": [[b.n_node, b.n_edge, b.n_graph] for b in buckets],
      "padding_efficiency_nodes": round(efficiency["nodes"], 3),
      "padding_efficiency_edges": round(efficiency["edges"], 3),
      "bucket_choice_seconds": round(bucket_s, 2),
      "machine": platform.processor() or platform.machine(),
  }
  print(json.dumps(result, indent=2))
  atomic_write_json(REPO / "experiments" / "results" / f"bench_featurize_{args.edges}.json", result)


if __name__ == "__main__":
  main()
