"""Parameter counts: of a parameter pytree, and of a configuration without building one.

    nets.count_params(nets.paper_config("egnn", fusion="project"))   # 76,257
    nets.paper_counts(lm_dim=1280)          # {(network, fusion): count} of the paper rows

A configuration's count comes from `jax.eval_shape` of `init` on a 2-node example batch of
the featurisation's shapes (nothing is allocated or compiled). It depends on the
featurisation through the edge scalar width (GVP-GNN's edge input, EGNN's edge MLP) and,
with `node_features`, the node arrays; a node head has the same count as a graph head.
"""
from __future__ import annotations

import jax
import jraph
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo.errors import ConfigError
from jaxgeo.nets import config as config_lib
from jaxgeo.nets.config import PAPER_LM_DIM, ModelConfig
from jaxgeo.nets.model import make_model


def param_count(params) -> int:
  """Number of scalars in a parameter pytree (arrays or `jax.ShapeDtypeStruct`s)."""
  return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree_util.tree_leaves(params)))


def example_graph(config: ModelConfig, features: str = "paper") -> jraph.GraphsTuple:
  """A 2-node, 2-edge batch with the node and edge arrays `config` reads from a graph of
  featurisation `features` (values are zeros: only the shapes matter).

  Raises ConfigError when `config.node_features` asks for node arrays the featurisation
  does not have (the "paper" graphs carry no `s` / `v` node arrays). IEGMN reads a docking
  pair graph (`iegmn.example_batch`).
  """
  if config.network == "iegmn":
    from jaxgeo.nets import iegmn
    return iegmn.example_batch(config.iegmn)
  graph_lib.check_features(features)
  if config.node_features and features != "rich":
    raise ConfigError(f"model.node_features=True needs the 'rich' featurisation's node "
                      f"arrays; graph features={features!r} has none")
  nodes = {"x": np.zeros((2, 3), np.float32), "aatype": np.zeros(2, np.int32),
           "element": np.zeros(2, np.int32),
           "lm": np.zeros((2, max(config.fusion.lm_dim, 1)), np.float32)}
  if features == "rich":
    nodes["s"] = np.zeros((2, graph_lib.NODE_SCALAR_DIM), np.float32)
    nodes["v"] = np.zeros((2, graph_lib.NODE_VECTOR_DIM, 3), np.float32)
  edges = {"s": np.zeros((2, graph_lib.edge_scalar_dim(features)), np.float32),
           "v": np.zeros((2, graph_lib.EDGE_VECTOR_DIM, 3), np.float32)}
  return jraph.GraphsTuple(nodes=nodes, edges=edges, senders=np.array([1, 0], np.int32),
                           receivers=np.array([0, 1], np.int32),
                           n_node=np.array([2], np.int32), n_edge=np.array([2], np.int32),
                           globals={})


def count_params(config: ModelConfig, features: str = "paper") -> int:
  """Parameter count of the model of `config` on graphs of featurisation `features`
  ("paper" or "rich"), without allocating or compiling anything."""
  shapes = jax.eval_shape(make_model(config).init, jax.random.key(0),
                          example_graph(config, features))
  return param_count(shapes)


def paper_counts(lm_dim: int = PAPER_LM_DIM, features: str = "paper", head: str = "graph",
                 out_dim: int = 1) -> dict[tuple[str, str], int]:
  """{(network, fusion mode): parameter count} of every `paper_config`, for
  language-model width `lm_dim`, in the order of `config.NETWORKS` x `config.FUSION_MODES`."""
  if lm_dim < 1:
    raise ConfigError(f"lm_dim={lm_dim}: must be at least 1")
  return {(network, mode): count_params(
              config_lib.paper_config(network, fusion=mode, head=head, out_dim=out_dim,
                                      lm_dim=lm_dim), features)
          for network in config_lib.NETWORKS for mode in config_lib.FUSION_MODES}
