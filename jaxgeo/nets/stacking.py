"""A network's stack of layers, in Haiku: one `hk.layer_stack` (a scan, compiled once)
unrolled and rematerialised as the pass at hand wants.

Training passes unroll `config.unroll` layers per scan iteration and, with `config.remat`,
recompute activations in the backward pass; evaluation passes unroll `config.eval_unroll`
and never rematerialise (they have no backward pass). The same function either way.
"""
from __future__ import annotations

from typing import Any, Callable

import haiku as hk


def remat(config: Any, is_training: bool) -> bool:
  """Whether this pass rematerialises (`config.remat`, training passes only)."""
  return bool(config.remat) and is_training


def stack_layers(config: Any, layer: Callable, is_training: bool,
                 remat_each_layer: bool = True) -> Callable:
  """`config.num_layers` applications of `layer` with stacked parameters (a config with
  num_layers, unroll, eval_unroll and remat: GVPConfig, EGNNConfig, MolformerConfig).
  remat_each_layer: False when the layer rematerialises finer parts itself (edge chunks)."""
  unroll = config.unroll if is_training else config.eval_unroll
  each = remat_each_layer and remat(config, is_training)
  return hk.layer_stack(config.num_layers, unroll=unroll, name="layers")(
      hk.remat(layer) if each else layer)
