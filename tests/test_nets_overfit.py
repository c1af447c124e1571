"""Each network can fit a handful of generated graphs: the training loss falls by an order
of magnitude within a few hundred Adam steps (dropout off, small widths)."""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgeo import nets
from jaxgeo.nets import synthetic
from test_nets_models import make_graphs, rng_key, tiny_config

STEPS = 300


def _config(network: str) -> nets.ModelConfig:
  config = tiny_config(network, out_dim=1, head_dropout=0.0)
  widths = {"gvp": dict(node_dims=(16, 4), dropout=0.0),
            "egnn": dict(hidden=16),
            "molformer": dict(width=16, ffn_dim=32, dropout=0.0)}[network]
  return dataclasses.replace(config, **{
      network: dataclasses.replace(getattr(config, network), **widths)})


@pytest.mark.slow
@pytest.mark.parametrize("network", ["gvp", "egnn", "molformer"])
def test_overfits_a_few_graphs(network):
  graphs = make_graphs(seed=7)
  batch = synthetic.pad_batch(graphs, extra_nodes=3, extra_edges=5)
  n_real = int(batch.n_node[:-1].sum())
  labels = np.random.default_rng(8).normal(size=(batch.nodes["x"].shape[0], 1))
  labels = jnp.asarray(labels.astype(np.float32))
  mask = (jnp.arange(labels.shape[0]) < n_real)[:, None]
  model = nets.make_model(_config(network))
  params = jax.jit(model.init)(rng_key(0), batch)
  optimizer = optax.adam(3e-3)

  def loss_fn(p, key):
    pred = model.apply(p, key, batch, is_training=True)["node"]
    return jnp.sum(jnp.where(mask, pred - labels, 0.0) ** 2) / n_real

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(p, state, key):
    loss, grads = jax.value_and_grad(loss_fn)(p, key)
    updates, state = optimizer.update(grads, state, p)
    return optax.apply_updates(p, updates), state, loss

  state = optimizer.init(params)
  losses = []
  for i in range(STEPS):
    params, state, loss = step(params, state, jax.random.fold_in(rng_key(1), i))
    losses.append(float(loss))
  first, last = losses[0], float(np.mean(losses[-10:]))
  assert np.isfinite(losses).all()
  assert last < first / 10, f"{network}: loss {first:.3f} -> {last:.3f} in {STEPS} steps"
