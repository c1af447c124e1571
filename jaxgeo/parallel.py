"""Every accelerator of a host and of a pod: the device mesh, shardings, multi-host start.

    parallel.initialize()                        # before any JAX computation (no-op on one host)
    mesh = parallel.make_mesh(parallel.select_devices(config.train.devices))
    for stacked, parts, slots in parallel.global_batches(graphs, buckets, 32, mesh_slots(mesh)):
      batch = parallel.shard_stacked(stacked, mesh)           # [D, ...] over the `data` axis

The mesh has two axes: `data` (one slot of every global batch per device) and `model` (size 1
for the graph networks; ESM-2 parameters are sharded over it, see `jaxgeo.lm.esm2`). Everything
runs through JAX's own runtime: `jax.sharding.Mesh`, `jax.jit` with `NamedSharding`s,
`jax.shard_map` for the per-device loss, `jax.distributed.initialize` for several processes;
XLA inserts the collectives (the gradient all-reduce is the transpose of the replicated
parameters' broadcast into `shard_map`).

Data parallelism (`jaxgeo.train`): a global batch of `train.batch_graphs` graphs is cut into
one slot per device of `batch_graphs / devices` graphs (graphs dealt largest first to the
least loaded slot), every slot padded to the same bucket; a slot with no graph left is an
all-padding batch (`padding_like`) whose masks are all False, so it adds nothing to a loss, a
gradient or a metric. Every process builds the same global batch from the same seed and puts
only its own devices' slots (`jax.make_array_from_callback`).

Multi-host: `initialize()` calls `jax.distributed.initialize` when JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID are set (or, with none of them, on a multi-host TPU slice
or with JAXGEO_DISTRIBUTED=1, where JAX discovers the cluster itself). A process other than 0
first checks for `JAXGEO_DISTRIBUTED_TIMEOUT` seconds (default 300) that the coordinator's
port answers, and raises one ConfigError line when it does not: JAX's own client aborts the
process (a C++ check failure) on that timeout instead of raising.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence

import jraph
import numpy as np

from jaxgeo import batching
from jaxgeo.errors import ConfigError

logger = logging.getLogger(__name__)

DATA_AXIS = "data"
MODEL_AXIS = "model"
ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
TIMEOUT_ENV = "JAXGEO_DISTRIBUTED_TIMEOUT"
FORCE_ENV = "JAXGEO_DISTRIBUTED"
_DEFAULT_TIMEOUT_S = 300


# --- processes ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProcessInfo:
  """Where this process stands in a (possibly multi-host) run."""
  index: int
  count: int
  local_devices: tuple[str, ...]
  global_devices: int
  distributed: bool

  def describe(self) -> str:
    return (f"process {self.index} of {self.count}: {len(self.local_devices)} local device(s) "
            f"[{', '.join(self.local_devices)}] of {self.global_devices} in all")


def _env_settings() -> tuple[str, int, int] | None:
  """(coordinator, processes, process id) from the environment; None when none is set."""
  values = {k: os.environ.get(k, "").strip() for k in ENV_VARS}
  given = [k for k, v in values.items() if v]
  if not given:
    return None
  missing = [k for k in ENV_VARS if k not in given]
  if missing:
    raise ConfigError(f"multi-host launch: {', '.join(given)} set but {', '.join(missing)} "
                      "not: set all three (or none)")
  try:
    count, index = int(values["JAX_NUM_PROCESSES"]), int(values["JAX_PROCESS_ID"])
  except ValueError:
    raise ConfigError(f"multi-host launch: JAX_NUM_PROCESSES={values['JAX_NUM_PROCESSES']!r} "
                      f"and JAX_PROCESS_ID={values['JAX_PROCESS_ID']!r} must be integers"
                      ) from None
  if count < 1 or not 0 <= index < count:
    raise ConfigError(f"multi-host launch: JAX_PROCESS_ID={index} must be in [0, "
                      f"JAX_NUM_PROCESSES={count})")
  address = values["JAX_COORDINATOR_ADDRESS"]
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ConfigError(f"multi-host launch: JAX_COORDINATOR_ADDRESS={address!r}: expected "
                      "HOST:PORT, e.g. 10.0.0.1:1234")
  return address, count, index


def _wait_for_coordinator(address: str, timeout_s: float, index: int) -> None:
  """Raises ConfigError when nothing accepts a TCP connection at `address` within the
  timeout (the coordinator is process 0's gRPC service)."""
  host, _, port = address.rpartition(":")
  host = host.strip("[]")
  deadline = time.monotonic() + timeout_s
  last = None
  while True:
    try:
      with socket.create_connection((host, int(port)), timeout=min(5.0, max(timeout_s, 0.1))):
        return
    except OSError as e:
      last = e
    if time.monotonic() >= deadline:
      break
    time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))
  raise ConfigError(f"multi-host launch: process {index} cannot reach the coordinator "
                    f"JAX_COORDINATOR_ADDRESS={address} within {timeout_s:g} s "
                    f"({last.strerror or last if isinstance(last, OSError) else last}); start "
                    f"process 0 first, check the address and firewall, or raise {TIMEOUT_ENV}")


def _tpu_pod() -> bool:
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return "," in hosts or os.environ.get(FORCE_ENV, "") in ("1", "true", "auto")


def initialize(timeout_s: float | None = None) -> bool:
  """Joins a multi-host run when one is configured (see the module docstring); a no-op on a
  single host (it then touches no device). Call it before anything touches a JAX device.
  -> True when this process is part of a multi-process run."""
  import jax
  from jax._src import distributed as jax_distributed
  settings = _env_settings()
  if timeout_s is None:
    try:
      timeout_s = float(os.environ.get(TIMEOUT_ENV) or _DEFAULT_TIMEOUT_S)
    except ValueError:
      raise ConfigError(f"{TIMEOUT_ENV}={os.environ.get(TIMEOUT_ENV)!r}: expected seconds"
                        ) from None
  already = jax_distributed.global_state.client is not None
  if not already and settings is not None:
    address, count, index = settings
    if count > 1:
      if index != 0:
        _wait_for_coordinator(address, timeout_s, index)
      jax.distributed.initialize(address, count, index,
                                 initialization_timeout=max(int(timeout_s), 1))
  elif not already and _tpu_pod():
    jax.distributed.initialize(initialization_timeout=max(int(timeout_s), 1))
  return jax_distributed.global_state.client is not None


def process_info() -> ProcessInfo:
  import jax
  from jax._src import distributed as jax_distributed
  return ProcessInfo(int(jax.process_index()), int(jax.process_count()),
                     tuple(str(d) for d in jax.local_devices()), len(jax.devices()),
                     jax_distributed.global_state.client is not None)


def is_primary() -> bool:
  """True on process 0, the one that writes logs, results and run-folder files."""
  import jax
  return jax.process_index() == 0


def process_share(keys: Sequence[str], index: int | None = None, count: int | None = None
                  ) -> list[int]:
  """Positions of the `keys` this process handles: those whose SHA-256 is `index` modulo
  `count` (default: this process of `jax.process_count()`). Deterministic across hosts and
  runs, independent of the order of the input."""
  if index is None or count is None:
    import jax
    index, count = jax.process_index(), jax.process_count()
  return [i for i, k in enumerate(keys)
          if int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") % count == index]


# --- devices and meshes ------------------------------------------------------------------------

def cpu_cores() -> int:
  """CPU cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:   # not Linux
    return os.cpu_count() or 1


# Networks at least this wide stay on one CPU device when the split is automatic: their large
# matmuls are what XLA threads well over the cores (the paper's 1280-wide EGNN trained 0.8x as
# fast on two devices of a 2-core CPU; GVP-GNN, 100 wide, and the 32-wide networks gained).
WIDE_MODEL_WIDTH = 512


def cpu_device_count(requested: int, batch_graphs: int, cores: int | None = None,
                     width: int = 0) -> int:
  """How many JAX devices to split the host CPU into for a run (`train.cpu_devices`):
  `requested` when at least 1, else (0: auto) one when the network is `WIDE_MODEL_WIDTH` or
  wider (`width`: its encoder width), else the largest divisor of `batch_graphs` that is at
  most the CPU cores (`cpu_cores()`), so that every device takes an equal share of each
  global batch."""
  requested = int(requested)
  if requested < 0:
    raise ConfigError(f"train.cpu_devices={requested}: must be >= 0 (0: one per CPU core)")
  if requested:
    return requested
  if int(width) >= WIDE_MODEL_WIDTH:
    return 1
  return even_split(batch_graphs, cpu_cores() if cores is None else cores)


def even_split(batch_graphs: int, devices: int) -> int:
  """The most devices, at most `devices` (and at least 1), over which `batch_graphs` graphs
  split evenly."""
  return max(d for d in range(1, max(min(int(devices), int(batch_graphs)), 1) + 1)
             if int(batch_graphs) % d == 0)


def split_cpu(count: int) -> int:
  """Makes JAX's CPU platform `count` devices (`jax_num_cpu_devices`), for data parallelism
  over the host's cores: each device runs one slot of every global batch. Only possible before
  JAX starts its backends; after that (a notebook or test that already ran JAX), or when
  XLA_FLAGS sets --xla_force_host_platform_device_count, the CPU devices stay as they are
  (logged when their count differs). GPU and TPU devices are not affected.
  -> the number of CPU devices in effect."""
  import jax
  count = int(count)
  if count < 1:
    raise ConfigError(f"split_cpu: {count} CPU devices: must be >= 1")
  forced = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
  if not forced:
    try:
      jax.config.update("jax_num_cpu_devices", count)
      return count
    except RuntimeError:   # JAX has started its backends
      pass
  current = len(jax.devices("cpu"))
  if current != count:
    logger.warning("%d CPU device(s) requested; JAX already runs with %d (%s)", count, current,
                   "XLA_FLAGS sets the count" if forced else "it started before")
  return current


def select_devices(requested: int = 0) -> list:
  """The devices of a run: all of them (`requested` 0), or the first `requested`.
  A multi-process run uses every device of every process."""
  import jax
  devices = jax.devices()
  requested = int(requested or 0)
  if requested < 0:
    raise ConfigError(f"train.devices={requested}: must be >= 0 (0: every visible device)")
  if requested == 0:
    return devices
  if requested > len(devices):
    raise ConfigError(f"train.devices={requested}: only {len(devices)} device(s) visible "
                      f"({devices[0].platform}); use 0 for all of them")
  if jax.process_count() > 1 and requested != len(devices):
    raise ConfigError(f"train.devices={requested}: a run of {jax.process_count()} processes "
                      f"uses all {len(devices)} devices; set train.devices=0")
  return devices[:requested]


def make_mesh(devices: Sequence | None = None, model: int = 1):
  """A `jax.sharding.Mesh` of `devices` (default: all) with axes (`data`, `model`), the
  `model` axis of size `model`."""
  import jax
  from jax.sharding import Mesh
  devices = list(jax.devices() if devices is None else devices)
  if model < 1 or len(devices) % model:
    raise ConfigError(f"model axis {model}: must divide the {len(devices)} device(s)")
  return Mesh(np.array(devices, dtype=object).reshape(len(devices) // model, model),
              (DATA_AXIS, MODEL_AXIS))


def data_size(mesh) -> int:
  """Devices along the `data` axis (slots of a global batch)."""
  return int(mesh.shape[DATA_AXIS])


def per_device_graphs(batch_graphs: int, devices: int) -> int:
  """Graphs per device of a global batch of `batch_graphs`; ConfigError when it does not
  split evenly."""
  if devices < 1:
    raise ConfigError(f"{devices} devices: need at least one")
  if batch_graphs % devices:
    divisors = [d for d in range(1, batch_graphs + 1) if batch_graphs % d == 0 and d <= devices]
    raise ConfigError(
        f"train.batch_graphs={batch_graphs} (the global batch) does not split evenly over "
        f"{devices} devices; set train.batch_graphs to a multiple of {devices}, or "
        f"train.devices to one of {divisors}")
  return batch_graphs // devices


def replicated(mesh):
  from jax.sharding import NamedSharding, PartitionSpec as P
  return NamedSharding(mesh, P())


def data_sharded(mesh):
  from jax.sharding import NamedSharding, PartitionSpec as P
  return NamedSharding(mesh, P(DATA_AXIS))


def _put(tree, sharding):
  """Host arrays (the same on every process) -> global arrays with `sharding`; each process
  materialises only its own devices' pieces."""
  import jax

  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree_util.tree_map(one, tree)


def replicate(tree, mesh):
  """Host (or fully replicated device) arrays -> arrays replicated over `mesh`."""
  return _put(tree, replicated(mesh))


def shard_stacked(tree, mesh):
  """Host arrays with a leading slot axis [D, ...] -> arrays sharded over `data`."""
  return _put(tree, data_sharded(mesh))


def to_host(tree):
  """Replicated (or fully addressable) arrays -> numpy, on every process."""
  import jax
  return jax.tree_util.tree_map(np.asarray, tree)


# --- global batches ----------------------------------------------------------------------------

def padding_like(batch: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """An all-padding batch with the shapes and dtypes of the padded `batch`: every node and edge
  belongs to graph 0, which is padding (its n_node/n_edge are the totals; the other graphs are
  empty), so jraph's padding masks and `batching.num_real_graphs` see no real graph."""
  import jax
  zeros = lambda x: np.zeros_like(np.asarray(x))
  n_node = np.zeros_like(np.asarray(batch.n_node))
  n_edge = np.zeros_like(np.asarray(batch.n_edge))
  n_node[0] = int(np.sum(batch.n_node))
  n_edge[0] = int(np.sum(batch.n_edge))
  return jraph.GraphsTuple(
      nodes=jax.tree_util.tree_map(zeros, batch.nodes),
      edges=jax.tree_util.tree_map(zeros, batch.edges),
      senders=zeros(batch.senders), receivers=zeros(batch.receivers),
      n_node=n_node, n_edge=n_edge,
      globals=jax.tree_util.tree_map(zeros, batch.globals))


def split_graphs(index: np.ndarray, nodes: np.ndarray, slots: int, per_slot: int
                 ) -> list[np.ndarray]:
  """Deals the graphs `index` [B] (B <= slots * per_slot) to `slots` slots of at most
  `per_slot` graphs: largest first, each to the slot with the fewest nodes so far (ties: the
  lower slot). -> `slots` index arrays (some maybe empty), each in the batch's order."""
  return [np.asarray(index[m], dtype=np.int64)
          for m in batching.deal(nodes[index], slots, per_slot)]


def stack(batches: Sequence[jraph.GraphsTuple]) -> jraph.GraphsTuple:
  """Batches of one shape -> one GraphsTuple with a leading slot axis [D, ...] (numpy)."""
  import jax
  return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


def global_batches(graphs: Sequence[jraph.GraphsTuple], buckets: Sequence[batching.Bucket],
                   batch_graphs: int, slots: int, rng: np.random.Generator | None = None,
                   packing: batching.Packing | None = None, balanced: bool = False
                   ) -> Iterator[tuple[jraph.GraphsTuple, list[np.ndarray],
                                       list[jraph.GraphsTuple | None]]]:
  """Global batches of at most `batch_graphs` graphs, each cut into `slots` per-device slots
  padded to one common bucket.

  Fixed count: the global batches are `batching.plan_batches(..., batch_graphs, rng)` (the
  batches a single device would see with this batch size, up to the capacity of `slots`
  largest buckets). Packed (`packing`: a per-device budget) and balanced (`balanced`:
  `batching.plan_balanced` batches of `batch_graphs / slots` graphs, each within the largest
  bucket): `slots` consecutive per-device batches make a global batch (the last one's
  missing slots are all padding; balanced ones taken in size order, the global batches then
  shuffled), so that every slot, not just every global batch, is as full as the buckets
  chosen for one device's batches expect. Every way, a graph appears exactly once per pass.
  Yields:
    (stacked [slots, ...] numpy GraphsTuple, per-slot dataset indices [slots x [b]], per-slot
    padded batches with None for an all-padding slot).
  """
  per_slot = per_device_graphs(batch_graphs, slots) if packing is None else packing.graphs
  if not buckets:
    raise ConfigError("global_batches: no buckets given")
  if per_slot >= min(b.n_graph for b in buckets):
    raise ConfigError(f"{per_slot} graphs per device do not fit buckets with n_graph="
                      f"{min(b.n_graph for b in buckets)} (one graph is padding)")
  nodes, edges = batching.graph_sizes(graphs)
  cap_nodes = max(b.n_node for b in buckets) - 1
  cap_edges = max(b.n_edge for b in buckets)
  if packing is None and not balanced:
    plan = batching.plan_batches(nodes, edges, batch_graphs, rng, cap_nodes * slots,
                                 cap_edges * slots)
    groups = [split_graphs(index, nodes, slots, per_slot) for index in plan]
  else:
    if packing is not None:
      per_device = batching.plan_packed(nodes, edges, packing, rng)
    else:   # in size order, so that the slots of a global batch need the same shape
      per_device = batching.plan_balanced(nodes, edges, per_slot, rng, cap_nodes, cap_edges)
      per_device.sort(key=lambda index: (int(nodes[index].sum()), int(edges[index].sum())))
    empty = np.zeros(0, np.int64)
    groups = [per_device[i:i + slots] + [empty] * max(0, i + slots - len(per_device))
              for i in range(0, len(per_device), slots)]
    if balanced and rng is not None:
      groups = [groups[j] for j in rng.permutation(len(groups))]
  for parts in groups:
    bucket = batching.bucket_for(max(int(nodes[p].sum()) for p in parts),
                                 max(int(edges[p].sum()) for p in parts),
                                 max(len(p) for p in parts), buckets)
    padded = [batching.pad([graphs[i] for i in p], bucket) if len(p) else None for p in parts]
    template = next(b for b in padded if b is not None)
    stacked = stack([b if b is not None else padding_like(template) for b in padded])
    yield stacked, parts, padded


def slot(stacked, d: int):
  """Slot `d` of a stacked tree [D, ...] (host arrays, or a device's block inside its step)."""
  import jax
  return jax.tree_util.tree_map(lambda x: x[d], stacked)
