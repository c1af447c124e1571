"""`jaxgeo params`: parameter counts of the networks' paper configurations.

    jaxgeo params                     # a table: fusion mode x network
    jaxgeo params --markdown          # the same as a markdown table (README, docs/models.md)
    jaxgeo params --lm-dim 480        # another language-model width (ESM-2 35M: 480)
    jaxgeo params --features rich     # on "rich" graphs (36 edge scalars) instead of "paper"

The counting is `jaxgeo.nets.count_params`; this module only formats it. Registering the
verb imports neither JAX nor Haiku.
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
FEATURE_TITLES = {"paper": "the paper's graph features (16 edge scalars)",
                  "rich": "rich graph features (36 edge scalars)"}


def _layout(counts: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
  networks = list(dict.fromkeys(n for n, _ in counts))
  modes = list(dict.fromkeys(m for _, m in counts))
  return networks, modes


def markdown_table(counts: dict[tuple[str, str], int], lm_dim: int,
                   features: str = "paper") -> str:
  """Parameter counts {(network, mode): count} as a markdown table (networks as columns),
  after one line saying what was counted."""
  networks, modes = _layout(counts)
  lines = [
      f"Parameters of the paper configurations (`jaxgeo params --markdown`; language-model "
      f"width {lm_dim}, {FEATURE_TITLES.get(features, features)}, graph head with one "
      f"output):",
      "",
      "| fusion | " + " | ".join(NETWORK_TITLES.get(n, n) for n in networks) + " |",
      "|---|" + "---:|" * len(networks),
  ]
  for mode in modes:
    row = " | ".join(f"{counts[(n, mode)]:,}" for n in networks)
    lines.append(f"| {FUSION_TITLES.get(mode, mode)} | {row} |")
  return "\n".join(lines) + "\n"


def plain_table(counts: dict[tuple[str, str], int]) -> str:
  """The same counts as aligned plain text."""
  networks, modes = _layout(counts)
  lines = [f"{'fusion':10s}" + "".join(f"{NETWORK_TITLES.get(n, n):>14s}" for n in networks)]
  for mode in modes:
    lines.append(f"{mode:10s}" + "".join(f"{counts[(n, mode)]:>14,}" for n in networks))
  return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
  from jaxgeo.errors import ConfigError
  if args.lm_dim < 1:
    raise ConfigError(f"--lm-dim={args.lm_dim}: must be at least 1")
  from jaxgeo import nets
  counts = nets.paper_counts(args.lm_dim, features=args.features)
  print(markdown_table(counts, args.lm_dim, args.features) if args.markdown
        else plain_table(counts), end="")
  return 0


def register(subparsers) -> None:
  parser = subparsers.add_parser(
      "params", help="parameter counts of the networks' paper configurations",
      description="Prints the parameter count of GVP-GNN, EGNN and Molformer at their paper "
                  "configurations, for each language-model fusion mode.")
  parser.add_argument("--lm-dim", type=int, default=1280,
                      help="language-model embedding width (default 1280, ESM-2 650M)")
  parser.add_argument("--features", choices=("paper", "rich"), default="paper",
                      help="graph featurisation the networks read (default: paper)")
  parser.add_argument("--markdown", action="store_true", help="print a markdown table")
  parser.set_defaults(func=run)
