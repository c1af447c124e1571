"""Speed of the geometric networks on DB5.5-sized graphs (CPU or whatever JAX runs on).

For each network at its paper configuration: forward (evaluation) and training-step
(forward + backward + Adam, jitted, params and optimiser state donated) throughput in
graphs/s over padded batches of 8 bound chains of DB5.5 (CA radius graph, 8 A, at most 32
neighbours), compile time excluded; the number of compilations (one per bucket shape); and
the parameter count.

    python experiments/bench_nets.py                 # gvp, egnn, molformer, egnn_1280
    python experiments/bench_nets.py --networks egnn --batches 30 --buckets 8
    python experiments/bench_nets.py --torch         # + PyTorch references, same moment
    python experiments/bench_nets.py --out experiments/results/bench_nets.md
    python experiments/bench_nets.py --networks egnn_1280 --variants "" \
        "egnn.edge_chunk=4096"                       # before / after, one run
    python experiments/bench_nets.py --networks egnn_1280 --variants "" precision=bf16 \
        --torch --torch-precision bf16               # mixed precision, PyTorch autocast

Networks: gvp, egnn, molformer (paper configs, residue-type embedding), egnn_1280 and
molformer_1280 (the paper's "replace" configs: hidden width = ESM-2 650M width, with random
1280-d vectors standing in for the language-model embeddings); molformer_dense (molformer with
`attention_impl="dense"`, timed against the same PyTorch Molformer).

References: the issue's numbers for the published PyTorch implementations (2 CPU threads,
same kind of batches): GVP-GNN 5.7 graphs/s train, 15 eval; EGNN (hidden 32) 35-49 train,
150 eval; EGNN 1280 0.16 train. `--torch` also times lean PyTorch ports of GVP-GNN and EGNN
(below; index_add_ message passing, no padding) on the same graphs, pass for pass
interleaved with the JAX passes, since this machine's load from other jobs moves timings by
2x. The PyTorch Molformer pads each batch to its largest graph (the paper's dense
attention), which a packed batch of mixed sizes makes costly, so on packed rows it is also
timed on the same graphs regrouped in size order, `--batch-graphs` a batch
(`size_ordered`): its best batching of those graphs. Timings are wall-clock, best of
`--repeats` passes.
"""
from __future__ import annotations

import argparse
import functools
import glob
import os
import pathlib
import sys
import tempfile
import time
import typing

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REFERENCE = {  # graphs/s of the PyTorch implementations (train, eval)
    "gvp": (5.7, 15.0), "egnn": (35.0, 150.0), "egnn_1280": (0.16, None),
    "molformer": (None, None), "molformer_1280": (None, None),
    "molformer_dense": (None, None),
}
NETWORKS = ("gvp", "egnn", "molformer", "egnn_1280", "molformer_1280", "molformer_dense")
# Networks whose PyTorch reference pads each batch to its largest graph (the paper's dense
# attention): on packed and balanced rows it is also timed on the same graphs regrouped in
# size order (`size_ordered`), the batching that suits it best.
PADDED_REFERENCES = ("molformer", "molformer_1280", "molformer_dense")


def load_db55(data_dir: pathlib.Path, limit: int | None = None, smallest: bool = False):
  """The bound chains (`*_[lr]_b.pdb.gz`) of DB5.5 as residue graphs (CA radius graph 8 A, at
  most 32 neighbours): `limit` chains in name order, or with `smallest` the `limit` smallest
  files (quick runs on CPU)."""
  from jaxgeo import graph, structure
  files = sorted(glob.glob(str(data_dir / "structures" / "*_[lr]_b.pdb.gz")))
  if not files:
    raise SystemExit(f"no DB5.5 bound chains under {data_dir}/structures")
  if smallest and limit:
    files = sorted(sorted(files, key=lambda f: (os.path.getsize(f), f))[:limit])
  graphs = []
  for f in files[:limit]:
    protein = structure.load_protein(f)
    g = graph.residue_graph(protein, edges="radius", radius=8.0, max_neighbors=32)
    graphs.append(graph.with_nodes(g, element=np.zeros(int(g.n_node[0]), np.int32)))
  return graphs


def network_config(name: str):
  import dataclasses
  from jaxgeo import nets
  if name == "molformer_dense":
    config = nets.paper_config("molformer", fusion="none", head="graph")
    return dataclasses.replace(config, molformer=dataclasses.replace(
        config.molformer, attention_impl="dense"))
  if name.endswith("_1280"):
    return nets.paper_config(name[:-5], fusion="replace", head="graph")
  return nets.paper_config(name, fusion="none", head="graph")


def with_lm(batch, lm_dim: int, rng: np.random.Generator):
  """Random language-model features for a batch ([N, ...] or stacked [D, N, ...])."""
  nodes = dict(batch.nodes)
  nodes["lm"] = rng.normal(size=batch.nodes["x"].shape[:-1] + (lm_dim,)).astype(np.float32)
  return batch._replace(nodes=nodes)


def with_labels(batch, rng: np.random.Generator):
  globals_ = {"label": rng.normal(size=batch.n_node.shape + (1,)).astype(np.float32)}
  return batch._replace(globals=globals_)


def _time(fn, batches) -> float:
  """Seconds for one pass over `batches` (fn returns arrays to wait on)."""
  import jax
  start = time.perf_counter()
  for b in batches:
    jax.block_until_ready(fn(b))
  return time.perf_counter() - start


class Variant(typing.NamedTuple):
  """A variant of a network timed by `bench_network` (see `with_variant`)."""
  config: object            # nets.ModelConfig
  padded: bool = True       # apply with the padding skips
  precision: str = "f32"    # "f32", or "bf16": mixed precision as `train.precision=bf16`
  train_options: str | None = None   # "trainer" / "default" XLA options; None: the run's


RUN_SETTINGS = {"padded": (True, False), "precision": ("f32", "bf16"),
                "train_options": ("trainer", "default")}


def with_variant(config, variant: str) -> Variant:
  """A `Variant` of `config` (a ModelConfig): space-separated `key=value` settings, keys
  dotted into the config (`egnn.edge_chunk=4096`) or one of the run settings `padded`
  (`padded=False`: apply without the padding skips), `precision` (`precision=bf16`: mixed
  precision, as `jaxgeo train` with `train.precision=bf16`) and `train_options`
  (`train_options=default`: XLA's defaults for this variant's training step, `trainer`: the
  options `jaxgeo train` uses). "" is the config as it is, padded, float32."""
  import ast
  import dataclasses
  from jaxgeo import nets
  run = {}
  for item in variant.split():
    key, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"variant {variant!r}: {item!r} is not key=value")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    if key in RUN_SETTINGS:
      if value not in RUN_SETTINGS[key]:
        raise ValueError(f"variant {variant!r}: {key} is one of {RUN_SETTINGS[key]}")
      run[key] = value
      continue
    *path, field = key.split(".")
    parents = [config]
    for part in path:
      parents.append(getattr(parents[-1], part))
    if not dataclasses.is_dataclass(parents[-1]) or field not in {
        f.name for f in dataclasses.fields(parents[-1])}:
      raise ValueError(f"variant {variant!r}: the model config has no {key!r}")
    value = dataclasses.replace(parents[-1], **{field: value})
    for parent, part in zip(reversed(parents[:-1]), reversed(path)):
      value = dataclasses.replace(parent, **{part: value})
    config = value
  return Variant(nets.validate(config), **run)


class JaxRunner:
  """One network variant's jitted evaluation and training steps, its parameters and optimiser
  state; times passes over a list of batches (compiled by `compile`).

  With a `mesh` (data parallelism over its `data` axis, as `jaxgeo train` on several devices):
  batches are stacked global batches [D, ...] (`parallel.global_batches`, one slot a device),
  parameters and optimiser state replicated; the loss is the mean over the real graphs of all
  slots, its gradient all-reduced where the parameters enter (`train.make_parallel_steps`)."""

  def __init__(self, config, padded: bool, batches, seed: int,
               train_options: dict | None, precision: str = "f32", mesh=None,
               eval_options: dict | None = None):
    import jax
    import jax.numpy as jnp
    import optax
    from jaxgeo import batching, nets, parallel, train

    model = nets.make_model(config)
    slot = (lambda b: b) if mesh is None else (
        lambda b: parallel.slot(b, 0))                          # a device's one slot
    params = model.init(jax.random.PRNGKey(seed), slot(batches[0]))
    self.params = nets.param_count(params)
    optimizer = optax.adam(1e-3)
    compute_model = nets.make_model(config, jnp.bfloat16) if precision == "bf16" else None
    apply = train.mixed_apply(model, compute_model, padded=padded)

    def forward_slot(p, b):
      return apply(p, None, slot(b), False)["graph"]

    forward = forward_slot

    def loss_terms(p, key, b):
      pred = apply(p, key, b, True)["graph"]
      mask = batching.masks(b)[2]                  # the real graphs
      err = jnp.where(mask[:, None], pred - b.globals["label"], 0.0)
      return jnp.sum(err ** 2), jnp.sum(mask)

    if mesh is None:
      def loss_fn(p, key, b):
        total, count = loss_terms(p, key, b)
        return total / jnp.maximum(count, 1)
    else:
      from jax.sharding import PartitionSpec as P
      spec = P(parallel.DATA_AXIS)

      def per_device(p, key, b):
        p = jax.lax.pcast(p, parallel.DATA_AXIS, to="varying")
        key = jax.random.fold_in(key, jax.lax.axis_index(parallel.DATA_AXIS))
        total, count = jax.lax.psum(loss_terms(p, key, slot(b)), parallel.DATA_AXIS)
        return total / jnp.maximum(count, 1)

      loss_fn = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(), spec), out_specs=P())
      forward = jax.shard_map(lambda p, b: forward_slot(p, b)[None], mesh=mesh,
                              in_specs=(P(), spec), out_specs=spec)
    self.forward = jax.jit(forward, compiler_options=eval_options)

    @functools.partial(jax.jit, donate_argnums=(0, 1), compiler_options=train_options)
    def train_step(p, state, key, b):
      loss, grads = jax.value_and_grad(loss_fn)(p, key, b)
      updates, state = optimizer.update(grads, state, p)
      return optax.apply_updates(p, updates), state, loss

    self.train_step = train_step
    state = {"p": params, "o": optimizer.init(params), "k": jax.random.PRNGKey(seed + 1)}
    self.state = state if mesh is None else parallel.replicate(state, mesh)
    self.batches = batches

  def evaluate(self, b):
    return self.forward(self.state["p"], b)

  def train(self, b):
    import jax
    self.state["k"], key = jax.random.split(self.state["k"])
    self.state["p"], self.state["o"], loss = self.train_step(self.state["p"], self.state["o"],
                                                             key, b)
    return loss

  def step(self, mode: str, b):
    """The jitted step of `mode` ("eval" or "train") and its arguments for batch `b` (to lower
    or trace it as the timed passes run it)."""
    if mode == "eval":
      return self.forward, (self.state["p"], b)
    return self.train_step, (self.state["p"], self.state["o"], self.state["k"], b)

  def compile(self) -> tuple[float, float]:
    """Compiles both steps for each batch shape: (eval seconds, train seconds)."""
    import jax
    shapes = {}
    for b in self.batches:  # one batch per bucket shape
      shapes.setdefault(b.nodes["x"].shape, b)
    t0 = time.perf_counter()
    for b in shapes.values():
      jax.block_until_ready(self.evaluate(b))
    t1 = time.perf_counter()
    for b in shapes.values():
      self.train(b)
    jax.block_until_ready(self.state["p"])
    return t1 - t0, time.perf_counter() - t1

  def time_eval(self) -> float:
    return _time(self.evaluate, self.batches)

  def time_train(self) -> float:
    return _time(self.train, self.batches)

  def compiles(self) -> tuple[int, int]:
    return self.forward._cache_size(), self.train_step._cache_size()


def size_ordered(graphs, index_lists, batch_graphs: int) -> list[list]:
  """The graphs of `index_lists` (the timed batches' indices into `graphs`) regrouped in
  size order, `batch_graphs` a batch: how a batch padded to its largest graph (the PyTorch
  Molformer's dense attention) wastes least."""
  order = sorted((int(i) for index in index_lists for i in index),
                 key=lambda i: (int(graphs[i].n_node[0]), i))
  return [[graphs[i] for i in order[k:k + batch_graphs]]
          for k in range(0, len(order), batch_graphs)]


def bench_network(name: str, graphs, batch_graphs: int, num_batches: int, repeats: int,
                  with_torch: bool = False, max_buckets: int = 4, seed: int = 0,
                  packed: bool = False, train_options: str = "trainer",
                  variants: tuple[str, ...] = ("",), torch_precision: str = "f32",
                  devices: int = 1, balanced: bool = False) -> list[dict]:
  """Times one network, a row for each of its `variants` (`with_variant`: config settings,
  or padded=False), all on the same batches and pass for pass interleaved; with
  `with_torch`, also the PyTorch reference on the same graphs (unpadded), interleaved with
  them. `packed`: batches packed to a node / edge budget of `batch_graphs` graphs on average
  (`batching.packing_for`) in at most `max_buckets` shapes, else fixed counts of
  `batch_graphs` graphs (`balanced`: dealt to about equal sizes, `batching.plan_balanced`).
  `train_options`: XLA compiler options of the training step, "trainer" (those `jaxgeo
  train` uses at each variant's precision, `jaxgeo.xla_options.train_step`) or "default"
  (XLA's), unless a variant sets its own.
  `torch_precision`: "f32", or "bf16" (the PyTorch reference under autocast).
  `devices`: data parallelism over this many JAX devices (as `jaxgeo train`: each global
  batch of `batch_graphs` graphs, or packed budgets of `batch_graphs / devices` graphs a
  device, cut into one slot a device, `parallel.global_batches`); the PyTorch reference runs
  each global batch's graphs as one batch."""
  import jax
  from jaxgeo import batching, parallel, xla_options

  config = network_config(name)
  rng = np.random.default_rng(seed)
  per_device = parallel.per_device_graphs(batch_graphs, devices)
  packing = batching.packing_for(graphs, per_device) if packed else None
  buckets = batching.choose_buckets(graphs, batch_graphs=per_device, max_buckets=max_buckets,
                                    packing=packing, balanced=balanced)
  efficiency = batching.padding_efficiency(graphs, buckets, per_device, packing=packing,
                                           balanced=balanced)
  mesh = None
  if devices == 1:
    planned = list(batching.batches(graphs, buckets, batch_graphs, rng=rng,
                                    return_indices=True, packing=packing, balanced=balanced))
  else:
    mesh = parallel.make_mesh(parallel.select_devices(devices))
    planned = [(stacked, np.concatenate(parts)) for stacked, parts, _ in
               parallel.global_batches(graphs, buckets, batch_graphs, devices, rng, packing,
                                       balanced)]
  planned = [planned[i] for i in rng.permutation(len(planned))[:num_batches]]
  chosen = [with_labels(b, rng) for b, _ in planned]
  if config.fusion.mode != "none":
    chosen = [with_lm(b, config.fusion.lm_dim, rng) for b in chosen]
  # Real graphs and nodes of the timed batches (a packed batch holds a varying number).
  slots = (lambda b: [b]) if mesh is None else (
      lambda b: [parallel.slot(b, d) for d in range(devices)])
  real_graphs = sum(batching.num_real_graphs(s) for b in chosen for s in slots(b))
  real_nodes = [sum(int(batching.masks(s)[0].sum()) for s in slots(b)) for b in chosen]
  padded_nodes = [int(np.prod(b.nodes["x"].shape[:-1])) for b in chosen]
  chosen = [jax.device_put(b) if mesh is None else parallel.shard_stacked(b, mesh)
            for b in chosen]

  runners, compile_s = [], []
  for variant in variants:
    v = with_variant(config, variant)
    options = (xla_options.train_step(jax.default_backend(), precision=v.precision,
                                      devices=devices)
               if (v.train_options or train_options) == "trainer" else None)
    runners.append(JaxRunner(v.config, v.padded, chosen, seed, options, v.precision, mesh,
                             xla_options.eval_step(jax.default_backend(), devices)))
    compile_s.append(runners[-1].compile())   # compile outside the timed region

  reference = None
  if with_torch:
    reference = TorchReference(name, [[graphs[i] for i in index] for _, index in planned],
                               config.fusion.lm_dim if config.fusion.mode != "none" else 0,
                               torch_precision)
    if reference.model is None:
      reference = None
  references = [reference] if reference else []
  if reference and (packed or balanced) and name in PADDED_REFERENCES:
    references.append(TorchReference(
        name, size_ordered(graphs, [index for _, index in planned], batch_graphs),
        config.fusion.lm_dim if config.fusion.mode != "none" else 0, torch_precision))
  times = [{"eval": [], "train": []} for _ in runners]
  torch_times = [{"eval": [], "train": []} for _ in references]
  for _ in range(repeats):
    for mode in ("eval", "train"):
      for runner, t in zip(runners, times):
        t[mode].append(runner.time_eval() if mode == "eval" else runner.time_train())
      for ref, t in zip(references, torch_times):
        t[mode].append(ref.time_eval() if mode == "eval" else ref.time_train())
  rows = []
  for variant, runner, t, (compile_eval, compile_train) in zip(variants, runners, times,
                                                               compile_s):
    compiles_eval, compiles_train = runner.compiles()
    row = {
        "network": name, "variant": variant,
        "batching": "packed" if packed else "balanced" if balanced else "fixed",
        "padding_nodes": efficiency["nodes"], "padding_edges": efficiency["edges"],
        "params": runner.params, "batches": len(chosen), "graphs": real_graphs,
        "nodes_per_batch": float(np.mean(real_nodes)),
        "padded_nodes_per_batch": float(np.mean(padded_nodes)), "devices": devices,
        "eval_graphs_s": real_graphs / min(t["eval"]),
        "train_graphs_s": real_graphs / min(t["train"]),
        "eval_s": t["eval"], "train_s": t["train"],
        "compiles_eval": compiles_eval, "compiles_train": compiles_train,
        "compile_s_eval": compile_eval, "compile_s_train": compile_train,
        "buckets": len(buckets), "load_avg": os.getloadavg()[0],
    }
    if reference:
      row.update(torch_params=reference.params, torch_precision=torch_precision,
                 torch_eval_graphs_s=real_graphs / min(torch_times[0]["eval"]),
                 torch_train_graphs_s=real_graphs / min(torch_times[0]["train"]))
    if len(references) > 1:
      row.update(torch_sorted_batch=batch_graphs,
                 torch_sorted_eval_graphs_s=real_graphs / min(torch_times[1]["eval"]),
                 torch_sorted_train_graphs_s=real_graphs / min(torch_times[1]["train"]))
    rows.append(row)
  return rows


# --- PyTorch reference models (--torch) -------------------------------------------------
# The published architectures in PyTorch, message passing with index_add_ (as torch_scatter
# does), on the same batches without padding: timed interleaved with the JAX models so that
# both see the same machine load. Paper configurations, residue-type embedding.

def torch_reference(name: str):
  """A PyTorch GVP-GNN or EGNN (paper configuration, graph head) for `name`."""
  import torch
  from torch import nn
  F = nn.functional

  def norm(x, dim=-1, keepdim=False, sqrt=True):
    out = torch.clamp(torch.sum(x * x, dim, keepdim), min=1e-8)
    return torch.sqrt(out) if sqrt else out

  class GVP(nn.Module):
    def __init__(self, i, o, act=True):
      super().__init__()
      (self.si, self.vi), (self.so, self.vo) = i, o
      self.act = act
      if self.vi:
        h = max(self.vi, self.vo)
        self.wh = nn.Linear(self.vi, h, bias=False)
        self.ws = nn.Linear(h + self.si, self.so)
        if self.vo:
          self.wv = nn.Linear(h, self.vo, bias=False)
          self.wsv = nn.Linear(self.so, self.vo)
      else:
        self.ws = nn.Linear(self.si, self.so)

    def forward(self, s, v):
      if self.vi:
        vh = self.wh(v.transpose(-1, -2))
        s = self.ws(torch.cat([s, norm(vh, dim=-2)], -1))
        if self.vo:
          v = self.wv(vh).transpose(-1, -2) * torch.sigmoid(self.wsv(s)).unsqueeze(-1)
      else:
        s = self.ws(s)
        if self.vo:
          v = torch.zeros(s.shape[0], self.vo, 3)
      return (F.relu(s) if self.act else s), (v if self.vo else None)

  class TupleNorm(nn.Module):
    def __init__(self, dims):
      super().__init__()
      self.scalar = nn.LayerNorm(dims[0])

    def forward(self, s, v):
      if v is None:
        return self.scalar(s), None
      vn = torch.sqrt(torch.mean(norm(v, keepdim=True, sqrt=False), dim=-2, keepdim=True))
      return self.scalar(s), v / vn

  def dropout(s, v, p, training):
    if not training:
      return s, v
    mask = torch.bernoulli(torch.full(v.shape[:-1], 1 - p)).unsqueeze(-1) / (1 - p)
    return F.dropout(s, p, True), v * mask

  def mean_at(messages, index, n):
    out = torch.zeros((n,) + messages.shape[1:]).index_add_(0, index, messages.float())
    count = torch.zeros(n).index_add_(0, index, torch.ones(index.shape[0])).clamp(min=1)
    return out / count.view((n,) + (1,) * (messages.ndim - 1))

  class GVPLayer(nn.Module):
    def __init__(self, node, edge):
      super().__init__()
      msg_in = (2 * node[0] + edge[0], 2 * node[1] + edge[1])
      self.message = nn.ModuleList([GVP(msg_in, node), GVP(node, node),
                                    GVP(node, node, act=False)])
      hidden = (4 * node[0], 2 * node[1])
      self.ff = nn.ModuleList([GVP(node, hidden), GVP(hidden, node, act=False)])
      self.norm = nn.ModuleList([TupleNorm(node), TupleNorm(node)])

    def forward(self, s, v, es, ev, src, dst):
      ms = torch.cat([s[src], es, s[dst]], -1)
      mv = torch.cat([v[src], ev, v[dst]], -2)
      for layer in self.message:
        ms, mv = layer(ms, mv)
      ds, dv = dropout(mean_at(ms, dst, s.shape[0]), mean_at(mv, dst, s.shape[0]), 0.1,
                       self.training)
      s, v = self.norm[0](s + ds, v + dv)
      fs, fv = s, v
      for layer in self.ff:
        fs, fv = layer(fs, fv)
      fs, fv = dropout(fs, fv, 0.1, self.training)
      return self.norm[1](s + fs, v + fv)

  class GVPGNN(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(22, 32)
      self.node_norm, self.node_in = TupleNorm((32, 0)), GVP((32, 0), (100, 16), act=False)
      self.edge_norm, self.edge_in = TupleNorm((36, 1)), GVP((36, 1), (32, 1), act=False)
      self.layers = nn.ModuleList([GVPLayer((100, 16), (32, 1)) for _ in range(5)])
      self.out_norm, self.out = TupleNorm((100, 16)), GVP((100, 16), (100, 0))
      self.dense = nn.Sequential(nn.Linear(100, 200), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(200, 1))

    def forward(self, b):
      s, v = self.node_in(*self.node_norm(self.embed(b["aatype"]), None))
      es, ev = self.edge_in(*self.edge_norm(b["edge_s"], b["edge_v"]))
      for layer in self.layers:
        s, v = layer(s, v, es, ev, b["senders"], b["receivers"])
      s, _ = self.out(*self.out_norm(s, v))
      return self.dense(mean_at(s, b["graph"], b["n_graph"]))

  class EGCL(nn.Module):
    def __init__(self, hidden, edge_dim):
      super().__init__()
      self.edge_mlp = nn.Sequential(nn.Linear(2 * hidden + 1 + edge_dim, hidden), nn.SiLU(),
                                    nn.Linear(hidden, hidden), nn.SiLU())
      self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(),
                                    nn.Linear(hidden, hidden))
      last = nn.Linear(hidden, 1, bias=False)
      nn.init.xavier_uniform_(last.weight, gain=0.001)
      self.coord_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), last)

    def forward(self, h, x, edge_attr, src, dst):
      diff = x[dst] - x[src]
      radial = torch.sum(diff ** 2, 1, keepdim=True)
      m = self.edge_mlp(torch.cat([h[dst], h[src], radial, edge_attr], 1))
      diff = diff / (torch.sqrt(radial) + 1e-6)
      x = x + mean_at(diff * self.coord_mlp(m), dst, x.shape[0])
      agg = torch.zeros(h.shape[0], m.shape[1]).index_add_(0, dst, m.float())
      return h + self.node_mlp(torch.cat([h, agg], 1)), x

  class EGNN(nn.Module):
    def __init__(self, hidden):
      super().__init__()
      self.embed = nn.Embedding(22, hidden)
      self.layers = nn.ModuleList([EGCL(hidden, 36) for _ in range(4)])
      self.dense = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(2 * hidden, 1))

    def forward(self, b):
      h, x = (b["lm"] if "lm" in b else self.embed(b["aatype"])), b["x"]
      for layer in self.layers:
        h, x = layer(h, x, b["edge_s"], b["senders"], b["receivers"])
      return self.dense(mean_at(h, b["graph"], b["n_graph"]))

  class MolformerLayer(nn.Module):
    """Pre-norm layer of the paper's Molformer: multi-head attention over a dense padded batch
    [B, L, W] whose logits are multiplied by a per-head function of the distance map (1x1
    convolutions 1 -> H -> H with ReLU), then a ReLU feed-forward."""
    def __init__(self, width, heads, ffn):
      super().__init__()
      self.heads, self.dk = heads, width // heads
      self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
      self.dist1, self.dist2 = nn.Conv2d(1, heads, 1), nn.Conv2d(heads, heads, 1)
      self.norm0, self.norm1 = nn.LayerNorm(width), nn.LayerNorm(width)
      self.ffn = nn.Sequential(nn.Linear(width, ffn), nn.ReLU(), nn.Dropout(0.1),
                               nn.Linear(ffn, width))
      self.drop = nn.Dropout(0.1)

    def forward(self, h, dist, mask):
      b, n, w = h.shape
      y = self.norm0(h)
      split = lambda t: t.view(b, n, self.heads, self.dk).transpose(1, 2)
      q, k, v = split(self.q(y)), split(self.k(y)), split(self.v(y))
      scale = self.dist2(F.relu(self.dist1(dist.unsqueeze(1))))            # [B, H, L, L]
      scores = (q @ k.transpose(-1, -2)) / self.dk ** 0.5 * scale
      scores = scores.masked_fill(~mask[:, None, None, :], -1e9)
      attn = self.drop(torch.softmax(scores, -1))
      out = (attn @ v).transpose(1, 2).reshape(b, n, w)
      h = h + self.drop(self.o(out))
      return h + self.drop(self.ffn(self.norm1(h)))

  class Molformer(nn.Module):
    """The paper's configuration: 2 layers, 4 heads, feed-forward = width; the residue-type
    embedding (or the LM vector, "replace") is the first hidden state."""
    def __init__(self, width, lm=False):
      super().__init__()
      self.embed = None if lm else nn.Embedding(22, width)
      self.layers = nn.ModuleList([MolformerLayer(width, 4, width) for _ in range(2)])
      self.dense = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(width, 1))

    def forward(self, b):
      h = b["lm"] if self.embed is None else self.embed(b["aatype"])
      index, mask = b["dense_index"], b["dense_mask"]                     # [B, L]
      dense = h[index] * mask[..., None]
      x = b["x"][index]
      dist = torch.cdist(x, x)
      for layer in self.layers:
        dense = layer(dense, dist, mask)
      pooled = (dense * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
      return self.dense(pooled)

  if name in ("molformer", "molformer_dense"):
    return Molformer(32)
  if name == "molformer_1280":
    return Molformer(1280, lm=True)
  if name == "gvp":
    return GVPGNN()
  if name == "egnn":
    return EGNN(32)
  if name == "egnn_1280":
    model = EGNN(1280)
    del model.embed
    return model
  return None


def torch_batch(graphs, lm_dim: int = 0, rng=None):
  """Real graphs batched without padding, as torch tensors."""
  import jraph
  import torch
  b = jraph.batch_np(list(graphs))
  n_node = np.asarray(b.n_node)
  out = {
      "aatype": torch.from_numpy(np.clip(b.nodes["aatype"], 0, 21).astype(np.int64)),
      "x": torch.from_numpy(b.nodes["x"]), "edge_s": torch.from_numpy(b.edges["s"]),
      "edge_v": torch.from_numpy(b.edges["v"]),
      "senders": torch.from_numpy(b.senders.astype(np.int64)),
      "receivers": torch.from_numpy(b.receivers.astype(np.int64)),
      "graph": torch.from_numpy(np.repeat(np.arange(len(n_node)), n_node)),
      "n_graph": len(n_node), "label": torch.from_numpy(
          rng.normal(size=(len(n_node), 1)).astype(np.float32)),
  }
  # The dense padded layout [B, L] of the Molformer reference (as the paper's code batches).
  starts = np.concatenate([[0], np.cumsum(n_node)[:-1]])
  width = int(n_node.max())
  offsets = np.arange(width)[None, :]
  out["dense_mask"] = torch.from_numpy(offsets < n_node[:, None])
  out["dense_index"] = torch.from_numpy(
      np.minimum(starts[:, None] + offsets, starts[:, None] + n_node[:, None] - 1).astype(
          np.int64))
  if lm_dim:
    out["lm"] = torch.from_numpy(rng.normal(size=(int(n_node.sum()), lm_dim)).astype(
        np.float32))
  return out


class TorchReference:
  """A PyTorch reference model, its optimiser and batches; times eval and train passes."""

  def __init__(self, name: str, graph_lists, lm_dim: int, precision: str = "f32"):
    """precision "bf16": forward passes under `torch.autocast` to bfloat16 (parameters,
    gradients and Adam's state float32; sums over edges float32)."""
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    self.bf16 = precision == "bf16"
    self.model = torch_reference(name)
    if self.model is None:
      return
    rng = np.random.default_rng(0)
    self.batches = [torch_batch(g, lm_dim, rng) for g in graph_lists]
    self.params = sum(p.numel() for p in self.model.parameters())
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
    self.model.eval()
    self.evaluate(self.batches[0])       # warm-up
    self.model.train()
    self.train(self.batches[0])

  def _autocast(self):
    import torch
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

  def evaluate(self, b):
    import torch
    with torch.no_grad(), self._autocast():
      self.model(b)

  def train(self, b):
    self.optimizer.zero_grad()
    with self._autocast():
      out = self.model(b)
    loss = ((out.float() - b["label"]) ** 2).mean()
    loss.backward()
    self.optimizer.step()

  def time_eval(self) -> float:
    self.model.eval()
    return _time_torch(self.evaluate, self.batches)

  def time_train(self) -> float:
    self.model.train()
    return _time_torch(self.train, self.batches)


def _time_torch(fn, batches) -> float:
  start = time.perf_counter()
  for b in batches:
    fn(b)
  return time.perf_counter() - start


def fmt_rate(value: float | None) -> str:
  if value is None:
    return "-"
  return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def table(rows: list[dict]) -> str:
  lines = [
      "| network | variant | batching | real nodes / edges | params | eval graphs/s | train graphs/s | "
      "issue's reference eval / train (speed-up) | PyTorch here, same moment: eval / train "
      "(speed-up) | compiles (eval, train) | compile s (eval, train) | load avg |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  ratio = lambda a, b: f"{a / b:.1f}x" if b else "-"
  for r in rows:
    ref_train, ref_eval = REFERENCE.get(r["network"], (None, None))
    if ref_eval or ref_train:
      ref = (f"{fmt_rate(ref_eval)} / {fmt_rate(ref_train)} ("
             f"{ratio(r['eval_graphs_s'], ref_eval)} / {ratio(r['train_graphs_s'], ref_train)})")
    else:
      ref = "-"
    if "torch_eval_graphs_s" in r:
      here = (f"{fmt_rate(r['torch_eval_graphs_s'])} / {fmt_rate(r['torch_train_graphs_s'])} ("
              f"{ratio(r['eval_graphs_s'], r['torch_eval_graphs_s'])} / "
              f"{ratio(r['train_graphs_s'], r['torch_train_graphs_s'])})")
      if "torch_sorted_eval_graphs_s" in r:
        here += (f"; the same graphs in size order, {r['torch_sorted_batch']} a batch: "
                 f"{fmt_rate(r['torch_sorted_eval_graphs_s'])} / "
                 f"{fmt_rate(r['torch_sorted_train_graphs_s'])} ("
                 f"{ratio(r['eval_graphs_s'], r['torch_sorted_eval_graphs_s'])} / "
                 f"{ratio(r['train_graphs_s'], r['torch_sorted_train_graphs_s'])})")
      if r.get("torch_precision", "f32") != "f32":
        here += f", PyTorch {r['torch_precision']} autocast"
    else:
      here = "-"
    lines.append(
        f"| {r['network']} | {r.get('variant') or 'paper config'} | {r['batching']} | {r['padding_nodes']:.0%} / "
        f"{r['padding_edges']:.0%} | {r['params']:,} | {fmt_rate(r['eval_graphs_s'])} | "
        f"{fmt_rate(r['train_graphs_s'])} | {ref} | {here} | "
        f"{r['compiles_eval']}, {r['compiles_train']} | "
        f"{r['compile_s_eval']:.0f}, {r['compile_s_train']:.0f} | {r['load_avg']:.1f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", type=pathlib.Path,
                      default=pathlib.Path(os.environ.get(
                          "JAXGEO_SHARED_DATA", REPO.parent / "shared" / "data")) / "db5.5")
  parser.add_argument("--networks", nargs="+", default=list(NETWORKS[:4]), choices=NETWORKS)
  parser.add_argument("--batches", type=int, default=12,
                      help="batches timed per network (the 1280-wide ones use a third)")
  parser.add_argument("--batch-graphs", type=int, default=8)
  parser.add_argument("--buckets", type=int, default=4,
                      help="max_buckets of batching.choose_buckets (more: less padding, more "
                           "compilations)")
  parser.add_argument("--repeats", type=int, default=2, help="best of this many passes")
  parser.add_argument("--batching", nargs="+", default=["fixed", "packed"],
                      choices=["fixed", "balanced", "packed"],
                      help="fixed-count batches (--buckets shapes), fixed-count batches dealt "
                           "to about equal sizes (train.batching=balanced, --buckets shapes) "
                           "and / or batches packed to a node / edge budget (--packed-buckets "
                           "shapes), timed in turn")
  parser.add_argument("--packed-buckets", type=int, default=2)
  parser.add_argument("--torch", action="store_true",
                      help="also time PyTorch reference models (gvp, egnn, egnn_1280) on the "
                           "same graphs, interleaved with the JAX passes")
  parser.add_argument("--torch-precision", choices=["f32", "bf16"], default="f32",
                      help="the PyTorch references in float32, or under bfloat16 autocast "
                           "(for the 'precision=bf16' variants)")
  parser.add_argument("--train-options", choices=["trainer", "default"], default="trainer",
                      help="XLA options of the training step: those `jaxgeo train` uses "
                           "(jaxgeo.xla_options: YNNPACK dot fusions on CPU) or XLA's defaults")
  parser.add_argument("--variants", nargs="+", default=[""], metavar="SETTINGS",
                      help="time these variants of each network, interleaved on the same "
                           "batches (before / after figures from one run): each is "
                           "space-separated model-config settings, e.g. 'egnn.edge_chunk=4096', "
                           "or run settings: 'padded=False' (no padding skips), "
                           "'precision=bf16' (mixed precision), 'train_options=default' (XLA's "
                           "defaults for that variant's training step); '' is the paper config")
  parser.add_argument("--devices", type=int, default=1,
                      help="data parallelism over this many JAX devices: on CPU the host is "
                           "split into as many (`parallel.split_cpu`, as `jaxgeo train` with "
                           "train.cpu_devices); each global batch of --batch-graphs graphs is "
                           "cut into one slot a device")
  parser.add_argument("--repeats-1280", type=int, default=1,
                      help="passes of the 1280-wide networks (best of)")
  parser.add_argument("--out", type=pathlib.Path, default=None,
                      help="write the markdown table here (atomically)")
  args = parser.parse_args(argv)

  import jax
  from jaxgeo import parallel, xla_options
  if args.devices > 1:
    parallel.split_cpu(args.devices)     # before JAX starts (a no-op on GPU / TPU devices)
  train_options = (xla_options.train_step(jax.default_backend())
                   if args.train_options == "trainer" else None)    # float32's, for the header
  graphs = load_db55(args.data)
  n = np.array([int(g.n_node[0]) for g in graphs])
  e = np.array([int(g.n_edge[0]) for g in graphs])
  from jaxgeo import batching
  packing = batching.packing_for(graphs, args.batch_graphs)
  header = (f"DB5.5 bound chains: {len(graphs)} graphs, mean {n.mean():.0f} residues (max "
            f"{n.max()}), mean {e.mean() / n.mean():.1f} edges per node; fixed: batches of "
            f"{args.batch_graphs} graphs in at most {args.buckets} buckets (balanced: the "
            f"same, dealt to about equal sizes); packed: batches "
            f"of at most {packing.nodes} nodes / {packing.edges} edges ({args.batch_graphs} "
            f"graphs on average) in at most {args.packed_buckets} buckets; JAX "
            f"{jax.__version__} on {args.devices} {jax.devices()[0].platform} device(s) "
            f"({os.cpu_count()} CPUs visible); training-step XLA options: {train_options or 'XLA defaults'} (in "
            f"float32; bfloat16 variants: {args.train_options} options at their precision); "
            f"graphs/s count real graphs, compile time excluded; the PyTorch ports "
            f"run the same graphs without padding")
  print(header, flush=True)
  rows = []
  for name in args.networks:
    count = max(2, args.batches // 3) if name.endswith("_1280") else args.batches
    repeats = args.repeats_1280 if name.endswith("_1280") else args.repeats
    for mode in args.batching:
      packed = mode == "packed"
      for row in bench_network(name, graphs, args.batch_graphs, count, repeats, args.torch,
                               args.packed_buckets if packed else args.buckets, packed=packed,
                               train_options=args.train_options,
                               variants=tuple(args.variants),
                               torch_precision=args.torch_precision,
                               devices=args.devices, balanced=mode == "balanced"):
        print(row, flush=True)
        rows.append(row)
  text = header + "\n\n" + table(rows) + "\n"
  print("\n" + text)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False) as f:
      f.write(text)
    os.replace(f.name, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
