"""A network's stack of layers, in Haiku: one `hk.layer_stack` (a scan, compiled once)
unrolled and rematerialised as the pass at hand wants.

Training passes unroll `config.unroll` layers per scan iteration and, with `config.remat`,
recompute activations in the backward pass; evaluation passes unroll `config.eval_unroll`
and never rematerialise (they have no backward pass). The same function either way. A
network whose last layer has work nothing reads (EGNN's coordinate update when the
coordinates are not an output) passes a `last_layer` without it: the scan then covers the
layers before it, and the last runs after it on the same stacked parameters.
"""
from __future__ import annotations

from typing import Any, Callable

import haiku as hk
import jax


def remat(config: Any, is_training: bool) -> bool:
  """Whether this pass rematerialises (`config.remat`, training passes only)."""
  return bool(config.remat) and is_training


def stack_layers(config: Any, layer: Callable, is_training: bool,
                 remat_each_layer: bool = True, last_layer: Callable | None = None
                 ) -> Callable:
  """`config.num_layers` applications of `layer` with stacked parameters (a config with
  num_layers, unroll, eval_unroll and remat: GVPConfig, EGNNConfig, MolformerConfig).
  remat_each_layer: False when the layer rematerialises finer parts itself (edge chunks).
  last_layer: what the last layer runs instead of `layer`, with the same parameters of
  which it may read only some (EGNN's last layer without the coordinate update that nothing
  reads); None: every layer runs `layer`. The parameters (names, shapes, initial values)
  are those of `hk.layer_stack` either way."""
  unroll = config.unroll if is_training else config.eval_unroll
  each = remat_each_layer and remat(config, is_training)
  wrap = hk.remat if each else (lambda f: f)
  if last_layer is None:
    return hk.layer_stack(config.num_layers, unroll=unroll, name="layers")(wrap(layer))
  return _stack_with_last(config.num_layers, wrap(layer), wrap(last_layer), unroll)


def _stack_with_last(count: int, layer: Callable, last_layer: Callable, unroll: int,
                     name: str = "layers") -> Callable:
  """`hk.layer_stack(count, unroll=unroll, name=name)(layer)`, but the last of the `count`
  layers runs `last_layer` (a function of the same parameters): a scan over the first
  count - 1 layers, then the last one outside it, so that what only `layer` computes is not
  in the last layer's program at all (in one scan body it would be computed, or, behind a
  `lax.cond`, given zero cotangents in the backward pass). Parameters are created as
  `hk.layer_stack` creates them (same names, a leading [count] axis, same random keys), so
  the two are interchangeable for saved parameters."""

  def as_carry(fn: Callable, arity: int) -> Callable:
    def call(carry):
      out = fn(*carry)
      return (out,) if arity == 1 else tuple(out)
    return call

  def stacked(*carry):
    init_fn, apply_fn = hk.transform(as_carry(layer, len(carry)))
    _, last_apply = hk.transform(as_carry(last_layer, len(carry)))

    def init_all(carry, key):
      def one(state, _):
        c, key = state
        keys = (None,) * 3 if key is None else tuple(jax.random.split(key, 3))
        params = init_fn(keys[0], c)
        return (apply_fn(params, keys[2], c), keys[1]), params
      return jax.lax.scan(one, (carry, key), None, length=count)[1]

    params = hk.lift(init_all, allow_reuse=True, name=name)(carry, hk.maybe_next_rng_key())
    key = hk.maybe_next_rng_key()
    keys = None if key is None else jax.random.split(key, count)
    take = lambda tree, index: jax.tree_util.tree_map(lambda a: a[index], tree)
    if count > 1:
      body = lambda c, xs: (apply_fn(xs[0], xs[1], c), None)
      carry, _ = jax.lax.scan(body, carry, (take(params, slice(0, count - 1)),
                                            None if keys is None else keys[:count - 1]),
                              length=count - 1, unroll=max(1, min(unroll, count - 1)))
    carry = last_apply(take(params, count - 1), None if keys is None else keys[-1], carry)
    return carry[0] if len(carry) == 1 else carry

  return stacked
