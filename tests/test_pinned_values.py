"""Pinned values: numbers worked out by hand, published counts, and regression outputs.

- `graph.rbf` / `graph.positional_encoding` on hand-computed cases (the expected numbers
  are written out below with their derivation, not produced by the functions under test);
- the parameter counts of the README's table, read from README.md so that it cannot drift
  from `nets.paper_counts`;
- each assembled network's output on a fixed tiny graph with parameters from a fixed key: a
  regression pin (any change to the initialisers, the layers or the paper featurisation
  shows up here; if a change is intended, update the numbers and say why in the commit).
"""
from __future__ import annotations

import functools
import pathlib
import re

import jax
import jraph
import numpy as np
import pytest

from jaxgeo import graph, nets
from jaxgeo.commands import params as params_command

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


# RBF and positional encoding -------------------------------------------------------------

def test_rbf_hand_computed():
  """rbf(d) = exp(-((d - c_k) / sigma)^2), c_k = k * d_max / (num - 1), sigma = d_max / num.

  Defaults (16 on [0, 20]): c_k = 4k/3, sigma = 1.25.
    d = 0:   k=0 -> 1;  k=1 -> exp(-(1.3333/1.25)^2) = exp(-1.137778) = 0.320530521
    d = 4:   k=3 -> 1 (c_3 = 4);  k=2, 4 -> 0.320530521;  k=0 -> exp(-(4/1.25)^2) =
             exp(-10.24) = 3.5712850e-05
    d = 5.5: k=4 (5.3333) -> exp(-(0.16667/1.25)^2) = exp(-0.0177778) = 0.982379315;
             k=5 (6.6667) -> exp(-(1.16667/1.25)^2) = exp(-0.871111) = 0.418486306
  The paper's range (16 on [0, 8]): c_k = 8k/15, sigma = 0.5.
    d = 3.8: k=7 (3.7333) -> exp(-(0.06667/0.5)^2) = 0.982379315; k=8 (4.2667) ->
             0.418486306; k=0 -> exp(-(3.8/0.5)^2) = exp(-57.76) = 8.2252807e-26
  """
  out = graph.rbf(np.array([0.0, 4.0, 5.5]))
  assert out.shape == (3, 16)
  expected = {(0, 0): 1.0, (0, 1): 0.320530521, (1, 3): 1.0, (1, 2): 0.320530521,
              (1, 4): 0.320530521, (1, 0): 3.5712850e-05, (2, 4): 0.982379315,
              (2, 5): 0.418486306}
  for (row, col), value in expected.items():
    np.testing.assert_allclose(out[row, col], value, rtol=1e-6, err_msg=f"rbf[{row}, {col}]")
  paper = graph.rbf(np.array([3.8]), num=16, d_max=8.0)[0]
  np.testing.assert_allclose(paper[[7, 8, 0]], [0.982379315, 0.418486306, 8.2252807e-26],
                             rtol=1e-6)


def test_positional_encoding_hand_computed():
  """[cos(o f_0..7), sin(o f_0..7)] with f_i = 10000^(-2i/16) = 10^(-i/2):
  f = 1, 0.316228, 0.1, 0.0316228, 0.01, ...

    o = 0:  cos -> 1, sin -> 0
    o = 1:  cos(1) = 0.540302306, cos(0.316228) = 0.950415280, cos(0.1) = 0.995004165,
            sin(1) = 0.841470985, sin(0.1) = 0.0998334166,
            sin(10^-3.5) = 3.16227761e-04 (the last, slowest frequency)
    o = -3: cos(-3) = -0.989992497, cos(-0.948683) = 0.582753611, cos(-0.3) = 0.955336489,
            sin(-3) = -0.141120008, sin(-0.3) = -0.295520207, sin(-3e-3.5) = -9.48683156e-04
  """
  out = graph.positional_encoding(np.array([0.0, 1.0, -3.0]))
  assert out.shape == (3, 16)
  np.testing.assert_allclose(out[0], [1.0] * 8 + [0.0] * 8, atol=1e-12)
  np.testing.assert_allclose(out[1, [0, 1, 2, 8, 10, 15]],
                             [0.540302306, 0.950415280, 0.995004165, 0.841470985,
                              0.0998334166, 3.16227761e-04], rtol=1e-8)
  np.testing.assert_allclose(out[2, [0, 1, 2, 8, 10, 15]],
                             [-0.989992497, 0.582753611, 0.955336489, -0.141120008,
                              -0.295520207, -9.48683156e-04], rtol=1e-8)


# The README's parameter table -------------------------------------------------------------

def _readme_table() -> tuple[str, dict[tuple[str, str], int]]:
  """(the line above the table, {(network, fusion mode): count}) from README.md."""
  lines = README.read_text().splitlines()
  titles = {title: network for network, title in params_command.NETWORK_TITLES.items()}
  for i, line in enumerate(lines):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if cells[0] == "fusion" and cells[1:] and all(c in titles for c in cells[1:]):
      break
  else:
    pytest.fail("README.md has no parameter table (| fusion | GVP-GNN | EGNN | Molformer |)")
  networks = [titles[c] for c in cells[1:]]
  caption = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
  counts = {}
  for row in lines[i + 2:]:
    if not row.startswith("|"):
      break
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    mode = cells[0].split()[0]
    for network, cell in zip(networks, cells[1:]):
      counts[(network, mode)] = int(cell.replace(",", ""))
  return caption, counts


def test_readme_parameter_table_is_what_count_params_says():
  caption, published = _readme_table()
  assert set(published) == {(n, m) for n in ("gvp", "egnn", "molformer")
                            for m in ("none", "replace", "concat", "project")}
  width = re.search(r"language-model width (\d+)", caption)
  assert width, f"the caption above the README's table names no LM width: {caption!r}"
  features = "rich" if "rich graph features" in caption else "paper"
  computed = nets.paper_counts(int(width.group(1)), features=features)
  stale = {key: (published[key], computed[key]) for key in published
           if published[key] != computed[key]}
  assert not stale, (
      f"README.md's parameter table is stale ((network, fusion): (README, computed) with "
      f"{features} features): {stale}; regenerate it with `jaxgeo params --markdown`")


# Regression pins of the assembled models ---------------------------------------------------

def _tiny_paper_graph() -> jraph.GraphsTuple:
  """Six residues at hand-placed CA positions, paper features, kNN (k = 3) edges."""
  x = np.array([[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [5.0, 3.6, 0.0], [2.0, 5.5, 1.0],
                [-1.5, 3.0, 2.5], [1.0, 1.0, 5.0]], np.float32)
  senders, receivers = graph.knn_edges(x, 3)
  edge_s, edge_v = graph.paper_edge_features(x, senders, receivers, cutoff=8.0)
  nodes = {"x": x, "aatype": np.array([0, 5, 7, 12, 19, 3], np.int32),
           "element": np.zeros(6, np.int32),
           "lm": np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(6, 4)}
  return jraph.GraphsTuple(nodes=nodes, edges={"s": edge_s, "v": edge_v}, senders=senders,
                           receivers=receivers, n_node=np.array([6], np.int32),
                           n_edge=np.array([len(senders)], np.int32), globals={})


def _tiny_config(network: str) -> nets.ModelConfig:
  return nets.ModelConfig(
      network=network, head="node", out_dim=1, node_features=False,
      fusion=nets.FusionConfig(mode="project", lm_dim=4, embed_dim=8),
      gvp=nets.GVPConfig(node_dims=(8, 4), edge_dims=(6, 1), num_layers=2),
      egnn=nets.EGNNConfig(hidden=8, num_layers=2, normalize=False, return_coords=False),
      molformer=nets.MolformerConfig(width=8, num_heads=2, ffn_dim=8, num_layers=2))


# Node outputs [6, 1] of each network (threefry key 0, float32, CPU), recorded when pinned.
PINNED = {
    "gvp": [0.10876133, 0.14306547, 0.21361578, -0.04390954, -0.04792203, -0.04357807],
    "egnn": [0.27001333, 0.57773709, 1.02874994, 0.78666830, 0.41672239, 0.87637323],
    "molformer": [0.59874606, 0.50468975, 1.01133263, 0.12358326, 1.47663200, 0.82911706],
}


def tiny_model_outputs(network: str) -> np.ndarray:
  g = _tiny_paper_graph()
  model = nets.make_model(_tiny_config(network))
  params = jax.jit(model.init)(jax.random.key(0), g)
  out = jax.jit(functools.partial(model.apply, is_training=False))(params, None, g)
  return np.asarray(out["node"][:, 0])


@pytest.mark.parametrize("network", ["gvp", "egnn", "molformer"])
def test_assembled_model_output_is_pinned(network):
  np.testing.assert_allclose(tiny_model_outputs(network), PINNED[network], rtol=1e-4,
                             atol=1e-6, err_msg=f"{network}: output on the pinned tiny graph")
