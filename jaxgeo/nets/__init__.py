"""Geometric networks (GVP-GNN, EGNN, Molformer) with language-model fusion, in Haiku.

    config = nets.paper_config("gvp", fusion="project", head="graph")
    model = nets.make_model(config)                  # hk.Transformed
    params = model.init(rng, batch)
    out = model.apply(params, rng, batch, is_training=True)   # {"graph": [G, out_dim]}

`batch` is a (padded) jraph.GraphsTuple with the node and edge dicts of
docs/CONTRACTS.md. Outputs: "node" [N, out_dim] or "graph" [G, out_dim], and "x" [N, 3]
(updated coordinates) for EGNN with `update_coords` and `return_coords` (the papers'
configurations return node features only). Rows of padding nodes and of the padding graph
are finite but meaningless: mask them in the loss. `is_training` must be a Python bool (a
static argument under jax.jit); dropout needs an rng when it is True.

Modules: config (dataclasses, `paper_config`), fusion (LM fusion), gvp, egnn, molformer
(encoders), heads (node / graph heads), ops (aggregation helpers), model (`make_model`),
params (`count_params`, `param_count`, `paper_counts`), synthetic (generated graphs for
tests and benchmarks).
"""
from __future__ import annotations

import importlib

from jaxgeo.nets.config import (EGNNConfig, FusionConfig, GVPConfig, ModelConfig,
                                MolformerConfig, encoder_width, paper_config, validate)

__all__ = ["EGNNConfig", "FusionConfig", "GVPConfig", "ModelConfig", "MolformerConfig",
           "count_params", "encoder_width", "make_model", "paper_config", "paper_counts",
           "param_count", "validate"]

# JAX and Haiku load on first use of these, so that `import jaxgeo.nets` stays cheap.
_LAZY = {"make_model": "jaxgeo.nets.model", "count_params": "jaxgeo.nets.params",
         "param_count": "jaxgeo.nets.params", "paper_counts": "jaxgeo.nets.params"}


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'jaxgeo.nets' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY))
