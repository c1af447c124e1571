"""Helpers for tests and examples: generated proteins (`jaxgeo.datasets.synthetic`), and one
training step on several devices against one device (`parallel_step_vs_one_device`).

Library modules never import this module (tests/test_imports.py checks it).
"""
from jaxgeo.datasets.synthetic import ideal_backbone, make_protein, random_protein

__all__ = ["ideal_backbone", "make_protein", "random_protein", "parallel_step_vs_one_device"]


def parallel_step_vs_one_device(config_for, devices: int, bucket, seed: int = 0) -> dict:
  """The first training step of a run on `devices` devices and of the same run on one device,
  both on the same global batch (the first of `parallel.global_batches` whose slots all hold a
  graph), from the same parameters and key.

  Args:
    config_for: devices -> the run's config with train.devices set to it.
    devices: devices of the data-parallel run (that many must be visible).
    bucket: a `batching.Bucket` holding the whole global batch for the one-device step.
  Returns:
    {"slots": graphs per slot, "loss": [data-parallel, one device], "param_diff": the largest
    absolute difference of the updated parameters}.
  """
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jaxgeo import batching, parallel, train
  many, one = train.prepare(config_for(devices)), train.prepare(config_for(1))
  host = parallel.to_host(train.init_state(one))
  p_many = parallel.replicate(host, many.mesh)
  p_one = jax.tree_util.tree_map(jnp.asarray, host)
  key = jnp.asarray(host["key"])
  batch_graphs = int(many.config.train.batch_graphs)
  stacked, parts, _ = next(
      b for b in parallel.global_batches(many.splits.train, many.buckets, batch_graphs,
                                         devices, np.random.default_rng(seed))
      if all(len(p) for p in b[1]))
  a = many.train_step(p_many["params"], p_many["opt_state"],
                      parallel.shard_stacked(stacked, many.mesh), key, jnp.int32(0),
                      jnp.int32(0))
  merged = batching.pad([many.splits.train[i] for i in np.concatenate(parts)], bucket)
  b = one.train_step(p_one["params"], p_one["opt_state"], merged, key, jnp.int32(0),
                     jnp.int32(0))
  leaves = jax.tree_util.tree_leaves
  return {"slots": [len(p) for p in parts], "loss": [float(a[2]), float(b[2])],
          "param_diff": max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                            for x, y in zip(leaves(a[0]), leaves(b[0])))}
