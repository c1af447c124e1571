"""Properties of the three networks on small generated graphs.

Rotations/translations, node permutations, padding, jit vs eager, dropout, finite gradients
with NaN checking on. Tiny widths, and the same few batch shapes throughout, so that each
network compiles only a handful of times.
"""
from __future__ import annotations

import dataclasses
import functools
import types

import haiku as hk
import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from jaxgeo import nets
from jaxgeo.nets import stacking, synthetic
from conftest import jaxpr_equations

import profile_nets  # experiments/ (tests/conftest.py): matmul FLOPs of a jaxpr

NETWORKS = ("gvp", "egnn", "molformer")
LM_DIM = 4


def tiny_config(network: str, head: str = "node", **changes) -> nets.ModelConfig:
  """Small widths, node features and LM vectors on (fusion "concat")."""
  config = nets.ModelConfig(
      network=network, head=head, out_dim=2,
      fusion=nets.FusionConfig(mode="concat", lm_dim=LM_DIM, embed_dim=6),
      gvp=nets.GVPConfig(node_dims=(8, 4), edge_dims=(6, 1), num_layers=2),
      egnn=nets.EGNNConfig(hidden=8, num_layers=2),
      molformer=nets.MolformerConfig(width=8, num_heads=2, ffn_dim=8, num_layers=2,
                                     query_block=8, key_block=8))
  return dataclasses.replace(config, **changes)


def chunked(config: nets.ModelConfig, network: str, size: int, **changes) -> nets.ModelConfig:
  """`config` with `network`'s message pass in chunks of `size` edges (GVP-GNN: in training
  and evaluation passes alike)."""
  sizes = {"edge_chunk": size, **({"eval_edge_chunk": size} if network == "gvp" else {})}
  return dataclasses.replace(config, **{network: dataclasses.replace(
      getattr(config, network), **sizes, **changes)})


def make_graphs(seed: int = 0) -> list[jraph.GraphsTuple]:
  rng = np.random.default_rng(seed)
  return [synthetic.random_graph(rng, 12, lm_dim=LM_DIM, k=6),
          synthetic.random_graph(rng, 17, lm_dim=LM_DIM, k=6, num_ligand_atoms=4),
          synthetic.random_graph(rng, 9, lm_dim=LM_DIM, k=6)]


@pytest.fixture(scope="module")
def graphs():
  return make_graphs()


@pytest.fixture(scope="module")
def batch(graphs):
  """Real graphs + a little padding (the shape most tests share)."""
  return synthetic.pad_batch(graphs, extra_nodes=3, extra_edges=5)


def rng_key(seed: int) -> jax.Array:
  """RBG keys: the same statistics for these tests, and much faster to compile than
  threefry (most of the compile time of `init` is random-number hashing)."""
  return jax.random.key(seed, impl="rbg")


@functools.lru_cache(maxsize=None)
def model_and_params(network: str, head: str = "node"):
  """The model and its parameters; the graph-head model reuses the node-head parameters
  (the two heads are MLPs of the same shapes) instead of compiling another init."""
  model = nets.make_model(tiny_config(network, head))
  if head == "graph":
    _, node_params = model_and_params(network, "node")
    params = {k.replace("node_head", "graph_head"): v for k, v in node_params.items()}
  else:
    params = jax.jit(model.init)(rng_key(0), synthetic.pad_batch(make_graphs(), 3, 5))
  return model, params


@functools.lru_cache(maxsize=None)
def grad_fn(network: str, remat: bool = True, **changes):
  """Jitted gradient of a masked node loss (dropout on), for `network` with or without
  rematerialisation (and other `changes` to its network config)."""
  config = tiny_config(network)
  sub = getattr(config, network)
  model = nets.make_model(dataclasses.replace(config, **{
      network: dataclasses.replace(sub, remat=remat, **changes)}))

  def loss(p, rng, b):
    out = model.apply(p, rng, b, is_training=True)
    n_real = jnp.sum(b.n_node[:-1])
    mask = jnp.arange(b.nodes["x"].shape[0]) < n_real
    value = jnp.sum(jnp.where(mask[:, None], out["node"], 0.0) ** 2)
    if "x" in out:
      value += jnp.sum(jnp.where(mask[:, None], out["x"], 0.0) ** 2) * 1e-3
    return value

  return jax.jit(jax.grad(loss))


@functools.lru_cache(maxsize=None)
def jitted_apply(network: str, head: str = "node", is_training: bool = False):
  model, _ = model_and_params(network, head)
  return jax.jit(functools.partial(model.apply, is_training=is_training))


def real_counts(batch) -> tuple[int, int]:
  return int(np.sum(batch.n_node[:-1])), len(batch.n_node) - 1


def random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if (np.linalg.det(q) < 0) != reflect:
    q[:, 0] = -q[:, 0]
  return q


def transform(batch, rotation: np.ndarray, translation: np.ndarray):
  """Rotates coordinates and every vector feature; scalar features stay as they are."""
  dtype = batch.nodes["x"].dtype
  r = rotation.astype(dtype)
  nodes = dict(batch.nodes, x=batch.nodes["x"] @ r.T + translation.astype(dtype),
               v=batch.nodes["v"] @ r.T)
  edges = dict(batch.edges, v=batch.edges["v"] @ r.T)
  return batch._replace(nodes=nodes, edges=edges)


def assert_close(a, b, tol: float, what: str = ""):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  scale = max(1.0, float(np.max(np.abs(a))))
  err = float(np.max(np.abs(a - b))) / scale
  assert err <= tol, f"{what}: relative error {err:.2e} > {tol:.0e}"


def permute_within_graphs(batch, rng: np.random.Generator):
  """Shuffles the nodes of each real graph (graphs stay contiguous) and re-sorts the edges
  by receiver. Returns (batch', perm) with node j of batch' = node perm[j] of batch."""
  offsets = np.concatenate([[0], np.cumsum(batch.n_node)])
  perm = np.arange(offsets[-1])
  for g in range(len(batch.n_node) - 1):
    perm[offsets[g]:offsets[g + 1]] = offsets[g] + rng.permutation(batch.n_node[g])
  inverse = np.argsort(perm)
  senders, receivers = inverse[batch.senders], inverse[batch.receivers]
  order = np.argsort(receivers, kind="stable")
  nodes = {k: v[perm] for k, v in batch.nodes.items()}
  edges = {k: v[order] for k, v in batch.edges.items()}
  return batch._replace(nodes=nodes, edges=edges, senders=senders[order].astype(np.int32),
                        receivers=receivers[order].astype(np.int32)), perm


@pytest.mark.parametrize("network", NETWORKS)
def test_outputs_shapes_and_finite(network, batch):
  _, params = model_and_params(network)
  out = jitted_apply(network)(params, None, batch)
  n = batch.nodes["x"].shape[0]
  assert out["node"].shape == (n, 2)
  assert np.all(np.isfinite(out["node"]))
  if network == "egnn":
    assert out["x"].shape == (n, 3)
  else:
    assert set(out) == {"node"}
  # Parameters are a plain nested dict of arrays.
  assert isinstance(params, dict) and all(isinstance(v, dict) for v in params.values())


@pytest.mark.parametrize("network", NETWORKS)
def test_rotation_translation(network, batch):
  """Scalar outputs invariant, coordinates equivariant (float32, to 1e-4)."""
  _, params = model_and_params(network)
  apply = jitted_apply(network)
  n_real, _ = real_counts(batch)
  out = apply(params, None, batch)
  rng = np.random.default_rng(1)
  for _ in range(2):
    rot, shift = random_rotation(rng), rng.normal(size=3) * 20
    moved = apply(params, None, transform(batch, rot, shift))
    assert_close(out["node"][:n_real], moved["node"][:n_real], 1e-4, "node outputs")
    if "x" in out:
      assert_close(np.asarray(out["x"][:n_real]) @ rot.T + shift, moved["x"][:n_real], 1e-4,
                   "coordinates")


@pytest.mark.parametrize("network", NETWORKS)
def test_node_permutation(network, batch):
  """f(P x) == P f(x) for a permutation of the nodes within each graph."""
  _, params = model_and_params(network)
  apply = jitted_apply(network)
  n_real, _ = real_counts(batch)
  out = apply(params, None, batch)
  permuted, perm = permute_within_graphs(batch, np.random.default_rng(2))
  assert not np.array_equal(perm[:n_real], np.arange(n_real))
  out_p = apply(params, None, permuted)
  assert_close(np.asarray(out["node"])[perm][:n_real], out_p["node"][:n_real], 1e-5,
               "permuted node outputs")
  if "x" in out:
    assert_close(np.asarray(out["x"])[perm][:n_real], out_p["x"][:n_real], 1e-5,
                 "permuted coordinates")


@pytest.mark.parametrize("network", NETWORKS)
def test_padding_buckets_and_finite_gradients(network, graphs, batch):
  """The same graphs in two buckets give the same real outputs (node and graph heads), and
  gradients through heavy padding are finite with NaN checking on."""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  n_real, g_real = real_counts(batch)
  _, params = model_and_params(network)
  apply = jitted_apply(network)
  assert_close(apply(params, None, batch)["node"][:n_real],
               apply(params, None, other)["node"][:n_real], 1e-5, "node outputs")
  _, graph_params = model_and_params(network, "graph")
  graph_apply = jitted_apply(network, "graph")
  small, big = graph_apply(graph_params, None, batch), graph_apply(graph_params, None, other)
  assert small["graph"].shape == (g_real + 1, 2) and big["graph"].shape == (g_real + 3, 2)
  assert_close(small["graph"][:g_real], big["graph"][:g_real], 1e-5, "graph outputs")
  assert np.all(np.isfinite(big["graph"]))

  with jax.debug_nans(True):
    grads = grad_fn(network)(params, rng_key(3), other)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
  assert sum(float(np.abs(g).sum()) for g in leaves) > 0


@pytest.mark.parametrize("network", NETWORKS)
def test_jit_equals_eager(network, batch):
  model, params = model_and_params(network)
  eager = model.apply(params, None, batch, is_training=False)
  jitted = jitted_apply(network)(params, None, batch)
  for key in eager:
    assert_close(eager[key], jitted[key], 1e-5, key)


@pytest.mark.parametrize("network", NETWORKS)
def test_dropout_only_in_training(network, batch):
  _, params = model_and_params(network)
  evaluate = jitted_apply(network)
  train = jitted_apply(network, is_training=True)
  k1, k2 = rng_key(1), rng_key(2)
  np.testing.assert_array_equal(evaluate(params, k1, batch)["node"],
                                evaluate(params, k2, batch)["node"])
  np.testing.assert_array_equal(evaluate(params, None, batch)["node"],
                                evaluate(params, k1, batch)["node"])
  first, again, other = (train(params, k, batch)["node"] for k in (k1, k1, k2))
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, other)


def test_remat_is_transparent(graphs):
  """Rematerialising the layers (the default) changes neither the parameters nor the
  gradients, dropout included (GVP: dropout inside the stacked layers)."""
  _, params = model_and_params("gvp")
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  with_remat = grad_fn("gvp", remat=True)(params, rng_key(3), other)
  without = grad_fn("gvp", remat=False)(params, rng_key(3), other)
  assert jax.tree_util.tree_structure(with_remat) == jax.tree_util.tree_structure(without)
  for a, b in zip(jax.tree_util.tree_leaves(with_remat), jax.tree_util.tree_leaves(without)):
    assert_close(a, b, 1e-5, "gradients")


@pytest.mark.parametrize("network, changes", [("gvp", {}), ("gvp", {"remat": False}),
                                             ("gvp", {"chunk_vjp": True}),
                                             ("egnn", {}), ("egnn", {"remat": False}),
                                             ("egnn", {"store_chunk_dots": True})])
def test_edge_chunks_are_transparent(graphs, network, changes):
  """GVP-GNN's and EGNN's message passing over chunks of edges (the last one padded), with
  or without recomputing each chunk (GVP-GNN also by the custom VJP of
  `edge_chunks.stored_chunk_sums`, EGNN also with each chunk's matmul outputs stored by it),
  gives the outputs (EGNN: coordinates too) and gradients
  of all edges at once, with the same parameters."""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  num_edges = int(other.senders.shape[0])
  chunk = 37                                     # 5+ chunks, the last one short
  assert num_edges % chunk and num_edges > 4 * chunk
  config = tiny_config(network)
  whole, in_chunks = (nets.make_model(chunked(config, network, size, **changes))
                      for size in (0, chunk))
  params = jax.jit(whole.init)(rng_key(0), other)
  assert (jax.tree_util.tree_map(jnp.shape, in_chunks.init(rng_key(0), other)) ==
          jax.tree_util.tree_map(jnp.shape, params))
  out_whole, out_chunked = (m.apply(params, None, other, is_training=False)
                            for m in (whole, in_chunks))
  assert out_whole.keys() == out_chunked.keys()
  for key in out_whole:
    assert_close(out_chunked[key], out_whole[key], 1e-5, key)
  grads = [grad_fn(network, edge_chunk=size, **{"remat": True, **changes})(
      params, rng_key(3), other) for size in (0, chunk)]
  for a, b in zip(*(jax.tree_util.tree_leaves(g) for g in grads)):
    assert_close(a, b, 1e-5, "gradients")


def test_gvp_chunk_vjp_differentiates_the_chunks_by_the_custom_vjp(graphs):
  """`GVPConfig.chunk_vjp` routes the training passes' chunk loop through
  `edge_chunks.stored_chunk_sums`: its forward and backward loops over the real chunks are
  `while` loops in the gradient's program, where the scan of rematerialised chunks has
  none."""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  _, params = model_and_params("gvp")
  loops = {}
  for flag in (False, True):
    fn = grad_fn("gvp", edge_chunk=37, chunk_vjp=flag)
    jaxpr = jax.make_jaxpr(fn)(params, rng_key(3), other).jaxpr
    loops[flag] = sum(e.primitive.name == "while" for e in jaxpr_equations(jaxpr))
  assert loops[False] == 0 and loops[True] >= 2, loops


def test_stored_chunk_products_under_mixed_precision(graphs):
  """Under mixed precision (`train.mixed_apply`: bfloat16 compute, float32 parameters) EGNN's
  stored chunk products (`store_chunk_dots`, padded batch: padding chunks skipped) give the
  loss of the recomputed chunks and their gradients to bfloat16 rounding."""
  from jaxgeo import train
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  n_real = sum(int(g.n_node[0]) for g in graphs)
  _, params = model_and_params("egnn")
  results = []
  for store in (False, True):
    config = chunked(tiny_config("egnn"), "egnn", 12, store_chunk_dots=store)
    apply = train.mixed_apply(nets.make_model(config),
                              nets.make_model(config, dtype=jnp.bfloat16))
    loss = lambda p, apply=apply: jnp.sum(apply(p, rng_key(1), other, True)["node"][:n_real] ** 2)
    results.append(jax.jit(jax.value_and_grad(loss))(params))
  (loss_a, grads_a), (loss_b, grads_b) = results
  assert_close(loss_b, loss_a, 1e-3, "loss")
  for a, b in zip(*map(jax.tree_util.tree_leaves, (grads_a, grads_b))):
    assert a.dtype == b.dtype == jnp.float32
    np.testing.assert_allclose(b, a, rtol=0, atol=2e-2 * float(np.max(np.abs(a))) + 1e-6)


@pytest.mark.parametrize("network, edge_chunk", [("gvp", 0), ("gvp", 37), ("egnn", 0),
                                                 ("egnn", 37), ("molformer", None)])
def test_remat_only_in_training_passes(graphs, network, edge_chunk):
  """With `remat` (per layer, or per edge chunk), training passes rematerialise and
  evaluation passes, which have no backward pass, do not. (GVP-GNN's chunks here as a scan
  of rematerialised chunks, not `chunk_vjp`'s custom VJP: see the test after this one.)"""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  config = tiny_config(network)
  scan = {"chunk_vjp": False} if network == "gvp" else {}
  model = nets.make_model(
      dataclasses.replace(config, **{network: dataclasses.replace(
          getattr(config, network), remat=True)}) if edge_chunk is None else
      chunked(config, network, edge_chunk, remat=True, **scan))
  _, params = model_and_params(network)

  def remats(is_training):
    jaxpr = jax.make_jaxpr(lambda p: model.apply(p, rng_key(3), other, is_training))(params)
    return sum(e.primitive.name.startswith(("checkpoint", "remat"))
               for e in jaxpr_equations(jaxpr.jaxpr))
  assert remats(True) > 0 and remats(False) == 0


@pytest.mark.parametrize("network", NETWORKS)
def test_unrolled_layers_are_transparent(graphs, network):
  """Unrolling the layer scan, `unroll` in training passes and `eval_unroll` in evaluation
  ones, changes neither the outputs nor the gradients (dropout included), and each pass
  compiles its layers with its own setting."""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  config = tiny_config(network)
  num_layers = getattr(config, network).num_layers
  _, params = model_and_params(network)
  models = {settings: nets.make_model(dataclasses.replace(config, **{
      network: dataclasses.replace(getattr(config, network), unroll=settings[0],
                                   eval_unroll=settings[1])}))
            for settings in ((1, 1), (num_layers, 1), (1, num_layers))}
  for (unroll, eval_unroll), model in models.items():
    for is_training, expected in ((True, unroll), (False, eval_unroll)):
      jaxpr = jax.make_jaxpr(lambda p, m=model, t=is_training: m.apply(
          p, rng_key(3), other, t))(params).jaxpr
      layer_scans = [e.params["unroll"] for e in jaxpr_equations(jaxpr)
                     if e.primitive.name == "scan" and e.params["length"] == num_layers]
      assert layer_scans == [expected], (unroll, eval_unroll, is_training, layer_scans)
  outputs = [jax.jit(functools.partial(models[s].apply, is_training=False))(params, None, other)
             for s in ((1, 1), (1, num_layers))]
  for key in outputs[0]:
    assert_close(outputs[1][key], outputs[0][key], 1e-6, key)
  grads = [grad_fn(network, unroll=u)(params, rng_key(3), other) for u in (1, num_layers)]
  for a, b in zip(*(jax.tree_util.tree_leaves(g) for g in grads)):
    assert_close(b, a, 1e-5, "gradients")


@pytest.mark.parametrize("train_chunk, eval_chunk", [(37, 0), (0, 37)])
def test_gvp_chunks_training_and_evaluation_passes_by_their_own_sizes(graphs, train_chunk,
                                                                       eval_chunk):
  """GVP-GNN's training passes chunk the edges by `edge_chunk`, its evaluation passes by
  `eval_edge_chunk` (a loop over chunks in each layer, or none: a scan, or with `chunk_vjp`
  in training passes the `while` loops of its custom VJP)."""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  config = tiny_config("gvp")
  model = nets.make_model(dataclasses.replace(config, gvp=dataclasses.replace(
      config.gvp, edge_chunk=train_chunk, eval_edge_chunk=eval_chunk)))
  _, params = model_and_params("gvp")

  def scans(is_training):
    jaxpr = jax.make_jaxpr(lambda p: model.apply(p, rng_key(3), other, is_training))(params)
    return sum(e.primitive.name in ("scan", "while") for e in jaxpr_equations(jaxpr.jaxpr))
  whole = nets.make_model(chunked(config, "gvp", 0))
  plain = sum(e.primitive.name in ("scan", "while") for e in jaxpr_equations(jax.make_jaxpr(
      lambda p: whole.apply(p, rng_key(3), other, False))(params).jaxpr))
  assert (scans(True) > plain) == bool(train_chunk)
  assert (scans(False) > plain) == bool(eval_chunk)


@pytest.mark.parametrize("network", ["gvp", "egnn", "molformer"])
def test_padded_batches_skip_padding_work(graphs, network):
  """apply(..., padded=True): GVP-GNN and EGNN skip their edge chunks that hold padding edges
  only (a cond in the chunk scan), Molformer the padding graph's query blocks: the real
  nodes' outputs, and the gradients of a loss on them with dropout on, are those of
  padded=False; the padding nodes' outputs are not (their messages / attention were never
  computed)."""
  other = synthetic.pad_batch(graphs, extra_nodes=21, extra_edges=37, extra_graphs=3)
  n_real = sum(int(g.n_node[0]) for g in graphs)
  chunk = 12
  assert other.senders.shape[0] - sum(int(g.n_edge[0]) for g in graphs) >= 2 * chunk
  config = tiny_config(network)
  if network in ("gvp", "egnn"):
    config = chunked(config, network, chunk)
  model = nets.make_model(config)
  _, params = model_and_params(network)
  plain, skipping = (model.apply(params, None, other, is_training=False, padded=flag)["node"]
                     for flag in (False, True))
  assert_close(skipping[:n_real], plain[:n_real], 1e-6, "real nodes")
  assert not np.allclose(skipping[n_real:], plain[n_real:], atol=1e-3)

  def loss(p, padded):
    out = model.apply(p, rng_key(3), other, is_training=True, padded=padded)["node"]
    return jnp.sum(out[:n_real] ** 2)
  grads = [jax.jit(jax.grad(loss), static_argnums=1)(params, flag) for flag in (False, True)]
  for a, b in zip(*(jax.tree_util.tree_leaves(g) for g in grads)):
    assert_close(b, a, 1e-5, "gradients")
  if network in ("gvp", "egnn"):
    conds = [sum(e.primitive.name == "cond" for e in jaxpr_equations(jax.make_jaxpr(
        lambda p, flag=flag: model.apply(p, None, other, False, padded=flag))(params).jaxpr))
        for flag in (False, True)]
    assert conds[1] > conds[0]


@pytest.mark.parametrize("extra_graphs", [1, 3])
def test_num_real_nodes_matches_batching(graphs, extra_graphs):
  """The traced count of real nodes (the padding graph is the last with nodes; empty graphs
  may follow it) is `batching.masks`' on the host."""
  from jaxgeo import batching
  from jaxgeo.nets import ops
  padded = synthetic.pad_batch(graphs, extra_nodes=5, extra_edges=4, extra_graphs=extra_graphs)
  expected = sum(int(g.n_node[0]) for g in graphs)
  assert int(batching.masks(padded)[0].sum()) == expected
  assert int(jax.jit(ops.num_real_nodes)(jnp.asarray(padded.n_node))) == expected


def test_unpadded_batch_and_single_graph(graphs):
  """A batch without a padding graph works too (nothing relies on the last graph being
  padding); a single graph gives the same outputs alone as inside a batch."""
  model, params = model_and_params("molformer", "graph")
  single = model.apply(params, None, graphs[1], is_training=False)["graph"]
  batched = model.apply(params, None, jraph.batch_np(graphs), is_training=False)["graph"]
  assert_close(single[0], batched[1], 1e-5, "graph outputs")


def test_invalid_config_and_missing_lm(graphs):
  from jaxgeo.errors import ConfigError, DataError
  with pytest.raises(ConfigError, match="network"):
    nets.make_model(nets.ModelConfig(network="transformer"))
  with pytest.raises(ConfigError, match="lm_dim"):
    nets.make_model(nets.ModelConfig(fusion=nets.FusionConfig(mode="replace")))
  with pytest.raises(ConfigError, match="num_heads"):
    nets.make_model(nets.ModelConfig(network="molformer",
                                     molformer=nets.MolformerConfig(width=10, num_heads=4)))
  with pytest.raises(ConfigError, match="attention_impl='flash'"):
    nets.make_model(nets.ModelConfig(network="molformer", molformer=nets.MolformerConfig(
        attention_impl="flash")))
  with pytest.raises(ConfigError, match="input_linear"):
    nets.make_model(nets.ModelConfig(network="egnn",
                                     egnn=nets.EGNNConfig(hidden=16, input_linear=False)))
  no_lm = graphs[0]._replace(nodes={k: v for k, v in graphs[0].nodes.items() if k != "lm"})
  model = nets.make_model(tiny_config("egnn"))
  with pytest.raises(DataError, match="lm"):
    model.init(rng_key(0), no_lm)
  wide = graphs[0]._replace(nodes=dict(graphs[0].nodes, lm=np.zeros((12, LM_DIM + 1),
                                                                     np.float32)))
  with pytest.raises(DataError, match="width"):
    model.init(rng_key(0), wide)


def test_egnn_without_coordinate_outputs(batch):
  """Without "x" in the outputs (the papers' setting) the node outputs and their gradients
  are the same, and so are the parameters; the last layer's coordinate MLP, which nothing
  reads then, is not computed: the program runs exactly its matmuls fewer (2 E (H^2 + H)
  FLOPs, counted with the layer scan in full)."""
  model, params = model_and_params("egnn")
  config = tiny_config("egnn")
  skip = nets.make_model(dataclasses.replace(
      config, egnn=dataclasses.replace(config.egnn, return_coords=False)))
  full = jitted_apply("egnn")(params, None, batch)
  out = jax.jit(functools.partial(skip.apply, is_training=False))(params, None, batch)
  assert "x" not in out
  assert_close(full["node"], out["node"], 1e-6, "node outputs")
  assert jax.tree_util.tree_structure(jax.eval_shape(skip.init, rng_key(0), batch)) == \
      jax.tree_util.tree_structure(params)

  def node_loss(m):
    return lambda p: jnp.sum(m.apply(p, rng_key(1), batch, is_training=True)["node"][:-3] ** 2)
  grads = [jax.jit(jax.grad(node_loss(m)))(params) for m in (model, skip)]
  for a, b in zip(*map(jax.tree_util.tree_leaves, grads)):
    assert_close(a, b, 1e-5, "gradients")

  flops = [profile_nets.matmul_flops(jax.make_jaxpr(functools.partial(
      m.apply, is_training=False))(params, None, batch)) for m in (model, skip)]
  edges, hidden = batch.senders.shape[0], config.egnn.hidden
  assert flops[0] - flops[1] == 2 * edges * (hidden * hidden + hidden)


@pytest.mark.parametrize("count", (1, 3))
def test_stack_layers_with_a_last_layer(count):
  """`stacking.stack_layers(last_layer=...)` creates the parameters of `hk.layer_stack`
  (names, shapes, initial values), runs `layer` on all layers but the last and `last_layer`,
  reading the same parameters, on the last."""
  config = types.SimpleNamespace(num_layers=count, unroll=2, eval_unroll=1, remat=True)

  def layer(x, y):
    return jnp.tanh(hk.Linear(4, name="lin")(x)) + y, y * 2.0

  def last(x, y):
    return hk.Linear(4, name="lin")(x) * 3.0, y

  stacked = lambda **kw: hk.transform(
      lambda x, y: stacking.stack_layers(config, layer, True, **kw)(x, y))
  reference, split = stacked(), stacked(last_layer=last)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)
  y = jnp.ones((5, 4), jnp.float32)
  params = reference.init(rng_key(0), x, y)
  split_params = split.init(rng_key(0), x, y)
  assert jax.tree_util.tree_structure(split_params) == jax.tree_util.tree_structure(params)
  for a, b in zip(*map(jax.tree_util.tree_leaves, (params, split_params))):
    np.testing.assert_array_equal(a, b)
  (w,), (b,) = [[v[name] for v in params.values()] for name in ("w", "b")]
  assert w.shape == (count, 4, 4)
  ex, ey = np.asarray(x), np.asarray(y)
  for i in range(count - 1):
    ex, ey = np.tanh(ex @ w[i] + b[i]) + ey, ey * 2.0
  ex = (ex @ w[-1] + b[-1]) * 3.0
  got_x, got_y = split.apply(params, None, x, y)
  np.testing.assert_allclose(got_x, ex, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_y, ey)


def _training_grad_equations(config, batch):
  """Every equation (sub-programs included) of the gradient of a training-mode forward
  pass with shape-only parameters."""
  model = nets.make_model(config)
  params = jax.eval_shape(model.init, rng_key(0), batch)
  loss = lambda p: jnp.sum(model.apply(p, rng_key(1), batch, True)["node"])
  return list(jaxpr_equations(jax.make_jaxpr(jax.grad(loss))(params).jaxpr))


@pytest.mark.parametrize("network", ("egnn", "molformer"))
def test_training_step_holds_no_cond(network, batch):
  """EGNN's last coordinate update and Molformer's non-overlapping key blocks are not
  skipped with a `lax.cond` (in the scanned layers it cost more than the work it skipped;
  experiments/results/speed_log.md): the differentiated forward pass has no cond primitive."""
  config = tiny_config(network)
  if network == "egnn":
    config = dataclasses.replace(config, egnn=dataclasses.replace(config.egnn,
                                                                  return_coords=False))
  names = {eqn.primitive.name for eqn in _training_grad_equations(config, batch)}
  assert "while" in names or "scan" in names       # the traversal reaches the loops' bodies
  assert "cond" not in names


def test_molformer_distances_hold_no_sum_over_xyz(batch):
  """Molformer's block-pair distances are taken component by component: a sum over a
  trailing axis of 3 ([bq, bk, 3] -> [bq, bk]) ran as a slow reduction on XLA CPU, half of
  an evaluation step (experiments/results/speed_log.md). Neither the forward nor the
  differentiated pass sums over a trailing xyz axis."""
  sums = [eqn for eqn in _training_grad_equations(tiny_config("molformer"), batch)
          if eqn.primitive.name == "reduce_sum"]
  assert sums                                       # the traversal reaches the reductions
  shape = lambda eqn: eqn.invars[0].aval.shape
  assert not [shape(e) for e in sums
              if len(shape(e)) >= 2 and shape(e)[-1] == 3 and
              tuple(e.params["axes"]) == (len(shape(e)) - 1,)]


@pytest.mark.parametrize("network", NETWORKS)
def test_program_size_does_not_grow_with_depth(network, batch):
  """Layers are stacked (hk.layer_stack): 2 and 5 layers trace to programs of one size."""
  sizes = []
  for layers in (2, 5):
    config = tiny_config(network)
    config = dataclasses.replace(config, **{
        network: dataclasses.replace(getattr(config, network), num_layers=layers)})
    model = nets.make_model(config)
    params = jax.eval_shape(model.init, rng_key(0), batch)
    jaxpr = jax.make_jaxpr(functools.partial(model.apply, is_training=True))(
        params, rng_key(1), batch)
    sizes.append(sum(1 for _ in jaxpr_equations(jaxpr.jaxpr)))
  assert sizes[0] == sizes[1]
