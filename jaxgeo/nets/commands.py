"""`jaxgeo params`: parameter counts of the networks' paper configurations.

    jaxgeo params                  # a table: network x fusion mode
    jaxgeo params --markdown       # the same as a markdown table (docs/models.md)
    jaxgeo params --lm-dim 480     # with another language-model width (ESM-2 35M: 480)

Counts come from `jax.eval_shape` of `init` (nothing is allocated or compiled), on a graph
head with one output; a node head has the same count.
"""
from __future__ import annotations

import argparse

NETWORK_TITLES = {"gvp": "GVP-GNN", "egnn": "EGNN", "molformer": "Molformer"}
FUSION_TITLES = {
    "none": "none (residue-type embedding)",
    "replace": "replace (LM vector; EGNN/Molformer widened to it)",
    "concat": "concat (embedding ++ LM vector)",
    "project": "project (embedding + linear(LM) at the network's width)",
}


def _example_graph(lm_dim: int):
  """A 2-node, 2-edge batch with the contract's node and edge dicts (shapes only matter)."""
  import jraph
  import numpy as np
  from jaxgeo import graph
  nodes = {
      "s": np.zeros((2, graph.NODE_SCALAR_DIM), np.float32),
      "v": np.zeros((2, graph.NODE_VECTOR_DIM, 3), np.float32),
      "x": np.zeros((2, 3), np.float32), "aatype": np.zeros(2, np.int32),
      "element": np.zeros(2, np.int32), "lm": np.zeros((2, max(lm_dim, 1)), np.float32)}
  edges = {"s": np.zeros((2, graph.EDGE_SCALAR_DIM), np.float32),
           "v": np.zeros((2, graph.EDGE_VECTOR_DIM, 3), np.float32)}
  return jraph.GraphsTuple(nodes=nodes, edges=edges, senders=np.array([1, 0], np.int32),
                           receivers=np.array([0, 1], np.int32), n_node=np.array([2], np.int32),
                           n_edge=np.array([2], np.int32), globals={})


def count_params(config, lm_dim: int) -> int:
  """Parameter count of `config` without allocating or compiling anything."""
  import jax
  from jaxgeo import nets
  model = nets.make_model(config)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), _example_graph(lm_dim))
  return nets.param_count(shapes)


def paper_counts(lm_dim: int) -> dict[tuple[str, str], int]:
  """{(network, fusion mode): parameter count} of every paper configuration."""
  from jaxgeo import nets
  from jaxgeo.nets import config as config_lib
  counts = {}
  for network in config_lib.NETWORKS:
    for mode in config_lib.FUSION_MODES:
      cfg = nets.paper_config(network, fusion=mode, lm_dim=lm_dim)
      counts[(network, mode)] = count_params(cfg, lm_dim)
  return counts


def markdown_table(counts: dict[tuple[str, str], int], lm_dim: int) -> str:
  """Parameter counts as a markdown table (networks as columns)."""
  networks = list(dict.fromkeys(n for n, _ in counts))
  modes = list(dict.fromkeys(m for _, m in counts))
  lines = [
      f"Parameters of the paper configurations (`jaxgeo params --markdown`; language-model "
      f"width {lm_dim}, graph head with one output):",
      "",
      "| fusion | " + " | ".join(NETWORK_TITLES.get(n, n) for n in networks) + " |",
      "|---|" + "---:|" * len(networks),
  ]
  for mode in modes:
    row = " | ".join(f"{counts[(n, mode)]:,}" for n in networks)
    lines.append(f"| {FUSION_TITLES.get(mode, mode)} | {row} |")
  return "\n".join(lines) + "\n"


def plain_table(counts: dict[tuple[str, str], int]) -> str:
  networks = list(dict.fromkeys(n for n, _ in counts))
  modes = list(dict.fromkeys(m for _, m in counts))
  lines = [f"{'fusion':10s}" + "".join(f"{NETWORK_TITLES.get(n, n):>14s}" for n in networks)]
  for mode in modes:
    lines.append(f"{mode:10s}" + "".join(f"{counts[(n, mode)]:>14,}" for n in networks))
  return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
  from jaxgeo.errors import ConfigError
  if args.lm_dim < 1:
    raise ConfigError(f"--lm-dim={args.lm_dim}: must be at least 1")
  counts = paper_counts(args.lm_dim)
  print(markdown_table(counts, args.lm_dim) if args.markdown else plain_table(counts), end="")
  return 0


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      "params", help="parameter counts of the networks' paper configurations",
      description="Prints the parameter count of GVP-GNN, EGNN and Molformer at their paper "
                  "configurations, for each language-model fusion mode.")
  parser.add_argument("--lm-dim", type=int, default=1280,
                      help="language-model embedding width (default 1280, ESM-2 650M)")
  parser.add_argument("--markdown", action="store_true", help="print a markdown table")
  parser.set_defaults(func=run)
