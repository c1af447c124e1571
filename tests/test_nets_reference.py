"""The Haiku layers against small PyTorch re-implementations of the published layers.

Each reference below is written from the papers' definitions in the PyTorch conventions of
their official code ([..., V, 3] vectors, nn.Linear weights [out, in], index_add_ message
passing): GVP with vector gating and GVPConvLayer (Jing et al. 2021, drorlab/gvp-pytorch),
E_GCL (Satorras et al. 2021, vgsatorras/egnn) and the distance-modulated attention of the
Molformer code used by GGNN-meets-PLM (dense [graph, node, node] per graph). Our parameters
are copied in and the outputs compared.
"""
from __future__ import annotations


import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxgeo.nets import egnn, gvp, molformer  # noqa: E402
from jaxgeo.nets.config import EGNNConfig, MolformerConfig  # noqa: E402

F = torch.nn.functional


def t(x) -> "torch.Tensor":
  return torch.from_numpy(np.array(x, dtype=np.float64))


def graph(rng, n=11, e=40):
  senders = rng.integers(0, n, e).astype(np.int32)
  receivers = np.sort(rng.integers(0, n, e)).astype(np.int32)
  return senders, receivers


# --- GVP -------------------------------------------------------------------------------

def torch_norm(x, dim=-1, keepdim=False, eps=1e-8, sqrt=True):
  out = torch.clamp(torch.sum(x * x, dim, keepdim), min=eps)
  return torch.sqrt(out) if sqrt else out


def torch_gvp(p, s, v, vo, scalar_act=True):
  """gvp-pytorch GVP, vector_gate=True, activations (relu or None, None); v [.., V, 3]."""
  vh = torch.einsum("...ci,ch->...hi", v, t(p["wh"]))          # wh(v^T)^T
  vn = torch_norm(vh, dim=-1)
  s = torch.cat([s, vn], -1) @ t(p["ws"]) + t(p["bs"])
  out_v = None
  if vo:
    out_v = torch.einsum("...hi,ho->...oi", vh, t(p["wv"]))
    gate = s @ t(p["wsv"]) + t(p["bsv"])
    out_v = out_v * torch.sigmoid(gate).unsqueeze(-1)
  if scalar_act:
    s = F.relu(s)
  return s, out_v


def torch_layer_norm(p, s, v):
  s = F.layer_norm(s, s.shape[-1:], t(p["scale"]), t(p["offset"]), eps=1e-5)
  vn = torch_norm(v, dim=-1, keepdim=True, sqrt=False)
  vn = torch.sqrt(torch.mean(vn, dim=-2, keepdim=True))
  return s, v / vn


def torch_gvp_conv_layer(p, s, v, es, ev, senders, receivers, dims):
  src, dst = torch.from_numpy(senders.astype(np.int64)), torch.from_numpy(
      receivers.astype(np.int64))
  ms = torch.cat([s[src], es, s[dst]], -1)
  mv = torch.cat([v[src], ev, v[dst]], -2)
  ms, mv = torch_gvp(p["layer/conv/message_0"], ms, mv, dims[1])
  ms, mv = torch_gvp(p["layer/conv/message_1"], ms, mv, dims[1])
  ms, mv = torch_gvp(p["layer/conv/message_2"], ms, mv, dims[1], scalar_act=False)
  n = s.shape[0]
  count = torch.zeros(n, dtype=ms.dtype).index_add_(0, dst, torch.ones_like(dst, dtype=ms.dtype))
  count = count.clamp(min=1)
  ds = torch.zeros_like(s).index_add_(0, dst, ms) / count[:, None]
  dv = torch.zeros_like(v).index_add_(0, dst, mv) / count[:, None, None]
  s, v = torch_layer_norm(p["layer/norm_0/scalar"], s + ds, v + dv)
  fs, fv = torch_gvp(p["layer/ff_0"], s, v, 2 * dims[1])
  fs, fv = torch_gvp(p["layer/ff_1"], fs, fv, dims[1], scalar_act=False)
  return torch_layer_norm(p["layer/norm_1/scalar"], s + fs, v + fv)


def test_gvp_conv_layer_matches_reference():
  rng = np.random.default_rng(0)
  senders, receivers = graph(rng)
  dims = (6, 3)
  s = rng.normal(size=(11, 6)).astype(np.float32)
  v = rng.normal(size=(11, 3, 3)).astype(np.float32)        # [N, V, 3] (PyTorch layout)
  es = rng.normal(size=(40, 4)).astype(np.float32)
  ev = rng.normal(size=(40, 1, 3)).astype(np.float32)

  def layer(s, v, es, ev):
    degree = jnp.zeros(s.shape[0]).at[receivers].add(1.0)
    out_s, out_v = gvp.GVPConvLayer(dims, name="layer")(
        s, jnp.swapaxes(v, -1, -2), es, jnp.swapaxes(ev, -1, -2), senders, receivers, degree,
        is_training=False)
    return out_s, jnp.swapaxes(out_v, -1, -2)

  fn = hk.without_apply_rng(hk.transform(layer))
  params = fn.init(jax.random.PRNGKey(0), s, v, es, ev)
  ours = fn.apply(params, s, v, es, ev)
  ref = torch_gvp_conv_layer(params, t(s), t(v), t(es), t(ev), senders, receivers, dims)
  np.testing.assert_allclose(ours[0], ref[0].numpy(), atol=2e-5, rtol=1e-4)
  np.testing.assert_allclose(ours[1], ref[1].numpy(), atol=2e-5, rtol=1e-4)


# --- EGNN ------------------------------------------------------------------------------

def torch_egcl(p, h, x, edge_attr, senders, receivers, normalize):
  """egnn_clean E_GCL: row = receiver (aggregates), col = sender; SiLU; residual."""
  row = torch.from_numpy(receivers.astype(np.int64))
  col = torch.from_numpy(senders.astype(np.int64))
  lin = lambda q, y: y @ t(q["w"]) + (t(q["b"]) if "b" in q else 0)
  diff = x[row] - x[col]
  radial = torch.sum(diff ** 2, 1, keepdim=True)
  if normalize:
    diff = diff / (torch.sqrt(radial) + 1e-8)
  m = torch.cat([h[row], h[col], radial, edge_attr], 1)
  m = F.silu(m @ t(p["gcl"]["edge_mlp_0_w"]) + t(p["gcl"]["edge_mlp_0_b"]))
  m = F.silu(lin(p["gcl/edge_mlp_1"], m))
  c = p["gcl/coord_mlp"]
  trans = diff * (F.silu(m @ t(c["w0"]) + t(c["b0"])) @ t(c["w1"]))
  n = h.shape[0]
  agg = torch.zeros(n, 3, dtype=x.dtype).index_add_(0, row, trans)
  count = torch.zeros(n, 3, dtype=x.dtype).index_add_(0, row, torch.ones_like(trans))
  x = x + agg / count.clamp(min=1)
  agg_h = torch.zeros(n, m.shape[1], dtype=h.dtype).index_add_(0, row, m)
  out = lin(p["gcl/node_mlp_1"], F.silu(lin(p["gcl/node_mlp_0"], torch.cat([h, agg_h], 1))))
  return h + out, x


@pytest.mark.parametrize("normalize", [False, True])
def test_egcl_matches_reference(normalize):
  rng = np.random.default_rng(1)
  senders, receivers = graph(rng)
  h = rng.normal(size=(11, 6)).astype(np.float32)
  x = (rng.normal(size=(11, 3)) * 4).astype(np.float32)
  a = rng.normal(size=(40, 5)).astype(np.float32)
  config = EGNNConfig(hidden=6, normalize=normalize, coord_gain=0.5)

  def layer(h, x, a):
    degree = jnp.zeros(h.shape[0]).at[receivers].add(1.0)
    return egnn.EGCL(config, name="gcl")(h, x, a, senders, receivers, degree)

  fn = hk.without_apply_rng(hk.transform(layer))
  params = fn.init(jax.random.PRNGKey(0), h, x, a)
  ours = fn.apply(params, h, x, a)
  ref = torch_egcl(params, t(h), t(x), t(a), senders, receivers, normalize)
  np.testing.assert_allclose(ours[0], ref[0].numpy(), atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(ours[1], ref[1].numpy(), atol=1e-4, rtol=1e-4)
  assert np.abs(ours[1] - x).max() > 1e-3   # the coordinates did move


# --- Molformer attention ---------------------------------------------------------------

def torch_molformer_attention(p, h, x, n_node, heads):
  """GGNN-meets-PLM Molformer attention: graphs padded to [B, L], scores * cnn(dist),
  masked softmax, per graph; returns the real rows [N, width]."""
  width = h.shape[1]
  dk = width // heads
  lin = lambda q, y: y @ t(q["w"]) + t(q["b"])
  b, longest = len(n_node), max(n_node)
  hp = torch.zeros(b, longest, width, dtype=h.dtype)
  xp = torch.zeros(b, longest, 3, dtype=h.dtype)
  mask = torch.zeros(b, longest, dtype=torch.bool)
  start = 0
  for g, n in enumerate(n_node):
    hp[g, :n], xp[g, :n], mask[g, :n] = h[start:start + n], x[start:start + n], True
    start += n
  split = lambda y: y.view(b, longest, heads, dk).transpose(1, 2)
  q, k, v = (split(lin(p[f"attn/{name}"], hp)) for name in ("query", "key", "value"))
  dist = torch.cdist(xp, xp)                                   # [B, L, L]
  a = p["attn"]
  hidden = F.relu(dist.unsqueeze(-1) * t(a["distance_w1"]) + t(a["distance_b1"]))
  conv = (hidden @ t(a["distance_w2"]) + t(a["distance_b2"])).permute(0, 3, 1, 2)
  scores = q @ k.transpose(-2, -1) / np.sqrt(dk) * conv
  scores = scores.masked_fill(~mask[:, None, None, :], -1e9)
  out = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, longest, width)
  out = lin(p["attn/output"], out)
  return torch.cat([out[g, :n] for g, n in enumerate(n_node)])


@pytest.mark.parametrize("blocks, impl", [((4, 4), "blocked"), ((5, 3), "blocked"),
                                          ((64, 64), "blocked"), ((4, 4), "dense")])
def test_molformer_attention_matches_reference(blocks, impl):
  """Blocked attention with skipped blocks equals dense per-graph attention, whatever the
  block sizes (blocks straddling graphs, N not a multiple of the block); so does the dense
  implementation (`attention_impl="dense"`, masked over the whole batch)."""
  rng = np.random.default_rng(2)
  n_node = [7, 1, 12, 5]
  n = sum(n_node)
  h = rng.normal(size=(n, 8)).astype(np.float32)
  x = (rng.normal(size=(n, 3)) * 3).astype(np.float32)
  graph_index = np.repeat(np.arange(len(n_node)), n_node).astype(np.int32)
  config = MolformerConfig(width=8, num_heads=2, query_block=blocks[0], key_block=blocks[1],
                           distance_scale=1.0, attention_impl=impl)

  def attention(h, x):
    return molformer.DistanceAttention(config, name="attn")(h, x, graph_index, False)

  fn = hk.without_apply_rng(hk.transform(attention))
  params = fn.init(jax.random.PRNGKey(0), h, x)
  ours = jax.jit(fn.apply)(params, h, x)
  ref = torch_molformer_attention(params, t(h), t(x), n_node, heads=2)
  np.testing.assert_allclose(ours, ref.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("skip_from", [np.iinfo(np.int32).max, 4])
@pytest.mark.parametrize("bq, bk", [(4, 4), (5, 3), (2, 7), (64, 64)])
def test_molformer_key_ranges_are_the_block_pairs_that_share_a_graph(bq, bk, skip_from):
  """Each query block's loop runs over exactly the key blocks holding a node of one of its
  graphs (an empty graph and a single-node graph included); with `skip_from` (a padded
  batch's padding graph), none for the query blocks that start in that graph or later."""
  n_node = [7, 1, 12, 0, 5, 9]
  graph_index = jnp.asarray(np.repeat(np.arange(len(n_node)), n_node).astype(np.int32))
  n = int(graph_index.shape[0])
  zeros = jnp.zeros((n, 1, 1))
  b = molformer._blocks(zeros, zeros, zeros, jnp.zeros((n, 3)), graph_index, bq, bk)
  lo, hi = (np.asarray(a) for a in molformer._key_ranges(b, jnp.int32(skip_from)))
  gq, gk = np.asarray(b.gq), np.asarray(b.gk)
  for qi in range(gq.shape[0]):
    shares = [bool(set(gq[qi]) & set(gk[kj])) and gq[qi, 0] < skip_from
              for kj in range(gk.shape[0])]
    assert shares == [lo[qi] <= kj < hi[qi] for kj in range(gk.shape[0])], qi


@pytest.mark.parametrize("dropout, hidden", [(0.0, 2), (0.3, 2), (0.3, 3)])
def test_molformer_attention_gradients_match_dense(dropout, hidden):
  """The block-skipping attention's hand-written backward pass gives the gradients of
  dense attention (autodiff), with respect to q, k, v, the coordinates and the distance
  function, with and without attention dropout (same masks), and with a distance function
  whose hidden width differs from the number of heads."""
  rng = np.random.default_rng(3)
  n_node = [6, 9, 4]
  n = sum(n_node)
  heads, dk, bq, bk = 2, 3, 4, 5
  q, k, v = (rng.normal(size=(n, heads, dk)).astype(np.float32) for _ in range(3))
  x = (rng.normal(size=(n, 3)) * 3).astype(np.float32)
  graph_index = jnp.asarray(np.repeat(np.arange(3), n_node).astype(np.int32))
  dist_params = {"w1": jnp.array([0.3, -0.2, 0.4][:hidden]),
                 "b1": jnp.array([0.1, 0.5, -0.3][:hidden]),
                 "w2": jnp.array([[0.5, -1.0], [0.7, 0.2], [0.1, 0.3]][:hidden]),
                 "b2": jnp.array([1.0, 0.3])}
  key = jax.random.PRNGKey(7)
  # The dropout masks the blocked implementation draws, assembled densely.
  nq, nk = -(-n // bq), -(-n // bk)
  seed = jax.random.bits(key, (), jnp.uint32)
  keep = jnp.concatenate([
      jnp.concatenate([molformer.dropout_keep(seed, jnp.int32(i * nk + j), (heads, bq, bk),
                                              dropout) for j in range(nk)], axis=2)
      for i in range(nq)], axis=1)[:, :n, :n]

  def dense(q, k, v, x, dp):
    d = jnp.sqrt(jnp.sum((x[:, None] - x[None]) ** 2, -1) + 1e-12)
    s = jnp.einsum("qhd,khd->hqk", q, k) / np.sqrt(dk) * molformer.distance_function(d, dp)
    s = jnp.where((graph_index[:, None] == graph_index[None])[None], s, -1e9)
    p = jax.nn.softmax(s, -1)
    if dropout:
      p = jnp.where(keep, p / (1 - dropout), 0.0)
    return jnp.einsum("hqk,khd->qhd", p, v)

  def blocked(q, k, v, x, dp):
    return molformer.graph_attention(q, k, v, x, graph_index, dp, 1.0, bq, bk, dropout,
                                     key if dropout else None)

  np.testing.assert_allclose(jax.jit(blocked)(q, k, v, x, dist_params),
                             dense(q, k, v, x, dist_params), atol=1e-5, rtol=1e-5)
  args = (0, 1, 2, 3, 4)
  ga = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(blocked(*a))), argnums=args))(
      q, k, v, x, dist_params)
  gb = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(dense(*a))), argnums=args))(
      q, k, v, x, dist_params)
  for a, b in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
  if not dropout:   # the dense implementation's gradients (JAX's autodiff) too
    jaxgeo_dense = lambda q, k, v, x, dp: molformer.dense_graph_attention(
        q, k, v, x, graph_index, dp, 1.0)
    gc = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(jaxgeo_dense(*a))), argnums=args))(
        q, k, v, x, dist_params)
    for a, b in zip(jax.tree_util.tree_leaves(gc), jax.tree_util.tree_leaves(gb)):
      np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_molformer_dense_attention_dropout():
  """With dropout, the dense implementation drops about `rate` of the probabilities (the
  outputs move, stay finite, and the same rng gives the same outputs)."""
  rng = np.random.default_rng(4)
  n_node = [30, 20]
  n = sum(n_node)
  q, k, v = (jnp.asarray(rng.normal(size=(n, 2, 4)).astype(np.float32)) for _ in range(3))
  x = jnp.asarray((rng.normal(size=(n, 3)) * 3).astype(np.float32))
  graph_index = jnp.asarray(np.repeat(np.arange(2), n_node).astype(np.int32))
  dp = {"w1": jnp.array([0.3, -0.2]), "b1": jnp.array([0.1, 0.5]),
        "w2": jnp.array([[0.5, -1.0], [0.7, 0.2]]), "b2": jnp.array([1.0, 0.3])}
  run = lambda rate, key: molformer.dense_graph_attention(q, k, v, x, graph_index, dp, 1.0,
                                                          rate, key)
  plain = run(0.0, None)
  key = jax.random.PRNGKey(5)
  dropped = run(0.5, key)
  assert np.isfinite(dropped).all() and np.abs(dropped - plain).max() > 1e-2
  np.testing.assert_array_equal(dropped, run(0.5, key))
  # v = 1 everywhere: each output is the sum of its row's kept probabilities / (1 - rate).
  ones = molformer.dense_graph_attention(q, k, jnp.ones_like(v), x, graph_index, dp, 1.0,
                                         0.5, key)
  assert 0.8 < float(jnp.mean(ones)) < 1.2
