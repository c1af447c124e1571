"""ESM-2 (Lin et al., Science 2023) as a Haiku module, any size from its config.

Architecture (as fair-esm's `ESM2` and transformers' `EsmModel`):
  token embedding -> token-dropout rescaling -> zero the padding rows
  -> num_layers x pre-LayerNorm block [x + Attn(LN(x)) with rotary q/k; x + FC2(GELU(FC1(LN(x))))]
  -> final LayerNorm.

Hidden-state numbering (fair-esm's `repr_layers`, transformers' `hidden_states[i]`): layer 0 is
the embedding output, layer i the output of block i, and layer `num_layers` the output of the
last block *after* the final LayerNorm.

Precision: parameters stay float32. `compute_dtype=jnp.bfloat16` runs the matmuls in bfloat16
(float32 accumulation); LayerNorm, softmax, rotary embeddings and the residual stream stay
float32. Outputs are float32.

Speed on CPU: q/k/v is one fused [D, 3D] matmul, the blocks run under `hk.layer_stack` (one
compiled block whatever the depth) and only the requested layers are kept.

Attention (`attention_impl` of `make_forward`; rotary embeddings are applied to q and k before
it, whichever runs): "xla" and "cudnn" call `jax.nn.dot_product_attention` (layout
[B, T, H, Dh]); "chunked" is our own loop over groups of (batch, head) pairs whose [T, T]
logits fit in 4 MiB, the key padding an additive bias. The default "auto" picks per backend:
- GPU in bfloat16 (float16): cuDNN's fused flash attention, the padding passed as
  per-sequence key lengths (`key_value_seq_lengths`: padding must come last in each row, as
  the tokenizer and the embedder put it); where cuDNN refuses the inputs, XLA runs;
- TPU, and GPU in float32: the fused API's XLA lowering with a boolean key mask
  (`implementation=None` means XLA in JAX 0.10 whatever the device: cuDNN must be asked for);
- CPU: "chunked". A forward of esm2_t12_35M on 8 x 512 tokens took 1.2-1.3x (float32) and
  1.5-1.6x (bfloat16) longer with the XLA lowering of `dot_product_attention`, which
  materialises the B x H x T x T logits (168 MB a layer here), than with the chunked loop
  (2-core CPU, best of 3 and of 5 runs).
The implementations agree to float32 rounding in float32 and within bfloat16 rounding in
bfloat16 (tests/test_lm_esm2.py).

Converted weights live in a folder as `params.safetensors` (flat names "module/param", layer
weights stacked on a leading [num_layers] axis) and `config.json` (the HuggingFace config);
`load_pretrained(folder)` reads them with neither torch nor transformers. `fingerprint.json`
holds the model's content fingerprint (`fingerprint`: SHA-256 of the parameters and the config
without its name), computed once at conversion: the embedding store keys entries by it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from jaxgeo import io
from jaxgeo.errors import CheckpointError, ConfigError

PARAMS_FILE = "params.safetensors"
# Haiku module path of the stacked block parameters ([num_layers, ...] each).
STACK_MODULE = "esm2/layers/~"
CONFIG_FILE = "config.json"
FINGERPRINT_FILE = "fingerprint.json"
# Training-time masking ratio that token dropout compensates for (15% masked x 80% <mask>).
_MASK_RATIO_TRAIN = 0.15 * 0.8


@dataclasses.dataclass(frozen=True)
class ESM2Config:
  """ESM-2 hyper-parameters (names follow fair-esm; `from_hf` reads a HuggingFace config)."""
  num_layers: int
  hidden_size: int
  num_heads: int
  intermediate_size: int
  vocab_size: int = 33
  layer_norm_eps: float = 1e-5
  token_dropout: bool = True
  mask_token_id: int = 32
  pad_token_id: int = 1
  cls_token_id: int = 0
  eos_token_id: int = 2
  max_position_embeddings: int = 1026
  rope_theta: float = 10000.0
  name: str = "esm2"

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ConfigError(f"ESM-2 config {self.name!r}: hidden_size {self.hidden_size} is not a "
                        f"multiple of num_attention_heads {self.num_heads}")
    if (self.hidden_size // self.num_heads) % 2:
      raise ConfigError(f"ESM-2 config {self.name!r}: head size must be even for rotary embeddings")

  @property
  def head_size(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def max_residues(self) -> int:
    """Longest sequence the model was trained on: 1022 residues (+ BOS, EOS) for ESM-2."""
    return self.max_position_embeddings - 4

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any], name: str | None = None) -> "ESM2Config":
    """From a HuggingFace `config.json` dict (EsmConfig)."""
    where = f"ESM-2 config {name or hf.get('_name_or_path', '')!r}"
    pos = hf.get("position_embedding_type", "rotary")
    if pos != "rotary":
      raise ConfigError(f"{where}: position_embedding_type {pos!r} is not ESM-2's 'rotary' "
                        "(ESM-1/1b checkpoints are not supported)")
    if hf.get("emb_layer_norm_before"):
      raise ConfigError(f"{where}: emb_layer_norm_before=True is ESM-1b, not ESM-2")
    if hf.get("is_folding_model"):
      raise ConfigError(f"{where}: an ESMFold config, not an ESM-2 language model")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
      raise ConfigError(f"{where}: hidden_act {act!r}; ESM-2 uses 'gelu'")
    missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads")
               if k not in hf]
    if missing:
      raise ConfigError(f"{where}: missing {', '.join(missing)}")
    if name is None:
      name = os.path.basename(str(hf.get("_name_or_path", "")).rstrip("/")) or "esm2"
    rope = hf.get("rope_theta")
    if rope is None:
      rope = (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    return cls(
        num_layers=int(hf["num_hidden_layers"]),
        hidden_size=int(hf["hidden_size"]),
        num_heads=int(hf["num_attention_heads"]),
        intermediate_size=int(hf.get("intermediate_size", 4 * int(hf["hidden_size"]))),
        vocab_size=int(hf.get("vocab_size", 33)),
        layer_norm_eps=float(hf.get("layer_norm_eps", 1e-5)),
        token_dropout=bool(hf.get("token_dropout", True)),
        mask_token_id=int(hf.get("mask_token_id", 32) if hf.get("mask_token_id") is not None else 32),
        pad_token_id=int(hf.get("pad_token_id", 1) if hf.get("pad_token_id") is not None else 1),
        max_position_embeddings=int(hf.get("max_position_embeddings", 1026)),
        rope_theta=float(rope),
        name=name,
    )

  def to_hf(self) -> dict[str, Any]:
    """A HuggingFace-style config dict (what `convert-esm` writes as config.json)."""
    return {
        "_name_or_path": self.name,
        "architectures": ["EsmModel"],
        "model_type": "esm",
        "num_hidden_layers": self.num_layers,
        "hidden_size": self.hidden_size,
        "num_attention_heads": self.num_heads,
        "intermediate_size": self.intermediate_size,
        "vocab_size": self.vocab_size,
        "layer_norm_eps": self.layer_norm_eps,
        "token_dropout": self.token_dropout,
        "mask_token_id": self.mask_token_id,
        "pad_token_id": self.pad_token_id,
        "max_position_embeddings": self.max_position_embeddings,
        "position_embedding_type": "rotary",
        "emb_layer_norm_before": False,
        "hidden_act": "gelu",
        "rope_theta": self.rope_theta,
        "jaxgeo_format": 1,
    }


def _hk():
  import haiku as hk
  return hk


def _layer_norm(x, scale, offset, eps):
  """LayerNorm over the last axis in float32. x: [..., D] -> float32 [..., D]."""
  import jax
  import jax.numpy as jnp
  x = x.astype(jnp.float32)
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) * (jax.lax.rsqrt(var + eps) * scale) + offset


def _dense(x, w, b, dtype):
  """x [..., I] @ w [I, O] + b [O], inputs in `dtype`, float32 result."""
  import jax.numpy as jnp
  y = jnp.einsum("...i,io->...o", x.astype(dtype), w.astype(dtype),
                 preferred_element_type=jnp.float32)
  return y + b


def _gelu(x):
  """Exact (erf) GELU, as ESM."""
  import jax
  return jax.nn.gelu(x, approximate=False)


def rotary_tables(length: int, inv_freq) -> tuple[Any, Any]:
  """cos, sin tables for positions 0..length-1. -> float32 [T, Dh/2] each."""
  import jax.numpy as jnp
  pos = jnp.arange(length, dtype=jnp.float32)
  freqs = pos[:, None] * inv_freq.astype(jnp.float32)[None, :]
  return jnp.cos(freqs), jnp.sin(freqs)


def apply_rotary(x, cos, sin):
  """Rotates the two halves of the head dimension. x: [B, T, H, Dh]; cos/sin [T, Dh/2]."""
  import jax.numpy as jnp
  x = x.astype(jnp.float32)
  half = x.shape[-1] // 2
  x1, x2 = x[..., :half], x[..., half:]
  c, s = cos[None, :, None, :], sin[None, :, None, :]
  return jnp.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def _attention_core(q, k, v, bias):
  """Softmax attention. q, k, v: [..., T, Dh]; bias: [..., 1, T] -> float32 [..., T, Dh].

  The softmax is normalised after the value product ([T, Dh] divisions, not [T, T]). With
  values in a lower precision than float32 and at least `ROW_SUMS_BY_PRODUCT_MIN_KEYS` keys,
  the row sums come out of the value product too, over a column of ones appended to v (padded
  with zeros to a multiple of `ROW_SUMS_BY_PRODUCT_WIDTH` columns): the sums of the rounded
  weights that the product used, without another pass over the [T, T] weights.
  """
  import jax.numpy as jnp
  logits = jnp.einsum("...qd,...kd->...qk", q, k, preferred_element_type=jnp.float32) + bias
  e = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
  dh, t = v.shape[-1], v.shape[-2]
  fold = v.dtype != jnp.float32 and t >= ROW_SUMS_BY_PRODUCT_MIN_KEYS
  if fold:
    width = -(-(dh + 1) // ROW_SUMS_BY_PRODUCT_WIDTH) * ROW_SUMS_BY_PRODUCT_WIDTH
    ones = jnp.zeros(v.shape[:-1] + (width - dh,), v.dtype).at[..., 0].set(1)
    v = jnp.concatenate([v, ones], axis=-1)
  out = jnp.einsum("...qk,...kd->...qd", e.astype(v.dtype), v, preferred_element_type=jnp.float32)
  if fold:
    return out[..., :dh] / out[..., dh:dh + 1]
  return out / jnp.sum(e, axis=-1, keepdims=True)


# Lower-precision attention (bfloat16) takes its softmax row sums from the value product from
# this many keys on (`_attention_core`). One process, both compiled, best of 8 alternating, a
# 2-core Xeon with AMX (bfloat16 products 1.7 TFLOP/s in XLA), random weights, rows 75-100%
# real; whole forward, this path vs a separate row-sum pass: esm2_t12_35M 10 x 384 tokens
# 1.08-1.13x, 8 x 512 1.19-1.22x, 5 x 768 1.23-1.28x, 4 x 1024 1.27x, 2 x 2048 1.22-1.26x;
# esm2_t6_8M 10 x 384 1.04-1.18x, 8 x 512 1.20-1.37x, 4 x 1024 1.44x; esm2_t30_150M 8 x 512
# 1.16x; esm2_t33_650M 4 x 512 1.08x; but 35M 16 x 256 0.98x, 32 x 128 0.91-0.95x. float32
# keeps the separate pass (35M 8 x 512 1.06-1.08x, 16 x 256 0.93-0.95x; session 25:
# 0.94-1.14x). Hidden states' error against float32 unchanged (3.2e-2 max, 35M).
ROW_SUMS_BY_PRODUCT_MIN_KEYS = 384
# v plus the ones column is padded with zeros to a multiple of this many columns (the AMX
# tiles' 16 float32 output columns): 24 -> 32 (35M), 16 -> 32 (8M), 32 -> 48 (150M),
# 64 -> 80 (650M).
ROW_SUMS_BY_PRODUCT_WIDTH = 16


# Attention logits of this many bytes or fewer are computed at once; larger ones in a loop over
# groups of (batch, head) pairs, so that the [T, T] blocks stay in cache and the same buffers
# are reused (on CPU, materialising B x H x T x T floats is slower than the matmuls around it).
ATTENTION_CHUNK_BYTES = 4 << 20

# `attention_impl` values: "auto" picks per backend and dtype (`resolve_attention_impl`);
# "xla" and "cudnn" are `jax.nn.dot_product_attention` with that implementation; "chunked" is
# the loop over (batch, head) groups above.
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "chunked")
# What "auto" runs on CPU: the chunked loop, measured faster there than the fused API's XLA
# lowering (esm2_t12_35M, 8 x 512 tokens, float32 and bfloat16; see the module docstring).
CPU_ATTENTION_IMPL = "chunked"
# Matmul precision of a float32 forward (`jax.default_matmul_precision` while tracing): full
# float32. XLA's default lets GPUs (TF32, a 10-bit mantissa) and TPUs (bfloat16 passes) round
# float32 matmul inputs, about 1e-3 relative, where transformers' float32 ESM-2 does not round
# (PyTorch keeps TF32 off for matmuls by default); on CPU it changes nothing. bfloat16 / float16
# forwards keep XLA's default.
FLOAT32_MATMUL_PRECISION = "float32"


def chunked_attention(q, k, v, bias):
  """q, k, v: [B, H, T, Dh]; bias: float32 [B, 1, 1, T] (0 or -1e9). -> float32 [B, H, T, Dh]."""
  import jax
  import jax.numpy as jnp
  b, h, t, dh = q.shape
  per_head = t * t * 4
  if b * h * per_head <= ATTENTION_CHUNK_BYTES:
    return _attention_core(q, k, v, bias)
  n = max(1, min(b * h, ATTENTION_CHUNK_BYTES // per_head))
  while (b * h) % n:
    n -= 1
  g = (b * h) // n
  group = lambda a: a.reshape((g, n) + a.shape[2:])
  bias = jnp.broadcast_to(bias, (b, h, 1, t))
  out = jax.lax.map(lambda xs: _attention_core(*xs), (group(q), group(k), group(v), group(bias)))
  return out.reshape(b, h, t, dh)


def cudnn_supported(head_size: int, compute_dtype) -> bool:
  """Whether cuDNN's fused (flash) attention takes these inputs: bfloat16 / float16 q, k, v
  and a head size that is a multiple of 8, at most 128 (256 from Hopper on; every ESM-2 size
  has 16..128)."""
  import jax.numpy as jnp
  return (jnp.dtype(compute_dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
          and head_size % 8 == 0 and head_size <= 128)


def resolve_attention_impl(impl: str, head_size: int, compute_dtype,
                           backend: str | None = None) -> str:
  """The implementation `attention` runs for `impl`: "auto" is "cudnn" on GPU when
  `cudnn_supported` (bfloat16 / float16), `CPU_ATTENTION_IMPL` on CPU, "xla" otherwise (TPU,
  GPU in float32); the others are returned as they are."""
  import jax
  if impl not in ATTENTION_IMPLS:
    raise ConfigError(f"attention_impl={impl!r}: expected one of {', '.join(ATTENTION_IMPLS)}")
  if impl != "auto":
    return impl
  backend = backend or jax.default_backend()
  if backend == "cpu":
    return CPU_ATTENTION_IMPL
  if backend in ("gpu", "cuda") and cudnn_supported(head_size, compute_dtype):
    return "cudnn"
  return "xla"


def attention(q, k, v, key_mask, impl: str = "auto"):
  """Softmax attention over the real tokens of each sequence.

  Args:
    q, k, v: [B, T, H, Dh] in the compute dtype; q already scaled by 1/sqrt(Dh) (and rotated).
    key_mask: bool [B, T], True for real tokens (keys that may be attended to).
    impl: one of ATTENTION_IMPLS (see `resolve_attention_impl`). "cudnn" passes the padding as
      per-sequence key lengths (the count of real tokens), so it assumes padding at the end of
      each row (as `tokenizer.batch_encode` and the embedder produce it); when cuDNN refuses
      the inputs at trace time (no cuDNN, unsupported shape) it falls back to "xla".
  Returns:
    [B, T, H, Dh] (float32 for "chunked", the compute dtype otherwise); rows of padding
    queries are not meaningful.
  """
  import jax
  import jax.numpy as jnp
  impl = resolve_attention_impl(impl, q.shape[-1], q.dtype)
  if impl == "chunked":
    bias = jnp.where(key_mask, 0.0, -1e9).astype(jnp.float32)[:, None, None, :]
    heads_first = lambda a: jnp.transpose(a, (0, 2, 1, 3))   # [B, H, T, Dh]
    return heads_first(chunked_attention(heads_first(q), heads_first(k), heads_first(v), bias))
  if impl == "cudnn":
    # A fully padded row (the embedder pads batches with such rows) gets length 1, not 0.
    lengths = jnp.maximum(jnp.sum(key_mask, axis=-1), 1).astype(jnp.int32)
    try:
      return jax.nn.dot_product_attention(q, k, v, scale=1.0, key_value_seq_lengths=lengths,
                                          implementation="cudnn")
    except (NotImplementedError, RuntimeError, ValueError, TypeError):
      pass
  return jax.nn.dot_product_attention(q, k, v, mask=key_mask[:, None, None, :], scale=1.0,
                                      implementation="xla")


class _Block:
  """One pre-LayerNorm transformer block (a plain function over Haiku parameters)."""

  def __init__(self, config: ESM2Config, compute_dtype, attention_impl: str = "auto"):
    self.config = config
    self.dtype = compute_dtype
    self.attention_impl = attention_impl

  def __call__(self, x, key_mask, cos, sin):
    """x: float32 [B, T, D]; key_mask: bool [B, T] (True: real token) -> float32 [B, T, D]."""
    import jax.numpy as jnp
    hk = _hk()
    c = self.config
    d, h, dh, f = c.hidden_size, c.num_heads, c.head_size, c.intermediate_size
    ones, zeros = hk.initializers.Constant(1.0), hk.initializers.Constant(0.0)
    w_init = hk.initializers.TruncatedNormal(0.02)
    p = lambda n, shape, init: hk.get_parameter(n, shape, jnp.float32, init)

    y = _layer_norm(x, p("attn_ln_scale", [d], ones), p("attn_ln_offset", [d], zeros),
                    c.layer_norm_eps)
    qkv = _dense(y, p("qkv_w", [d, 3 * d], w_init), p("qkv_b", [3 * d], zeros), self.dtype)
    b, t = x.shape[0], x.shape[1]
    qkv = qkv.reshape(b, t, 3, h, dh)
    q = apply_rotary(qkv[:, :, 0] * (dh ** -0.5), cos, sin)
    k = apply_rotary(qkv[:, :, 1], cos, sin)
    cast = lambda a: a.astype(self.dtype)
    attn = attention(cast(q), cast(k), cast(qkv[:, :, 2]), key_mask, self.attention_impl)
    attn = attn.reshape(b, t, d)
    x = x + _dense(attn, p("out_w", [d, d], w_init), p("out_b", [d], zeros), self.dtype)

    y = _layer_norm(x, p("mlp_ln_scale", [d], ones), p("mlp_ln_offset", [d], zeros),
                    c.layer_norm_eps)
    y = _gelu(_dense(y, p("fc1_w", [d, f], w_init), p("fc1_b", [f], zeros), self.dtype))
    return x + _dense(y, p("fc2_w", [f, d], w_init), p("fc2_b", [d], zeros), self.dtype)


@functools.lru_cache(maxsize=None)
def _esm2_module_class():
  hk = _hk()

  class ESM2(hk.Module):
    """ESM-2 encoder. See the module docstring for the layer numbering."""

    def __init__(self, config: ESM2Config, compute_dtype=None, attention_impl: str = "auto",
                 name: str = "esm2"):
      super().__init__(name=name)
      import jax.numpy as jnp
      if attention_impl not in ATTENTION_IMPLS:
        raise ConfigError(f"attention_impl={attention_impl!r}: expected one of "
                          f"{', '.join(ATTENTION_IMPLS)}")
      self.config = config
      self.compute_dtype = jnp.float32 if compute_dtype is None else compute_dtype
      self.attention_impl = attention_impl

    def __call__(self, tokens, layers: Sequence[int] | None = None) -> dict[int, Any]:
      """Hidden states of the requested layers.

      Args:
        tokens: int32 [B, T] (<cls> ... <eos> then <pad>).
        layers: layer numbers in 0..num_layers (default: the last).
      Returns:
        {layer: float32 [B, T, D]}; padding rows are not meaningful.
      """
      import jax.numpy as jnp
      c = self.config
      layers = (c.num_layers,) if layers is None else tuple(sorted(set(int(l) for l in layers)))
      for l in layers:
        if not 0 <= l <= c.num_layers:
          raise ConfigError(f"ESM-2 {c.name!r} has layers 0..{c.num_layers}; asked for {l}")
      d = c.hidden_size
      embed = hk.get_parameter("embeddings", [c.vocab_size, d], jnp.float32,
                               hk.initializers.TruncatedNormal(0.02))
      inv_freq = hk.get_parameter(
          "rotary_inv_freq", [c.head_size // 2], jnp.float32,
          lambda shape, dtype: default_inv_freq(c).astype(dtype))
      pad = tokens == c.pad_token_id
      x = jnp.take(embed, tokens, axis=0)
      if c.token_dropout:
        is_mask = tokens == c.mask_token_id
        x = jnp.where(is_mask[..., None], 0.0, x)
        n_tokens = jnp.sum(~pad, axis=-1).astype(jnp.float32)
        observed = jnp.sum(is_mask, axis=-1).astype(jnp.float32) / jnp.maximum(n_tokens, 1.0)
        x = x * ((1.0 - _MASK_RATIO_TRAIN) / (1.0 - observed))[:, None, None]
      x = jnp.where(pad[..., None], 0.0, x)
      out = {}
      if 0 in layers:
        out[0] = x
      key_mask = ~pad
      cos, sin = rotary_tables(tokens.shape[1], inv_freq)
      middle = [l for l in layers if 0 < l < c.num_layers]
      block = _Block(c, self.compute_dtype, self.attention_impl)

      if middle:
        wanted = jnp.asarray(middle, dtype=jnp.int32)

        def layer_fn(carry, number):
          h, kept = carry
          h = block(h, key_mask, cos, sin)
          hit = wanted == number
          kept = jnp.where(hit[:, None, None, None], h[None], kept)
          return (h, kept), None

        kept0 = jnp.zeros((len(middle),) + x.shape, jnp.float32)
        numbers = jnp.arange(1, c.num_layers + 1, dtype=jnp.int32)
        (x, kept), _ = hk.layer_stack(c.num_layers, with_per_layer_inputs=True, name="layers")(
            layer_fn)((x, kept0), numbers)
        for i, l in enumerate(middle):
          out[l] = kept[i]
      else:
        x = hk.layer_stack(c.num_layers, name="layers")(
            lambda h: block(h, key_mask, cos, sin))(x)
      if c.num_layers in layers:
        out[c.num_layers] = _layer_norm(
            x, hk.get_parameter("final_ln_scale", [d], jnp.float32, hk.initializers.Constant(1.0)),
            hk.get_parameter("final_ln_offset", [d], jnp.float32, hk.initializers.Constant(0.0)),
            c.layer_norm_eps)
      return out

  return ESM2


def __getattr__(name: str):
  # `esm2.ESM2` is the Haiku module; built on first use so that importing this file does not
  # import Haiku/JAX.
  if name == "ESM2":
    return _esm2_module_class()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_inv_freq(config: ESM2Config) -> np.ndarray:
  """Rotary inverse frequencies theta^(-2i/Dh). -> float32 [Dh/2]."""
  dh = config.head_size
  return (1.0 / (config.rope_theta ** (np.arange(0, dh, 2, dtype=np.float32) / dh))).astype(
      np.float32)


def make_forward(config: ESM2Config, layers: Sequence[int] | None = None, compute_dtype=None,
                 attention_impl: str = "auto"):
  """`hk.Transformed` (without rng) of `tokens [B, T] -> {layer: float32 [B, T, D]}`.

  `attention_impl`: one of ATTENTION_IMPLS ("auto": see `resolve_attention_impl`); the
  parameters do not depend on it. A float32 forward (`compute_dtype` None or float32) runs
  its matmuls at `FLOAT32_MATMUL_PRECISION`.
  """
  import jax
  import jax.numpy as jnp
  hk = _hk()
  layers = tuple(layers) if layers is not None else None
  if attention_impl not in ATTENTION_IMPLS:
    raise ConfigError(f"attention_impl={attention_impl!r}: expected one of "
                      f"{', '.join(ATTENTION_IMPLS)}")

  def forward(tokens):
    module = _esm2_module_class()(config, compute_dtype=compute_dtype,
                                  attention_impl=attention_impl)
    if compute_dtype is not None and jnp.dtype(compute_dtype) != jnp.dtype(jnp.float32):
      return module(tokens, layers)
    with jax.default_matmul_precision(FLOAT32_MATMUL_PRECISION):
      return module(tokens, layers)

  # Parameter names do not depend on which layers are requested: the layer stack is named
  # "layers" in both branches.
  return hk.without_apply_rng(hk.transform(forward))


def init_params(config: ESM2Config, seed: int = 0) -> dict:
  """Random parameters (numpy float32 nested dict), e.g. for benchmarks."""
  import jax
  import jax.numpy as jnp
  fwd = make_forward(config)
  params = fwd.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8), jnp.int32))
  return jax.tree.map(np.asarray, params)


def param_shapes(config: ESM2Config) -> dict[str, tuple[int, ...]]:
  """Flat parameter name -> shape, as `load_pretrained` expects them."""
  n, d, f, v = config.num_layers, config.hidden_size, config.intermediate_size, config.vocab_size
  s = STACK_MODULE
  shapes = {
      "esm2/embeddings": (v, d),
      "esm2/rotary_inv_freq": (config.head_size // 2,),
      "esm2/final_ln_scale": (d,),
      "esm2/final_ln_offset": (d,),
  }
  for name, shape in (("attn_ln_scale", (d,)), ("attn_ln_offset", (d,)), ("qkv_w", (d, 3 * d)),
                      ("qkv_b", (3 * d,)), ("out_w", (d, d)), ("out_b", (d,)),
                      ("mlp_ln_scale", (d,)), ("mlp_ln_offset", (d,)), ("fc1_w", (d, f)),
                      ("fc1_b", (f,)), ("fc2_w", (f, d)), ("fc2_b", (d,))):
    shapes[f"{s}/{name}"] = (n,) + shape
  return shapes


def flatten_params(params: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
  """Haiku {module: {name: array}} -> {"module/name": array}."""
  return {f"{m}/{n}": np.asarray(a) for m, sub in params.items() for n, a in sub.items()}


def unflatten_params(flat: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
  """{"module/name": array} -> Haiku {module: {name: array}}."""
  out: dict[str, dict[str, np.ndarray]] = {}
  for key, arr in flat.items():
    module, _, name = key.rpartition("/")
    out.setdefault(module, {})[name] = arr
  return out


def check_params(config: ESM2Config, flat: Mapping[str, np.ndarray], where: str) -> None:
  """Raises CheckpointError listing the first mismatching/missing/unknown names."""
  expected = param_shapes(config)
  problems = []
  for k, shape in expected.items():
    if k not in flat:
      problems.append(f"missing {k} {list(shape)}")
    elif tuple(flat[k].shape) != shape:
      problems.append(f"{k}: shape {list(flat[k].shape)}, config expects {list(shape)}")
  for k in flat:
    if k not in expected:
      problems.append(f"unexpected {k} {list(flat[k].shape)}")
  if problems:
    raise CheckpointError(
        f"{where}: {len(problems)} parameter(s) do not match the config "
        f"({config.num_layers} layers, hidden {config.hidden_size}): " + "; ".join(problems[:8])
        + (" ..." if len(problems) > 8 else ""))


def fingerprint(config: ESM2Config, flat: Mapping[str, np.ndarray]) -> str:
  """The content fingerprint of converted weights: parameters (as float32) and config, without
  the name (a label). -> 64 hex characters."""
  from jaxgeo.lm.store import content_fingerprint
  hf = config.to_hf()
  hf.pop("_name_or_path", None)
  return content_fingerprint({k: np.asarray(v, np.float32) for k, v in flat.items()}, hf)


def save_converted(out_dir: str | os.PathLike, config: ESM2Config,
                   flat: Mapping[str, np.ndarray]) -> None:
  """Writes params.safetensors + config.json + fingerprint.json into `out_dir` (atomic file
  by file; the old fingerprint goes first, so a killed conversion leaves none, never a stale
  one)."""
  from safetensors.numpy import save_file
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  check_params(config, flat, str(out))
  if (out / FINGERPRINT_FILE).exists():
    (out / FINGERPRINT_FILE).unlink()
  arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in flat.items()}
  with io.atomic_path(out / PARAMS_FILE) as tmp:
    save_file(arrays, tmp, metadata={"format": "jaxgeo-esm2", "name": config.name})
  io.atomic_write_text(out / CONFIG_FILE, json.dumps(config.to_hf(), indent=2) + "\n")
  io.atomic_write_json(out / FINGERPRINT_FILE, {
      "fingerprint": fingerprint(config, arrays),
      "params_bytes": (out / PARAMS_FILE).stat().st_size})


def read_fingerprint(model_dir: str | os.PathLike) -> str | None:
  """The fingerprint recorded at conversion, or None when there is none (an older
  `convert-esm`) or it does not match the parameters file beside it (replaced by hand)."""
  p = pathlib.Path(model_dir)
  try:
    data = json.loads((p / FINGERPRINT_FILE).read_text())
    fp, size = str(data["fingerprint"]), int(data["params_bytes"])
  except (OSError, ValueError, KeyError, TypeError):
    return None
  try:
    if (p / PARAMS_FILE).stat().st_size != size:
      return None
  except OSError:
    return None
  return fp


def is_converted(path: str | os.PathLike) -> bool:
  p = pathlib.Path(path)
  return (p / PARAMS_FILE).is_file() and (p / CONFIG_FILE).is_file()


def load_config(model_dir: str | os.PathLike) -> ESM2Config:
  p = pathlib.Path(model_dir)
  try:
    hf = json.loads((p / CONFIG_FILE).read_text())
  except FileNotFoundError:
    raise CheckpointError(f"{p}: no {CONFIG_FILE}; convert weights first with "
                          f"`jaxgeo convert-esm SRC --out {p}`") from None
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{p / CONFIG_FILE}: not valid JSON ({e})") from None
  name = hf.get("_name_or_path") or p.name
  return ESM2Config.from_hf(hf, name=os.path.basename(str(name).rstrip("/")) or p.name)


def load_pretrained(model_dir: str | os.PathLike) -> tuple[ESM2Config, dict]:
  """Reads a `convert-esm` folder. -> (config, Haiku params of numpy float32 arrays)."""
  from safetensors.numpy import load_file
  p = pathlib.Path(model_dir)
  config = load_config(p)
  f = p / PARAMS_FILE
  if not f.is_file():
    raise CheckpointError(f"{p}: no {PARAMS_FILE}; convert weights first with "
                          f"`jaxgeo convert-esm SRC --out {p}`")
  try:
    flat = load_file(str(f))
  except Exception as e:  # safetensors raises its own error types for corrupt files.
    raise CheckpointError(f"{f}: cannot be read as safetensors ({e})") from None
  check_params(config, flat, str(f))
  return config, unflatten_params(flat)


# --- large models: parameter count, memory, sharding -----------------------------------------

# Block weights sharded over the mesh's `model` axis (Megatron-style): the q/k/v and first
# feed-forward matrices by output column, the attention-output and second feed-forward
# matrices by input row (dimension index within the stacked [num_layers, in, out] array).
_SHARDED_DIMS = {"qkv_w": 2, "fc1_w": 2, "out_w": 1, "fc2_w": 1}
MATRICES = tuple(_SHARDED_DIMS)


def param_count(config: ESM2Config) -> int:
  """Parameters of the encoder (no language-model head), from the config alone."""
  return int(sum(np.prod(s) for s in param_shapes(config).values()))


def memory_bytes(config: ESM2Config, param_dtype: str = "float32", tokens: int = 8192) -> dict:
  """An estimate of the device memory of a forward pass: the parameters (block matrices in
  `param_dtype`, the rest float32) and the working set of one batch of `tokens` tokens
  (one layer's activations at a time under `hk.layer_stack`: residual stream, q/k/v, the
  feed-forward hidden layer, float32; attention logits are computed in 4 MiB chunks, as
  the "chunked" attention does; XLA's lowering of `jax.nn.dot_product_attention` holds
  B x H x T x T logits at once, cuDNN's flash attention none).
  -> {"params": bytes, "activations": bytes, "total": bytes}."""
  shapes = param_shapes(config)
  width = {"float32": 4, "bfloat16": 2}[param_dtype]
  params = 0
  for name, shape in shapes.items():
    params += int(np.prod(shape)) * (width if name.rsplit("/", 1)[-1] in MATRICES else 4)
  d, f = config.hidden_size, config.intermediate_size
  activations = tokens * (d * 6 + 3 * d + f) * 4 + ATTENTION_CHUNK_BYTES * 2
  return {"params": params, "activations": activations, "total": params + activations}


def cast_matrices(params: Mapping, dtype) -> dict:
  """The block matrices (q/k/v, output, feed-forward) cast to `dtype` (e.g. bfloat16 when the
  model computes in bfloat16: `_dense` casts them to that dtype anyway, so the outputs are
  the same bit for bit and the parameters take half the memory); the rest unchanged."""
  out = {}
  for module, sub in params.items():
    out[module] = {n: (np.asarray(a).astype(dtype) if module == STACK_MODULE and n in MATRICES
                       else a) for n, a in sub.items()}
  return out


def param_specs(params: Mapping, model_size: int, axis: str = "model") -> dict:
  """`jax.sharding.PartitionSpec` per parameter: the block matrices split over `axis` (of
  size `model_size`) along the dimension of `_SHARDED_DIMS` when it divides evenly; every
  other parameter replicated."""
  from jax.sharding import PartitionSpec as P
  out = {}
  for module, sub in params.items():
    out[module] = {}
    for n, a in sub.items():
      dim = _SHARDED_DIMS.get(n) if module == STACK_MODULE else None
      if dim is None or model_size <= 1 or np.shape(a)[dim] % model_size:
        out[module][n] = P()
      else:
        spec = [None] * len(np.shape(a))
        spec[dim] = axis
        out[module][n] = P(*spec)
  return out


def shard_params(params: Mapping, mesh, axis: str = "model") -> dict:
  """Parameters placed on `mesh` as `param_specs` says (each device holds 1 / model_size of
  every block matrix). -> {module: {name: jax.Array}}."""
  import jax
  from jax.sharding import NamedSharding
  specs = param_specs(params, int(mesh.shape[axis]), axis)
  return {m: {n: jax.device_put(np.asarray(a), NamedSharding(mesh, specs[m][n]))
              for n, a in sub.items()} for m, sub in params.items()}
