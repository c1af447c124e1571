"""`make_model`: a `ModelConfig` -> a Haiku-transformed network (fusion, encoder, head)."""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import jraph

from jaxgeo.errors import ConfigError, DataError
from jaxgeo.nets import egnn, fusion, gvp, heads, molformer, ops
from jaxgeo.nets.config import ModelConfig, encoder_width, validate


def _forward(config: ModelConfig, graph: jraph.GraphsTuple, is_training: bool = False,
             dtype=None, padded: bool = False) -> dict[str, jax.Array]:
  """Fusion -> (node features) -> encoder -> head, computed in `dtype` (None: float32, or
  float64 when the batch is float64 and x64 is on). Aggregations accumulate in float32 and
  coordinates stay in at least float32 whatever `dtype` is. `padded`: as in `make_model`."""
  graph = jax.tree_util.tree_map(jnp.asarray, graph)
  dtype = dtype or jnp.result_type(graph.nodes["x"].dtype, jnp.float32)
  nodes = graph.nodes
  inputs = fusion.Fusion(config.fusion)(nodes, dtype)                      # [N, F]
  needed = ("s", "v") if config.network == "gvp" else ("s",)
  if config.node_features and not all(name in nodes for name in needed):
    raise DataError(f"model.node_features=True needs the node arrays {needed} of the 'rich' "
                    "featurisation; the batch has none (graph features='paper': set "
                    "model.node_features=False)")
  if config.node_features:
    inputs = jnp.concatenate([inputs, nodes["s"].astype(dtype)], axis=-1)
  out = {}
  if config.network == "gvp":
    vectors = nodes["v"] if config.node_features else None
    features = gvp.GVPGNN(config.gvp)(graph, inputs, vectors, is_training, padded=padded)
  elif config.network == "egnn":
    features, x = egnn.EGNN(config.egnn)(graph, inputs, is_training, padded=padded)
    if config.egnn.update_coords and config.egnn.return_coords:
      out["x"] = x
  else:
    features = molformer.Molformer(config.molformer)(graph, inputs, is_training,
                                                     padded=padded)
  width = encoder_width(config)
  hidden = config.head_hidden or (width if config.network == "molformer" else 2 * width)
  if config.head == "node":
    out["node"] = heads.node_head(features, config.out_dim, hidden, config.head_dropout,
                                  is_training)
  else:
    out["graph"] = heads.graph_head(features, ops.node_graph_index(graph), graph.n_node,
                                    config.out_dim, hidden, config.head_dropout, is_training)
  return out


def make_model(config: ModelConfig, dtype=None) -> hk.Transformed:
  """The network of `config` as a pure (init, apply) pair.

  dtype: the compute dtype (None: float32). Mixed precision (`train.precision="bf16"`)
  initialises with the float32 model and applies `make_model(config, jnp.bfloat16)` to
  parameters cast to bfloat16: both have the same parameter tree.

  Network "iegmn" (EquiDock's docking network) is `jaxgeo.nets.iegmn.make_iegmn(
  config.iegmn)`: batches of `iegmn.pair_graph` graphs in, {"rotation", "translation",
  "ligand_keypoints", "receptor_keypoints", "x_pred", "x_out"} out (no head).

  init(rng, batch) -> params (a plain nested dict of arrays);
  apply(params, rng, batch, is_training, padded=False) -> {"node" [N, out] | "graph" [G, out],
    ("x" [N, 3])}. `padded=True` promises that the batch was padded by `jraph.pad_with_graphs`
    (as `batching.pad` does): its last graph with nodes is padding. The networks may then skip
    work that only feeds the padding graph (GVP-GNN and EGNN skip their edge chunks that
    hold padding edges only, Molformer the padding graph's query blocks); real graphs' outputs are the
    same either way. Never set it for a batch whose last graph is real.
  Raises ConfigError for an invalid config (and DataError at trace time when the batch lacks
  what the config needs, e.g. nodes["lm"], or the "rich" node arrays for node_features).
  """
  validate(config)
  if config.network == "iegmn":
    if dtype is not None and jnp.dtype(dtype) != jnp.float32:
      raise ConfigError("network iegmn computes in float32 only (its Kabsch SVD and "
                        "Sinkhorn losses need it): set train.precision=f32")
    from jaxgeo.nets import iegmn
    return iegmn.make_iegmn(config.iegmn)

  def forward(graph: jraph.GraphsTuple, is_training: bool = False,
              padded: bool = False) -> dict[str, jax.Array]:
    return _forward(config, graph, is_training, dtype, padded)

  return hk.transform(forward)
