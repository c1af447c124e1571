"""The training loop: optax Adam + reduce-on-plateau, jitted steps, early stopping, run
folders that resume.

    result = train.train(config, "runs/position_gvp_none-20250101-120000")

What a run does (the paper's schedule, `jaxgeo.config.base_config`):
- Adam (lr `train.lr`); after every epoch the monitored validation value (`train.monitor`:
  the loss, as in the paper, or the task's primary metric) feeds
  `optax.contrib.reduce_on_plateau`, whose scale multiplies Adam's updates (factor 0.6,
  patience, down to `plateau.min_lr`); early stopping after `train.patience` epochs without
  improvement; the best epoch's parameters are evaluated on the test split at the end.
- The optimizer is `optax.chain(adam, reduce_on_plateau)` (its state is the chain's
  (adam_state, plateau_state) tuple); the train step applies Adam and multiplies by the
  plateau state's scale without feeding it a value, and the epoch end feeds the plateau
  transform the validation value with `accumulation_size=1` (optax's recipe for a
  validation metric).
- Batches come from `batching.batches` over a few buckets chosen from all splits, so the
  train step compiles once per bucket and the eval step likewise; masks keep padding out of
  every loss and metric (the task's `loss` / `predictions`). The next batch is put on the
  device while the current step runs (`train.prefetch`).
- The train step is jitted with the params and optimizer state donated; `is_training` is
  static. Dropout keys are `fold_in(fold_in(key(seed), epoch), step)` and the data order
  of epoch e comes from `np.random.default_rng([seed, e])`, so a run is a pure function of its
  config and an interrupted run that resumes from its last checkpoint ends with the same
  numbers as an uninterrupted one.

The run folder:
  config.json        the resolved experiment config;  model.json: the nets.ModelConfig
  log.jsonl          one line per epoch: train/val loss, val metrics, learning rate, seconds,
                     compilations so far, padding efficiency, best epoch, bad epochs
  checkpoints/last/  orbax checkpoint of the end of the newest epoch (params, optimizer
                     state, key, epoch, best value, early-stopping counters, data seed)
  checkpoints/best/  the best epoch so far
  test_metrics.json  final: test (and val) metrics of the best epoch, epochs run, timings
  lm.json            with LM fusion: the model name, layer, store and the content fingerprint
                     of the language model whose vectors the run trained with (None for a
                     store written before fingerprints); resume and `eval` refuse a store
                     that does not hold that fingerprint
  .lock              the run's exclusive lock (see `checkpoint.RunLock`): a second training
                     of the same folder stops with one line naming the process that holds it
Training again on a folder that has a checkpoint resumes it (with the saved config; only
`config.RESUMABLE_CHANGES` may differ, e.g. more epochs for a run that was killed). A finished
folder (test_metrics.json present) is extended when `train.epochs` grew and the run did not
stop early (it resumes from the last checkpoint, ending with the numbers of a run trained that
long from the start); otherwise it prints the summary again and says how to extend it.
A torn last line of log.jsonl (a kill while it was written) is dropped.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jraph
import ml_collections
import numpy as np
import optax

from jaxgeo import batching, compile_cache, io, nets, parallel, xla_options
from jaxgeo.compile_cache import CompileCounter   # re-exported: train.CompileCounter
from jaxgeo import config as config_lib
from jaxgeo import tasks as tasks_lib
from jaxgeo.checkpoint import LOCK_FILE, Checkpointer, RunLock
from jaxgeo.errors import CheckpointError, ConfigError, DataError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
MODEL_FILE = "model.json"
DATASET_FILE = "dataset.json"   # the dataset's summary: resolved splits, skips, stats
LOG_FILE = "log.jsonl"
RESULT_FILE = "test_metrics.json"
LM_FILE = "lm.json"


# --- environment ------------------------------------------------------------------------------

def setup_jax(cache_dir: str | None = None, default_cache: str | os.PathLike | None = None,
              compile_cache_enabled: bool = True, cpu_devices: int | None = None
              ) -> str | None:
  """Splits the host CPU into `cpu_devices` JAX devices when given (`parallel.split_cpu`;
  `cpu_device_count(config)` for a run), joins a multi-host run when one is configured
  (`parallel.initialize`), both before any device is touched, and turns on the persistent
  compilation cache (`jaxgeo.compile_cache`) at `cache_dir`, else $JAXGEO_JAX_CACHE, else
  `default_cache` (`jaxgeo train`: the runs root's .jax_cache); `compile_cache_enabled=False`
  turns it off. -> the folder used, or None."""
  if cpu_devices is not None:
    parallel.split_cpu(cpu_devices)
  parallel.initialize()   # a no-op unless a multi-host launch is configured
  return compile_cache.setup(cache_dir, default=default_cache, enabled=compile_cache_enabled)


def prefetch(items: Iterable[tuple[jraph.GraphsTuple, Any]], size: int = 2,
             put: Callable | None = None
             ) -> Iterator[tuple[jraph.GraphsTuple, jraph.GraphsTuple, Any]]:
  """(host batch, extra) -> (host batch, device batch, extra), keeping up to `size` batches
  in flight (jax.device_put is asynchronous, so the copy overlaps the running step).
  `put`: host batch -> device batch (default `jax.device_put`; data-parallel runs shard a
  stacked global batch over the mesh)."""
  put = put or jax.device_put
  queue: collections.deque = collections.deque()
  for batch, extra in items:
    queue.append((batch, put(batch), extra))
    if len(queue) > max(size, 0):
      yield queue.popleft()
  while queue:
    yield queue.popleft()


# --- the pieces of a run ---------------------------------------------------------------------

@dataclasses.dataclass
class Setup:
  """Everything a run computes from its config before the first step."""
  config: ml_collections.ConfigDict
  task: tasks_lib.Task
  model_config: nets.ModelConfig
  splits: tasks_lib.Splits
  stats: dict              # what the task's loss / metrics need from the data
  buckets: list
  model: Any               # hk.Transformed
  adam: optax.GradientTransformation
  plateau: optax.GradientTransformationExtraArgs
  optimizer: optax.GradientTransformation   # optax.chain(adam, plateau)
  train_step: Callable
  eval_step: Callable
  plateau_step: Callable
  lm: Any = None           # the lm.Features the data was read with (None: not fused)
  mesh: Any = None         # jax.sharding.Mesh of a data-parallel run (None: one device)
  info: Any = None         # the dataset's JSON-ready summary (splits, skips, stats)
  packing: Any = None      # batching.Packing of packed batches (None: fixed count)
  balanced: bool = False   # fixed-count batches dealt to about equal sizes

  @property
  def devices(self) -> int:
    """Devices along the mesh's data axis (1 without a mesh)."""
    return 1 if self.mesh is None else parallel.data_size(self.mesh)

  @property
  def device_graphs(self) -> int:
    """Graphs per device of a global batch of train.batch_graphs."""
    return int(self.config.train.batch_graphs) // self.devices


def make_optimizer(config: ml_collections.ConfigDict):
  """-> (adam, plateau, optax.chain(adam, plateau))."""
  t = config.train
  adam = optax.adam(float(t.lr))
  plateau = optax.contrib.reduce_on_plateau(
      factor=float(t.plateau.factor), patience=int(t.plateau.patience),
      rtol=float(t.plateau.rtol), atol=0.0 if float(t.plateau.rtol) > 0 else 1e-12,
      cooldown=int(t.plateau.cooldown), accumulation_size=1,
      min_scale=float(t.plateau.min_lr) / float(t.lr))
  return adam, plateau, optax.chain(adam, plateau)


def cast_floating(tree, dtype):
  """The floating-point leaves of `tree` cast to `dtype` (other leaves unchanged)."""
  return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x,
      tree)


def mixed_apply(model, compute_model=None, padded: bool = True) -> Callable:
  """apply(params, rng, batch, is_training) of `model` on batches from `batching.batches`
  (`padded`: with the padding skips, see `nets.make_model`); with `compute_model` (the same
  network built with a bfloat16 compute dtype), mixed precision: the float32 parameters are
  cast to bfloat16 for the forward pass and the outputs back to float32, so gradients,
  parameters and optimiser state stay float32 (inside the networks aggregations, matmuls and
  the gathers' gradients accumulate in float32: `nets.ops`, `nets.precision`)."""
  if compute_model is None:
    return lambda params, rng, batch, is_training: model.apply(params, rng, batch, is_training,
                                                                padded=padded)

  def apply(params, rng, batch, is_training):
    outputs = compute_model.apply(cast_floating(params, jnp.bfloat16), rng, batch, is_training,
                                  padded=padded)
    return cast_floating(outputs, jnp.float32)
  return apply


def _step_rng(key, epoch, step):
  """The dropout key of one training step: the run's key data folded with epoch and step."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(key), epoch), step)


def _apply_gradients(adam: optax.GradientTransformation, params, opt_state, grads):
  """One Adam update scaled by reduce_on_plateau's current scale -> (params, opt_state);
  opt_state is (adam state, plateau state)."""
  adam_state, plateau_state = opt_state
  updates, adam_state = adam.update(grads, adam_state, params)
  updates = jax.tree_util.tree_map(lambda u: plateau_state.scale * u, updates)
  return optax.apply_updates(params, updates), (adam_state, plateau_state)


def _plateau_step(plateau: optax.GradientTransformationExtraArgs):
  """plateau_step(plateau_state, value) -> plateau_state (the (empty) updates are ignored)."""
  def plateau_step(plateau_state, value):
    return plateau.update({}, plateau_state, value=value)[1]
  return plateau_step


def make_steps(model, task: tasks_lib.Task, stats: dict, adam: optax.GradientTransformation,
               plateau: optax.GradientTransformationExtraArgs, compute_model=None,
               compiler_options: dict | None = None):
  """-> (train_step, eval_step, plateau_step), all jitted.

  `stats` (from the task's `load`: e.g. pos_weight, label mean / std) is passed to the task's
  loss explicitly and baked into the compiled steps as constants. `compute_model`: the
  bfloat16 network of mixed precision (`mixed_apply`), or None. `compiler_options`: XLA
  options of the train step alone (`xla_options.train_step`); None: XLA's defaults.

  train_step(params, opt_state, batch, key, epoch, step) -> (params, opt_state, loss):
    params and opt_state are donated; key: [2] uint32 key data; epoch, step: int32 scalars.
  eval_step(params, batch) -> (outputs, loss).
  plateau_step(plateau_state, value) -> plateau_state: feeds the epoch's validation value
    (lower is better) to reduce_on_plateau; its `update` ignores the (empty) updates.
  """

  apply = mixed_apply(model, compute_model)

  def train_step(params, opt_state, batch, key, epoch, step):
    rng = _step_rng(key, epoch, step)

    def loss_fn(p):
      outputs = apply(p, rng, batch, True)
      return task.loss(outputs, batch, stats)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    params, opt_state = _apply_gradients(adam, params, opt_state, grads)
    return params, opt_state, loss

  def eval_step(params, batch):
    outputs = apply(params, None, batch, False)
    return outputs, task.loss(outputs, batch, stats)

  return (jax.jit(train_step, donate_argnums=(0, 1), compiler_options=compiler_options),
          jax.jit(eval_step), jax.jit(_plateau_step(plateau)))


def label_count(task: tasks_lib.Task, batch: jraph.GraphsTuple):
  """Real labelled items of a padded batch (nodes for node tasks, graphs for graph tasks):
  the count a task's masked-mean loss divides by. -> float32 scalar (jnp, in jit)."""
  mask = (tasks_lib.base.node_label_mask(batch) if task.head == "node"
          else tasks_lib.base.graph_label_mask(batch))
  return jnp.sum(mask).astype(jnp.float32)


def make_parallel_steps(model, task: tasks_lib.Task, stats: dict,
                        adam: optax.GradientTransformation,
                        plateau: optax.GradientTransformationExtraArgs, mesh,
                        compute_model=None, compiler_options: dict | None = None,
                        eval_options: dict | None = None):
  """Data-parallel (train_step, eval_step, plateau_step) over `mesh`, jitted with shardings
  (`compute_model`, `compiler_options`: as in `make_steps`; `eval_options`: XLA options of
  the eval step, `xla_options.eval_step`).

  Batches are stacked global batches [D, ...] (D slots, sharded over the `data` axis; a device
  may hold several slots); params and optimizer state are replicated.

  The loss of a step is the mean over the real labelled items of all slots:
  sum_d loss_d * n_d / sum_d n_d, with loss_d a slot's masked mean (the task's `loss`) and n_d
  its labelled count (`label_count`), so it equals the loss of one device on the same global
  batch (not a mean of per-slot means). It is computed inside `jax.shard_map` with `psum`s;
  its gradient with respect to the replicated parameters is reduced over devices by the
  transpose of shard_map (an XLA all-reduce). Dropout keys: slot d of step s uses
  fold_in(fold_in(fold_in(key, epoch), step), d), whatever the device count.

  train_step(params, opt_state, batch, key, epoch, step) -> (params, opt_state, loss).
  eval_step(params, batch) -> (outputs [D, ...], per-slot losses [D]), both replicated so that
    every process reads them.
  """
  from jax.sharding import PartitionSpec as P
  apply = mixed_apply(model, compute_model)
  data, repl = parallel.data_sharded(mesh), parallel.replicated(mesh)
  spec = P(parallel.DATA_AXIS)

  def slots_apply(fn, batch):
    """fn(slot batch, global slot index) over the local slots [k, ...] of a device."""
    k = jax.tree_util.tree_leaves(batch)[0].shape[0]
    first = jax.lax.axis_index(parallel.DATA_AXIS) * k
    if k == 1:
      return jax.tree_util.tree_map(
          lambda x: x[None], fn(parallel.slot(batch, 0), first))
    return jax.vmap(fn)(batch, first + jnp.arange(k))

  def global_loss(params, batch, rng):
    def per_device(params, batch, rng):
      # Typed as varying over the data axis from the start: their gradient is then reduced
      # once, where they enter, by the transpose of this cast (an all-reduce). Left implicit,
      # JAX casts a parameter where it first meets batch data, which may be inside a network's
      # per-device cond (a skipped padding chunk): its all-reduce would then run on some
      # devices only and never complete.
      params = jax.lax.pcast(params, parallel.DATA_AXIS, to="varying")
      def one(b, index):
        outputs = apply(params, jax.random.fold_in(rng, index), b, True)
        return task.loss(outputs, b, stats), label_count(task, b)
      losses, counts = slots_apply(one, batch)
      total = jax.lax.psum(jnp.sum(counts), parallel.DATA_AXIS)
      return jax.lax.psum(jnp.sum(losses * counts), parallel.DATA_AXIS) / jnp.maximum(total, 1.0)
    return jax.shard_map(per_device, mesh=mesh, in_specs=(P(), spec, P()), out_specs=P())(
        params, batch, rng)

  def train_step(params, opt_state, batch, key, epoch, step):
    loss, grads = jax.value_and_grad(global_loss)(params, batch, _step_rng(key, epoch, step))
    params, opt_state = _apply_gradients(adam, params, opt_state, grads)
    return params, opt_state, loss

  def eval_step(params, batch):
    def per_device(params, batch):
      def one(b, index):
        del index
        outputs = apply(params, None, b, False)
        return outputs, task.loss(outputs, b, stats)
      return slots_apply(one, batch)
    return jax.shard_map(per_device, mesh=mesh, in_specs=(P(), spec),
                         out_specs=(spec, spec))(params, batch)

  return (jax.jit(train_step, donate_argnums=(0, 1),
                  in_shardings=(repl, repl, data, repl, repl, repl),
                  out_shardings=(repl, repl, repl), compiler_options=compiler_options),
          jax.jit(eval_step, in_shardings=(repl, data), out_shardings=repl,
                  compiler_options=eval_options),
          jax.jit(_plateau_step(plateau), out_shardings=repl))


def cpu_device_count(config: ml_collections.ConfigDict) -> int:
  """The CPU devices `jaxgeo train` splits the host into for `config` (train.cpu_devices;
  0: one per core, at most a divisor of train.batch_graphs, and one for networks of
  `parallel.WIDE_MODEL_WIDTH` or wider; `parallel.cpu_device_count`)."""
  width = nets.encoder_width(config_lib.model_config(config))
  return parallel.cpu_device_count(int(config.train.get("cpu_devices", 1)),
                                   int(config.train.batch_graphs), width=width)


def saved_cpu_device_count(run_dir: str | os.PathLike, requested: int | None = None
                           ) -> int | None:
  """The CPU devices a command reading a run folder (`jaxgeo eval`, `jaxgeo predict`) splits
  the host into: `requested` (its --cpu-devices) else the run's train.cpu_devices, each as
  `cpu_device_count` resolves it for the run's config; None when the folder has no config
  (the command then fails naming it)."""
  saved = pathlib.Path(run_dir) / CONFIG_FILE
  if not saved.is_file():
    return None
  config = config_lib.from_json(saved)
  if requested is not None:
    config = config_lib.validate(config_lib.apply_overrides(
        config, [f"train.cpu_devices={requested}"]))
  return cpu_device_count(config)


def run_devices(config: ml_collections.ConfigDict) -> int:
  """Devices a run of `config` uses (train.devices; 0 or absent: every visible device)."""
  return len(parallel.select_devices(int(config.train.get("devices", 0) or 0)))


def prepare(config: ml_collections.ConfigDict, store=None) -> Setup:
  """Validates the config, loads the task's data (with the language-model features of the
  config's `lm` section, read from `store` or `lm.store`), chooses buckets, builds the model
  and the jitted steps."""
  config_lib.validate(config)   # a bad option is named before the store is opened
  task, options, inputs = config_lib.task_setup(config, store)
  config_lib.validate(config, task)
  model_config = config_lib.model_config(config)
  dataset = task.load(options, inputs)
  splits, stats = dataset.splits, dict(dataset.stats)
  logger.info("%s: %s", task.name, dataset.info)
  t = config.train
  devices = parallel.select_devices(int(t.get("devices", 0) or 0))
  per_device = parallel.per_device_graphs(int(t.batch_graphs), len(devices))
  everything = list(splits.train) + list(splits.val) + list(splits.test)
  packing = packing_of(config, splits.train, per_device)
  balanced = is_balanced(config)
  max_buckets = int(t.max_buckets) if packing is None else int(t.packing.buckets)
  buckets = batching.choose_buckets(everything, batch_graphs=per_device,
                                    max_buckets=max_buckets, seed=int(t.seed),
                                    packing=packing, balanced=balanced)
  model = nets.make_model(model_config)
  compute_model = (nets.make_model(model_config, jnp.bfloat16)
                   if t.get("precision", "f32") == "bf16" else None)
  adam, plateau, optimizer = make_optimizer(config)
  options = xla_options.train_step(devices[0].platform, bool(t.get("cpu_dot_fusion", True)),
                                   t.get("precision", "f32"), len(devices))
  mesh = None
  if len(devices) > 1:
    mesh = parallel.make_mesh(devices)
    steps = make_parallel_steps(model, task, stats, adam, plateau, mesh, compute_model,
                                options, xla_options.eval_step(devices[0].platform,
                                                               len(devices)))
  else:
    steps = make_steps(model, task, stats, adam, plateau, compute_model, options)
  train_step, eval_step, plateau_step = steps
  return Setup(config, task, model_config, splits, stats, buckets, model, adam, plateau,
               optimizer, train_step, eval_step, plateau_step, inputs.lm, mesh,
               _jsonable_tree(dataset.info), packing, balanced)


def packing_of(config: ml_collections.ConfigDict, train_graphs: Sequence[jraph.GraphsTuple],
               device_graphs: int):
  """The batching.Packing of a packed run (budgets of `device_graphs` train graphs on
  average, or train.packing's), None for fixed-count batches (train.batching="fixed", and
  saved configs from before packing existed)."""
  t = config.train
  if t.get("batching", "fixed") != "packed":
    return None
  p = t.packing
  packing = batching.packing_for(train_graphs, device_graphs, nodes=int(p.nodes),
                                 edges=int(p.edges), max_graphs=int(p.max_graphs))
  return dataclasses.replace(packing, open_batches=int(p.open_batches))


def is_balanced(config: ml_collections.ConfigDict) -> bool:
  """Whether a run's fixed-count batches are dealt to about equal sizes
  (train.batching="balanced", `batching.plan_balanced`)."""
  return config.train.get("batching", "fixed") == "balanced"


def _jsonable_tree(value):
  """A JSON-ready copy of a nested summary (numpy scalars and arrays to Python values)."""
  if isinstance(value, dict):
    return {str(k): _jsonable_tree(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable_tree(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (str, int, float, bool)) or value is None:
    return value
  return str(value)


def init_state(setup: Setup) -> dict:
  """Fresh {"params", "opt_state", "key"} from train.seed."""
  return place_state(setup, _fresh_state(setup))


def abstract_state(setup: Setup) -> dict:
  """`init_state`'s tree with jax.ShapeDtypeStruct leaves, nothing computed: the template of
  a checkpoint that is restored, not trained (`evaluate_run`); replicated over the mesh of a
  data-parallel run, as `init_state` places it."""
  shapes = jax.eval_shape(lambda: _fresh_state(setup))
  if setup.mesh is None:
    return shapes
  sharding = parallel.replicated(setup.mesh)
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def restore_params(config: ml_collections.ConfigDict, init_params: Callable[[], Any],
                   folder: str | os.PathLike) -> tuple[Any, int]:
  """A run's parameters from one of its checkpoint folders (RUN/checkpoints/best or last),
  restored into a template of shapes only: `init_params()` (the model's init on an example
  batch) is traced by `jax.eval_shape`, never run. -> (params, step). CheckpointError when
  the folder holds no checkpoint (nothing is created)."""
  folder = pathlib.Path(folder)
  checkpointer = Checkpointer(folder) if folder.is_dir() else None
  try:
    if checkpointer is None or checkpointer.latest_step() is None:
      raise CheckpointError(f"{folder}: no checkpoint (has the run finished an epoch?)")
    params = jax.eval_shape(init_params)
    template = {"params": params,
                "opt_state": jax.eval_shape(make_optimizer(config)[2].init, params),
                "key": jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))}
    state, _, step = checkpointer.restore(template)
  finally:
    if checkpointer is not None:
      checkpointer.close()
  return state["params"], step


def _fresh_state(setup: Setup) -> dict:
  seed = int(setup.config.train.seed)
  init_key, train_key = jax.random.split(jax.random.key(seed))
  example = next(batching.batches(setup.splits.train[:1], setup.buckets, setup.device_graphs,
                                  packing=setup.packing))
  # Jitted: the parameters op-by-op initialisation gives, bit for bit, in a quarter of the
  # time (a fresh GVP-GNN run: 3.8 instead of 13.8 s; speed_log.md, session 24).
  params = jax.jit(lambda key, batch: setup.model.init(key, batch, is_training=True))(
      init_key, example)
  return {"params": params, "opt_state": setup.optimizer.init(params),
          "key": jax.random.key_data(train_key)}


def place_state(setup: Setup, state):
  """A state tree on the run's devices: replicated over the mesh of a data-parallel run, as
  it is (uncommitted) on one device."""
  if setup.mesh is None:
    return state
  return parallel.replicate(parallel.to_host(state), setup.mesh)


def device_batches(setup: Setup, graphs: Sequence[jraph.GraphsTuple],
                   rng: np.random.Generator | None, batch_graphs: int | None = None):
  """(host batch, device batch, extra) of a pass over `graphs` with prefetching.

  One device: extra = the [B] dataset indices of the batch. Data-parallel: the host batch is
  the stacked global batch [D, ...] and extra = (per-slot indices, per-slot padded batches with
  None for all-padding slots)."""
  batch_graphs = batch_graphs or int(setup.config.train.batch_graphs)
  size = int(setup.config.train.get("prefetch", 2))
  if setup.mesh is None:
    plan = batching.batches(graphs, setup.buckets, batch_graphs, rng=rng, return_indices=True,
                            packing=setup.packing, balanced=setup.balanced)
    return prefetch(plan, size)
  plan = ((stacked, (parts, slots)) for stacked, parts, slots in parallel.global_batches(
      graphs, setup.buckets, batch_graphs, setup.devices, rng, packing=setup.packing,
      balanced=setup.balanced))
  return prefetch(plan, size, put=lambda b: parallel.shard_stacked(b, setup.mesh))


def expected_batches(setup: Setup, graphs: Sequence[jraph.GraphsTuple]) -> int:
  """About how many (global) batches a pass over `graphs` takes (for progress bars)."""
  if setup.packing is None:
    return math.ceil(len(graphs) / int(setup.config.train.batch_graphs))
  nodes, _ = batching.graph_sizes(graphs)
  return math.ceil(int(nodes.sum()) / (setup.packing.nodes * setup.devices))


def evaluate(setup: Setup, params, graphs: Sequence[jraph.GraphsTuple],
             progress: bool = False, desc: str = "eval") -> dict[str, Any]:
  """Loss (mean over the labelled items) and the task's metrics on `graphs`.
  -> {"loss": float, "metrics": {...}, "count": int, "predictions": (y_true, y_pred, group)}"""
  from tqdm.auto import tqdm
  parts, loss_sum, count = [], 0.0, 0
  total = expected_batches(setup, graphs)
  bar = tqdm(device_batches(setup, graphs, None), total=total, desc=desc, leave=False,
             disable=not progress, unit="batch")
  for host_batch, device_batch, extra in bar:
    outputs, loss = setup.eval_step(params, device_batch)
    if setup.mesh is None:
      pieces = [(jax.device_get(outputs), host_batch, loss)]
    else:
      # Every slot's outputs (replicated on every process); all-padding slots are skipped, so
      # nothing is counted twice or from padding.
      outputs, losses = parallel.to_host((outputs, loss))
      pieces = [(jax.tree_util.tree_map(lambda x: x[d], outputs), b, losses[d])
                for d, b in enumerate(extra[1]) if b is not None]
    for out, batch, batch_loss in pieces:
      part = setup.task.predictions(out, batch, setup.stats)
      n = int(len(part[0]))
      loss_sum += float(batch_loss) * n
      count += n
      parts.append(part)
  y_true, y_pred, group = tasks_lib.base.concatenate_predictions(parts)
  metrics = {k: float(v) for k, v in
             setup.task.metrics(y_true, y_pred, group, setup.stats).items()}
  return {"loss": loss_sum / max(count, 1), "metrics": metrics, "count": count,
          "predictions": (y_true, y_pred, group)}


# --- run folders -----------------------------------------------------------------------------

def default_run_dir(config: ml_collections.ConfigDict, root: str | None = None) -> pathlib.Path:
  """runs/NAME-YYYYmmdd-HHMMSS (root: $JAXGEO_RUNS or runs/)."""
  root = root or os.environ.get("JAXGEO_RUNS") or "runs"
  return pathlib.Path(root) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_log(run_dir: str | os.PathLike) -> list[dict]:
  """The epoch records of log.jsonl. A torn last line (a kill while it was written) is
  dropped; an unreadable line before it raises DataError naming the file and line."""
  path = pathlib.Path(run_dir) / LOG_FILE
  if not path.exists():
    return []
  if path.is_dir():
    raise DataError(f"{path}: is a folder, not a file")
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
  records = []
  for i, (n, line) in enumerate(lines):
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      record = None
    if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
      if i == len(lines) - 1:
        logger.warning("%s: line %d is torn (an interrupted write); dropped", path, n)
        break
      raise DataError(f"{path}: line {n} is not an epoch record ({line.strip()[:60]!r}); "
                      "the log is damaged: move it away to resume without it")
    records.append(record)
  return records


def _write_log(run_dir: pathlib.Path, records: list[dict]) -> None:
  io.atomic_write_text(run_dir / LOG_FILE,
                       "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def resolve_run_config(config: ml_collections.ConfigDict | None,
                       run_dir: pathlib.Path) -> ml_collections.ConfigDict:
  """The config of a run: a new folder takes `config`; an existing one keeps its saved
  config (a given config may differ only in config.RESUMABLE_CHANGES)."""
  saved_path = run_dir / CONFIG_FILE
  if not saved_path.exists():
    if config is None:
      raise ConfigError(f"--run-dir {run_dir}: has no {CONFIG_FILE}; pass --config")
    return config
  saved = config_lib.from_json(saved_path)
  if config is None:
    return saved
  changed = [k for k in config_lib.diff(saved, config) if k not in _resumable()]
  if changed:
    raise ConfigError(f"--run-dir {run_dir}: holds a run of a different config (differs in "
                      f"{', '.join(changed)}); choose another --run-dir to start a new run")
  merged = config_lib.from_json(saved_path)
  for key in _resumable():
    *path, name = key.split(".")
    given, kept = config, merged
    for part in path:
      given, kept = given.get(part), kept.get(part)
      if given is None or kept is None:
        break
    else:
      if name in given:
        with kept.unlocked():
          kept[name] = given[name]
  return merged


# A run folder trained on one device count resumes on another (see `parallel`).
DEVICE_KEYS = ("train.devices",)


def _resumable() -> tuple[str, ...]:
  return tuple(config_lib.RESUMABLE_CHANGES) + tuple(
      k for k in DEVICE_KEYS if k not in config_lib.RESUMABLE_CHANGES)


def _uncommitted(tree):
  """Restored checkpoint arrays are committed to a device, fresh ones are not, and jit
  caches the two separately: a host round trip keeps one compilation per bucket."""
  return jax.tree_util.tree_map(lambda x: jax.device_put(np.asarray(x)), tree)


def _restored(setup: Setup, tree):
  """Restored checkpoint arrays placed as the run's fresh ones are (see `place_state`)."""
  return _uncommitted(tree) if setup.mesh is None else place_state(setup, tree)


def _improved(value: float, best: float | None, higher_is_better: bool) -> bool:
  if not math.isfinite(value):
    return False
  if best is None:
    return True
  return value > best if higher_is_better else value < best


def early_stopping(meta: dict, epoch: int, value: float, higher_is_better: bool,
                   patience: int) -> tuple[dict, bool]:
  """The early-stopping bookkeeping after `epoch` (1-based) with monitored value `value`.
  -> (new meta, improved). An epoch improves when its value is strictly better than the
  best so far (NaN never does); `stopped` once `patience` (> 0) epochs in a row did not.
  (The paper's code never resets its counter; here it resets on improvement.)"""
  meta = dict(meta)
  improved = _improved(value, meta["best_value"], higher_is_better)
  if improved:
    meta.update(best_value=float(value), best_epoch=epoch, bad_epochs=0)
  else:
    meta["bad_epochs"] = int(meta["bad_epochs"]) + 1
  meta["epoch"] = epoch
  meta["stopped"] = bool(patience and meta["bad_epochs"] >= patience)
  return meta, improved


def _jsonable(x: float) -> float | None:
  return float(x) if x is not None and math.isfinite(float(x)) else None


def train(config: ml_collections.ConfigDict | None, run_dir: str | os.PathLike, *,
          store=None, progress: bool = True, stop_after_epochs: int | None = None,
          echo: Callable[[str], None] | None = None) -> dict | None:
  """Trains (or resumes) the run in `run_dir`. -> the final result (also written to
  test_metrics.json), or None when stopped by `stop_after_epochs` (simulated interruption:
  the run ends after that many epochs in total, as if killed after its checkpoint)."""
  from tqdm.auto import tqdm
  if parallel.initialize():
    print(parallel.process_info().describe(), flush=True)   # every process says what it sees
  run_dir = pathlib.Path(run_dir)
  say = echo or (lambda msg: tqdm.write(msg) if progress else logger.info(msg))
  if not parallel.is_primary():
    say = lambda msg: None
  if run_dir.exists() and not run_dir.is_dir():
    raise ConfigError(f"--run-dir {run_dir}: is a file, not a folder")
  created = not run_dir.exists()
  try:
    run_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"--run-dir {run_dir}: cannot be created ({e.strerror or e})") from None
  try:
    # Process 0 holds the run folder's lock for all processes of a multi-host run.
    with (RunLock(run_dir) if parallel.is_primary() else contextlib.nullcontext()):
      return _train(config, run_dir, store=store, progress=progress,
                    stop_after_epochs=stop_after_epochs, say=say)
  finally:
    # A run that failed before writing anything leaves no folder behind.
    if created and parallel.is_primary() and run_dir.is_dir() and [p.name for p in run_dir.iterdir()] in ([], [LOCK_FILE]):
      with contextlib.suppress(OSError):
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        run_dir.rmdir()


def _finished(config: ml_collections.ConfigDict, run_dir: pathlib.Path,
              say: Callable[[str], None]) -> dict | None:
  """The result of a finished run that is not to be extended (None: train on)."""
  result_path = run_dir / RESULT_FILE
  if not result_path.exists():
    return None
  try:
    with open(result_path) as f:
      result = json.load(f)
    done, stopped = int(result["epochs_run"]), bool(result["stopped_early"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise DataError(f"{result_path}: cannot be read ({type(e).__name__}: {e}); move it away to "
                    "finish the run again") from None
  epochs = int(config.train.epochs)
  if epochs > done and not stopped:
    say(f"{run_dir}: finished after {done} epochs; train.epochs is now {epochs}: extending the "
        f"run from its last checkpoint")
    return None
  if stopped:
    say(f"{run_dir}: finished earlier (stopped early after {done} epochs, train.patience "
        f"{config.train.patience}); nothing to do. A run that stopped early is not extended: "
        "start a new --run-dir to train with other settings")
  else:
    say(f"{run_dir}: finished earlier after {done} epochs; nothing to do (to train longer, "
        f"run it again with --set train.epochs=N, N > {done})")
  say(summary(result))
  return result


def _read_lm_record(run_dir: pathlib.Path) -> dict | None:
  path = run_dir / LM_FILE
  if not path.exists():
    return None
  try:
    record = json.loads(path.read_text())
    if not isinstance(record, dict):
      raise ValueError("not a JSON object")
  except (OSError, ValueError) as e:
    raise DataError(f"{path}: cannot be read ({e})") from None
  return record


def lm_setup(config: ml_collections.ConfigDict, run_dir: pathlib.Path, store=None,
             say: Callable[[str], None] = logger.warning
             ) -> tuple[ml_collections.ConfigDict, dict | None]:
  """Which language-model vectors a run reads. -> (the config to build the run with, whose
  lm.model is the content fingerprint when there is one; the run's lm record for lm.json, or
  None when the network is not fused).

  A run folder that recorded a fingerprint (lm.json) reads exactly that model's entries and
  raises DataError when the store does not hold them (a store whose vectors came from another
  model); a store written before fingerprints is read by name, with a note.
  """
  if not config_lib.uses_lm(config):
    return config, None
  features = config_lib.lm_features(config, store)
  db, model, layer = features.store, str(config.lm.model), int(config.lm.layer)
  recorded = _read_lm_record(run_dir)
  known = db.fingerprints()
  if recorded is not None and recorded.get("fingerprint"):
    fp = str(recorded["fingerprint"])
    if fp not in known:
      try:
        now = db.fingerprint(model)
        holds = (f"holds {model!r} as fingerprint {now[:12]}" if now else
                 f"holds {model!r} only without a fingerprint")
      except DataError:
        holds = f"holds several models named {model!r}, none of them it"
      raise DataError(
          f"run folder {run_dir}: trained with {model} fingerprint {fp[:12]} ({LM_FILE}), but "
          f"embedding store {db.path} {holds}: its vectors come from another model. Point "
          f"lm.store at the store the run trained with, or re-embed that model into it")
  else:
    fp = db.fingerprint(model)   # DataError when the name is ambiguous
    if recorded is None and (run_dir / RESULT_FILE).exists():
      say(f"note: run folder {run_dir} has no {LM_FILE} (trained before jaxgeo recorded the "
          "language model's fingerprint): cannot check that the store's vectors are the ones "
          "it trained with")
  if fp is None:
    say(f"note: embedding store {db.path} holds {model} without a fingerprint (written before "
        "jaxgeo keyed entries by model content): the run cannot check later that it reads the "
        "same vectors; re-embed into a new store to record one")
    return config, {"model": model, "layer": layer, "store": str(db.path), "fingerprint": None}
  run_config = ml_collections.ConfigDict(config_lib.to_dict(config))
  run_config.lm.model = fp
  return run_config, {"model": model, "layer": layer, "store": str(db.path), "fingerprint": fp,
                      "source": known.get(fp, {}).get("source")}


def _check_device_count(config: ml_collections.ConfigDict, run_dir: pathlib.Path) -> None:
  """ConfigError when the run's global batch does not split over the devices visible now,
  naming the device count the run folder was trained with."""
  t = config.train
  devices = run_devices(config)
  if int(t.batch_graphs) % devices == 0:
    return
  before = None
  last = run_dir / "checkpoints" / "last"
  if last.is_dir() and any(p.name.isdigit() for p in last.iterdir()):
    checkpointer = Checkpointer(last)
    try:
      before = checkpointer.restore_meta().get("devices", 1)
    finally:
      checkpointer.close()
  where = (f"run folder {run_dir} was trained on {before} device(s) with" if before else
           f"run folder {run_dir}:")
  raise ConfigError(
      f"{where} train.batch_graphs={t.batch_graphs} graphs a step, which does not split evenly "
      f"over the {devices} device(s) of this run; set train.devices to a divisor of "
      f"{t.batch_graphs} (e.g. --set train.devices={before or 1}) to resume it")


def _train(config: ml_collections.ConfigDict | None, run_dir: pathlib.Path, *, store,
           progress: bool, stop_after_epochs: int | None, say: Callable[[str], None]
           ) -> dict | None:
  from tqdm.auto import tqdm
  config = resolve_run_config(config, run_dir)
  finished = _finished(config, run_dir, say)
  if finished is not None:
    return finished
  result_path = run_dir / RESULT_FILE

  started = time.time()
  primary = parallel.is_primary()   # only process 0 writes the run folder's files
  _check_device_count(config, run_dir)
  run_config, lm_record = lm_setup(config, run_dir, store, say)
  setup = prepare(run_config, store)
  if primary:
    config_lib.write_json(config, run_dir / CONFIG_FILE)
    if lm_record is not None and not (run_dir / LM_FILE).exists():
      io.atomic_write_json(run_dir / LM_FILE, lm_record)
    io.atomic_write_json(run_dir / MODEL_FILE, setup.model_config.to_dict())
    io.atomic_write_json(run_dir / DATASET_FILE, setup.info or {})
  t = config.train
  epochs, patience = int(t.epochs), int(t.patience)
  batch_graphs, seed = int(t.batch_graphs), int(t.seed)
  monitor_metric = t.monitor == "metric"
  higher = setup.task.higher_is_better if monitor_metric else False
  last = Checkpointer(run_dir / "checkpoints" / "last")
  best = Checkpointer(run_dir / "checkpoints" / "best")

  state = init_state(setup)
  meta = {"epoch": 0, "best_value": None, "best_epoch": None, "bad_epochs": 0,
          "stopped": False, "seed": seed, "data_order": "np.random.default_rng([seed, epoch])"}
  if last.latest_step() is not None:
    state, meta, _ = last.restore(state)
    state = _restored(setup, state)
    say(f"{run_dir}: resuming after epoch {meta['epoch']}")
    before = int(meta.get("devices", 1))
    if before != setup.devices:
      say(f"note: {run_dir} was trained on {before} device(s) and resumes on {setup.devices} "
          f"(the same global batch of {batch_graphs} graphs, {setup.device_graphs} per device): "
          "its numbers agree with an uninterrupted run to float32 rounding, not bit for bit")
  meta["devices"] = setup.devices
  records = [r for r in read_log(run_dir) if r["epoch"] <= meta["epoch"]]
  if primary:
    _write_log(run_dir, records)

  counter = CompileCounter()
  train_nodes, train_edges = batching.graph_sizes(setup.splits.train)
  say(f"{config.name}: task {setup.task.name}, {setup.model_config.network} / fusion "
      f"{setup.model_config.fusion.mode}, {nets.param_count(state['params']):,} parameters, "
      f"splits {setup.splits.sizes()}, buckets "
      f"{[(b.n_node, b.n_edge, b.n_graph) for b in setup.buckets]}, {setup.devices} "
      f"{jax.devices()[0].platform} device(s)")
  key = jnp.asarray(state["key"])
  params, opt_state = state["params"], state["opt_state"]
  epoch_bar = tqdm(range(meta["epoch"], epochs), initial=meta["epoch"], total=epochs,
                   desc=str(config.name), disable=not progress, unit="epoch")
  with counter:
    for epoch in epoch_bar:
      if meta["stopped"]:
        break
      tick = time.time()
      rng = np.random.default_rng([seed, epoch])
      losses, real_nodes, padded_nodes, real_edges, padded_edges = [], 0, 0, 0, 0
      n_dev = setup.devices
      slot_real = np.zeros((n_dev, 2), np.int64)     # per device: real nodes, edges
      slot_padded = np.zeros((n_dev, 2), np.int64)   # per device: padded nodes, edges
      slot_graphs = np.zeros(n_dev, np.int64)
      bar = tqdm(device_batches(setup, setup.splits.train, rng), leave=False, unit="batch",
                 desc=f"epoch {epoch + 1}", disable=not progress,
                 total=expected_batches(setup, setup.splits.train))
      for step, (host_batch, device_batch, index) in enumerate(bar):
        params, opt_state, loss = setup.train_step(
            params, opt_state, device_batch, key, jnp.int32(epoch), jnp.int32(step))
        losses.append(loss)
        slot_index = [index] if setup.mesh is None else index[0]
        for d, idx in enumerate(slot_index):
          slot_real[d] += (int(train_nodes[idx].sum()), int(train_edges[idx].sum()))
          slot_graphs[d] += len(idx)
        counts = np.asarray(host_batch.n_node).reshape(n_dev, -1).sum(axis=1), \
            np.asarray(host_batch.n_edge).reshape(n_dev, -1).sum(axis=1)
        slot_padded += np.stack(counts, axis=1)
        if progress and step % 10 == 0:
          bar.set_postfix(loss=f"{float(loss):.4f}")
      train_loss = float(np.mean(jax.device_get(losses))) if losses else float("nan")
      train_seconds = time.time() - tick
      real_nodes, real_edges = (int(v) for v in slot_real.sum(axis=0))
      padded_nodes, padded_edges = (int(v) for v in slot_padded.sum(axis=0))
      val = evaluate(setup, params, setup.splits.val, progress, desc="val")
      value = val["metrics"][setup.task.primary_metric] if monitor_metric else val["loss"]
      # The plateau transform minimises: feed it the value with the sign that makes lower
      # better.
      adam_state, plateau_state = opt_state
      plateau_state = setup.plateau_step(
          plateau_state, np.float32(-value if higher else value))
      opt_state = (adam_state, plateau_state)
      meta, improved = early_stopping(meta, epoch + 1, value, higher, patience)
      lr = float(t.lr) * float(plateau_state.scale)
      record = {
          "epoch": epoch + 1, "train_loss": train_loss, "val_loss": val["loss"],
          "val": val["metrics"], "monitor": _jsonable(value), "lr": lr,
          "seconds": time.time() - tick,
          "compilations": int(setup.train_step._cache_size() + setup.eval_step._cache_size()),
          "backend_compiles": counter.count,
          "padding_efficiency": {"nodes": real_nodes / max(padded_nodes, 1),
                                 "edges": real_edges / max(padded_edges, 1)},
          "devices": n_dev, "processes": int(jax.process_count()),
          "train_seconds": train_seconds,
          "graphs_per_second": float(slot_graphs.sum()) / max(train_seconds, 1e-9),
          "per_device": {
              "graphs_per_second": [float(g) / max(train_seconds, 1e-9) for g in slot_graphs],
              "padding_efficiency_nodes": [float(r / max(p, 1)) for r, p in
                                           zip(slot_real[:, 0], slot_padded[:, 0])],
              "padding_efficiency_edges": [float(r / max(p, 1)) for r, p in
                                           zip(slot_real[:, 1], slot_padded[:, 1])]},
          "best_epoch": meta["best_epoch"], "bad_epochs": meta["bad_epochs"],
      }
      records.append(record)
      if primary:
        _write_log(run_dir, records)
      meta["devices"] = setup.devices
      saved = {"params": params, "opt_state": opt_state, "key": key}
      if improved:
        best.save(epoch + 1, saved, dict(meta))
      last.save(epoch + 1, saved, dict(meta))
      epoch_bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val['loss']:.4f}",
                            **{setup.task.primary_metric:
                               f"{val['metrics'][setup.task.primary_metric]:.4f}"})
      if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs and (
          epoch + 1 < epochs and not meta["stopped"]):
        say(f"{run_dir}: stopping after epoch {epoch + 1} (stop_after_epochs)")
        return None
    epoch_bar.close()

    if best.latest_step() is None:
      raise CheckpointError(f"{run_dir}: no best checkpoint (every validation value was "
                            "NaN?)")
    best_state, _, best_step = best.restore(
        {"params": params, "opt_state": opt_state, "key": key})
    best_state = _restored(setup, best_state)
    val = evaluate(setup, best_state["params"], setup.splits.val, progress, desc="val")
    test = evaluate(setup, best_state["params"], setup.splits.test, progress, desc="test")
  result = {
      "name": str(config.name), "task": setup.task.name,
      "network": setup.model_config.network, "fusion": setup.model_config.fusion.mode,
      "primary_metric": setup.task.primary_metric,
      "higher_is_better": setup.task.higher_is_better,
      "test": test["metrics"], "test_loss": test["loss"], "test_count": test["count"],
      "val": val["metrics"], "val_loss": val["loss"],
      "best_epoch": best_step, "epochs_run": meta["epoch"], "stopped_early": meta["stopped"],
      "parameters": nets.param_count(best_state["params"]),
      "compilations": int(setup.train_step._cache_size() + setup.eval_step._cache_size()),
      "buckets": [dataclasses.astuple(b) for b in setup.buckets],
      "seconds_this_session": time.time() - started,
      "lm_fingerprint": None if lm_record is None else lm_record["fingerprint"],
      "train_seconds_total": float(sum(r["seconds"] for r in records)),
  }
  if primary:
    io.atomic_write_json(result_path, result)
  last.close()
  best.close()
  say(summary(result, run_dir))
  return result


def summary(result: dict, run_dir: str | os.PathLike | None = None) -> str:
  """A few lines for the end of a run."""
  primary = result["primary_metric"]
  arrow = "higher" if result.get("higher_is_better") else "lower"
  lines = [
      f"== {result['name']} ({result['task']}, {result['network']}, fusion "
      f"{result['fusion']}) ==",
      f"epochs: {result['epochs_run']}{' (stopped early)' if result['stopped_early'] else ''}"
      f", best epoch {result['best_epoch']}, {result['parameters']:,} parameters, "
      f"{result['compilations']} compilations",
      f"val  {primary} = {result['val'][primary]:.4f} ({arrow} is better), loss "
      f"{result['val_loss']:.4f}",
      f"test {primary} = {result['test'][primary]:.4f}; " + ", ".join(
          f"{k} {v:.4f}" for k, v in sorted(result["test"].items()) if k != primary),
  ]
  if run_dir is not None:
    lines.append(f"run folder: {run_dir}")
  return "\n".join(lines)


def evaluate_run(run_dir: str | os.PathLike, which: str = "best",
                 splits: Sequence[str] = ("val", "test"), progress: bool = True,
                 store=None, echo: Callable[[str], None] | None = None) -> dict:
  """Re-evaluates a run folder's best (or last) checkpoint on `splits`.
  -> {split: {"loss", "metrics", "count"}, "epoch": checkpoint step}; also written to
  eval_{which}.json in the run folder."""
  run_dir = pathlib.Path(run_dir)
  if not (run_dir / CONFIG_FILE).exists():
    raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
  if which not in ("best", "last"):
    raise ConfigError(f"--checkpoint {which!r}: expected 'best' or 'last'")
  config = config_lib.from_json(run_dir / CONFIG_FILE)
  run_config, _ = lm_setup(config, run_dir, store, echo or logger.warning)
  setup = prepare(run_config, store)
  checkpointer = Checkpointer(run_dir / "checkpoints" / which)
  if checkpointer.latest_step() is None:
    raise CheckpointError(f"{run_dir}/checkpoints/{which}: no checkpoint yet")
  state, _, step = checkpointer.restore(abstract_state(setup))
  state = _restored(setup, state)
  out: dict[str, Any] = {"checkpoint": which, "epoch": step}
  for split in splits:
    graphs = getattr(setup.splits, split, None)
    if graphs is None:
      raise ConfigError(f"--split {split!r}: expected train, val or test")
    res = evaluate(setup, state["params"], graphs, progress, desc=split)
    out[split] = {"loss": res["loss"], "metrics": res["metrics"], "count": res["count"]}
  io.atomic_write_json(run_dir / f"eval_{which}.json", out)
  checkpointer.close()
  return out
