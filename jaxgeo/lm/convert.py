"""ESM-2 weights -> jaxgeo's safetensors + config, once (the library of `jaxgeo convert-esm`).

SRC may be
- a local HuggingFace model folder: `config.json` and `model.safetensors`, sharded
  `model-0000x-of-0000y.safetensors` + `model.safetensors.index.json`, or `pytorch_model.bin`
  (also sharded with `pytorch_model.bin.index.json`). `EsmModel` and `EsmForMaskedLM` names
  (with the `esm.` prefix) are both read;
- a fair-esm checkpoint `.pt` (`{"model": state_dict, "cfg": {"model": ...}}`);
- a HuggingFace model id such as `facebook/esm2_t33_650M_UR50D` (downloaded with
  huggingface_hub; needs internet).

Safetensors files are read with a small reader of our own (no torch; float32, float16 and
bfloat16 tensors). `.bin` and `.pt` files are read with `torch.load(weights_only=True)`.

Every tensor of the source is either used or listed as unused in the report (e.g. the masked-LM
head `lm_head.*` and `contact_head.*`, which embedding does not need); a missing tensor or a
shape that does not match the config is an error listing the first mismatches.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Mapping

import numpy as np

from jaxgeo.errors import CheckpointError

# ESM-2 sizes published by fair-esm: (layers, hidden) -> attention heads. Used only when a
# fair-esm checkpoint carries no readable config.
_PUBLISHED_HEADS = {(6, 320): 20, (12, 480): 20, (30, 640): 20, (33, 1280): 20,
                    (36, 2560): 40, (48, 5120): 40}

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


@dataclasses.dataclass(frozen=True)
class ConversionReport:
  source: str
  out_dir: str
  name: str
  num_layers: int
  hidden_size: int
  num_params: int
  used: int
  unused: tuple[str, ...]
  inv_freq: str
  fingerprint: str = ""

  def lines(self) -> list[str]:
    out = [f"converted {self.source} -> {self.out_dir}",
           f"  model {self.name}: {self.num_layers} layers, hidden {self.hidden_size}, "
           f"{self.num_params:,} parameters from {self.used} tensors",
           f"  rotary inverse frequencies: {self.inv_freq}"]
    if self.fingerprint:
      out.append(f"  fingerprint {self.fingerprint} (the embedding store keys its entries by "
                 "it; the name is a label)")
    if self.unused:
      out.append(f"  {len(self.unused)} tensor(s) not used (not needed for embeddings): "
                 + ", ".join(_summarize(self.unused)))
    else:
      out.append("  every tensor of the source was used")
    return out


def _summarize(names: tuple[str, ...], limit: int = 12) -> list[str]:
  """Groups per-layer names (`encoder.layer.3.x` -> `encoder.layer.*.x`) for a short report."""
  groups: dict[str, int] = {}
  for n in names:
    g = re.sub(r"\.\d+\.", ".*.", n)
    groups[g] = groups.get(g, 0) + 1
  items = [g if c == 1 else f"{g} (x{c})" for g, c in groups.items()]
  return items[:limit] + ([f"... {len(items) - limit} more"] if len(items) > limit else [])


# ---------------------------------------------------------------------------------------------
# Reading tensors.

def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """All tensors of a .safetensors file as numpy arrays (bfloat16 widened to float32)."""
  path = pathlib.Path(path)
  try:
    with open(path, "rb") as f:
      n = int.from_bytes(f.read(8), "little")
      if n <= 0 or n > 100_000_000:
        raise ValueError("bad header length")
      header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{path}: cannot be read as safetensors ({e})") from None
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    if end > data.shape[0]:
      raise CheckpointError(f"{path}: tensor {name} runs past the end of the file (truncated?)")
    raw = data[start:end]
    dt = info["dtype"]
    if dt == "BF16":
      arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif dt in _ST_DTYPES:
      arr = np.frombuffer(raw, _ST_DTYPES[dt])
    else:
      raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {dt}")
    out[name] = np.array(arr.reshape(info["shape"]))
  return out


def _torch_load(path: pathlib.Path) -> Any:
  try:
    import torch
  except ImportError:
    raise CheckpointError(f"{path}: reading .bin/.pt checkpoints needs torch "
                          "(pip install torch); safetensors files do not") from None
  import argparse as _argparse
  try:
    with torch.serialization.safe_globals([_argparse.Namespace]):
      return torch.load(str(path), map_location="cpu", weights_only=True)
  except Exception as e:  # UnpicklingError and friends; weights_only refuses arbitrary objects.
    raise CheckpointError(f"{path}: cannot be loaded with torch.load(weights_only=True) "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _to_numpy(state: Mapping[str, Any], where: pathlib.Path) -> dict[str, np.ndarray]:
  import torch
  out = {}
  for k, v in state.items():
    if isinstance(v, torch.Tensor):
      out[k] = v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
    elif isinstance(v, np.ndarray):
      out[k] = v
  if not out:
    raise CheckpointError(f"{where}: no tensors found")
  return out


def _read_index(index: pathlib.Path) -> list[pathlib.Path]:
  try:
    weight_map = json.loads(index.read_text())["weight_map"]
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(f"{index}: not a valid shard index ({e})") from None
  files = sorted(set(weight_map.values()))
  missing = [f for f in files if not (index.parent / f).is_file()]
  if missing:
    raise CheckpointError(f"{index}: shard(s) missing: {', '.join(missing[:5])}")
  return [index.parent / f for f in files]


def read_hf_folder(folder: pathlib.Path) -> tuple[dict, dict[str, np.ndarray], str]:
  """-> (config dict, tensors, description of the weight files read)."""
  cfg_path = folder / "config.json"
  if not cfg_path.is_file():
    raise CheckpointError(f"{folder}: no config.json (a HuggingFace model folder has one)")
  try:
    config = json.loads(cfg_path.read_text())
  except ValueError as e:
    raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from None
  tensors: dict[str, np.ndarray] = {}
  if (folder / "model.safetensors").is_file():
    files, what = [folder / "model.safetensors"], "model.safetensors"
    tensors = read_safetensors(files[0])
  elif (folder / "model.safetensors.index.json").is_file():
    files = _read_index(folder / "model.safetensors.index.json")
    what = f"{len(files)} safetensors shards"
    for f in files:
      tensors.update(read_safetensors(f))
  elif (folder / "pytorch_model.bin").is_file():
    what = "pytorch_model.bin"
    tensors = _to_numpy(_torch_load(folder / "pytorch_model.bin"), folder / "pytorch_model.bin")
  elif (folder / "pytorch_model.bin.index.json").is_file():
    files = _read_index(folder / "pytorch_model.bin.index.json")
    what = f"{len(files)} pytorch_model.bin shards"
    for f in files:
      tensors.update(_to_numpy(_torch_load(f), f))
  else:
    raise CheckpointError(
        f"{folder}: no weights found (looked for model.safetensors, "
        "model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json)")
  vocab = folder / "vocab.txt"
  if vocab.is_file():
    _check_vocab(vocab)
  return config, tensors, what


def _check_vocab(vocab: pathlib.Path) -> None:
  from jaxgeo.lm.tokenizer import ALPHABET
  tokens = tuple(l.strip() for l in vocab.read_text().splitlines() if l.strip())
  if tokens != ALPHABET:
    diff = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(tokens, ALPHABET)) if a != b]
    raise CheckpointError(
        f"{vocab}: vocabulary differs from the ESM alphabet jaxgeo implements "
        f"({len(tokens)} vs {len(ALPHABET)} tokens; first differences: {'; '.join(diff[:3])})")


def _cfg_get(cfg: Any, key: str) -> Any:
  if isinstance(cfg, Mapping):
    return cfg.get(key)
  return getattr(cfg, key, None)


def read_fair_esm(path: pathlib.Path) -> tuple[dict | None, dict[str, np.ndarray]]:
  """A fair-esm `.pt`. -> (HF-style config dict or None when unreadable, tensors)."""
  data = _torch_load(path)
  if not isinstance(data, Mapping) or "model" not in data:
    raise CheckpointError(f"{path}: not a fair-esm checkpoint (no 'model' state dict)")
  tensors = _to_numpy(data["model"], path)
  cfg = data.get("cfg")
  model_cfg = _cfg_get(cfg, "model") if cfg is not None else None
  config = None
  if model_cfg is not None and _cfg_get(model_cfg, "encoder_layers") is not None:
    d = int(_cfg_get(model_cfg, "encoder_embed_dim"))
    config = {
        "num_hidden_layers": int(_cfg_get(model_cfg, "encoder_layers")),
        "hidden_size": d,
        "num_attention_heads": int(_cfg_get(model_cfg, "encoder_attention_heads")),
        "intermediate_size": int(_cfg_get(model_cfg, "encoder_ffn_embed_dim") or 4 * d),
        "token_dropout": bool(_cfg_get(model_cfg, "token_dropout")
                              if _cfg_get(model_cfg, "token_dropout") is not None else True),
    }
  return config, tensors


def _infer_fair_config(tensors: Mapping[str, np.ndarray], path: pathlib.Path) -> dict:
  names = _canonical(tensors)
  emb = names.get("embeddings.word_embeddings.weight")
  layers = {int(m.group(1)) for k in names for m in [re.match(r"encoder\.layer\.(\d+)\.", k)] if m}
  if emb is None or not layers:
    raise CheckpointError(f"{path}: cannot infer the ESM-2 config from the tensors; pass --config")
  n, d = max(layers) + 1, int(emb.shape[1])
  if (n, d) not in _PUBLISHED_HEADS:
    raise CheckpointError(f"{path}: no readable config and ({n} layers, hidden {d}) is not a "
                          "published ESM-2 size; pass --config CONFIG.json with the head count")
  ffn = names.get("encoder.layer.0.intermediate.dense.weight")
  return {"num_hidden_layers": n, "hidden_size": d, "num_attention_heads": _PUBLISHED_HEADS[n, d],
          "intermediate_size": int(ffn.shape[0]) if ffn is not None else 4 * d}


# ---------------------------------------------------------------------------------------------
# Names.

_FAIR_RULES = (
    (r"^embed_tokens\.", "embeddings.word_embeddings."),
    (r"^layers\.(\d+)\.self_attn\.q_proj\.", r"encoder.layer.\1.attention.self.query."),
    (r"^layers\.(\d+)\.self_attn\.k_proj\.", r"encoder.layer.\1.attention.self.key."),
    (r"^layers\.(\d+)\.self_attn\.v_proj\.", r"encoder.layer.\1.attention.self.value."),
    (r"^layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.layer.\1.attention.output.dense."),
    # fair-esm's checkpoints name the rotary buffer `rot_emb` (its RotaryEmbedding module is
    # `self_attn.rot_emb`); `rotary_emb` is accepted too.
    (r"^layers\.(\d+)\.self_attn\.rot(?:ary)?_emb\.", r"encoder.layer.\1.attention.self.rotary_embeddings."),
    (r"^layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layer.\1.attention.LayerNorm."),
    (r"^layers\.(\d+)\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.final_layer_norm\.", r"encoder.layer.\1.LayerNorm."),
    (r"^emb_layer_norm_after\.", "encoder.emb_layer_norm_after."),
)


def _canonical_name(name: str) -> str:
  """Source name -> transformers `EsmModel` name (no `esm.` prefix).

  LayerNorm `gamma`/`beta` (the legacy names transformers still writes in some versions) read
  as `weight`/`bias`.
  """
  if name.endswith(".gamma"):
    name = name[:-len(".gamma")] + ".weight"
  elif name.endswith(".beta"):
    name = name[:-len(".beta")] + ".bias"
  if name.startswith("esm."):
    return name[4:]
  for prefix in ("encoder.sentence_encoder.", "sentence_encoder."):
    if name.startswith(prefix):
      name = name[len(prefix):]
      break
  else:
    if name.startswith("encoder.") and not name.startswith("encoder.layer."):
      rest = name[len("encoder."):]
      if not rest.startswith("emb_layer_norm_after"):
        name = rest  # fair-esm "encoder.lm_head..." etc.
  for pat, rep in _FAIR_RULES:
    if re.match(pat, name):
      return re.sub(pat, rep, name)
  return name


def _canonical(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  out = {}
  for k, v in tensors.items():
    c = _canonical_name(k)
    if c in out:
      raise CheckpointError(f"tensor name {k!r} collides with another one after renaming ({c!r})")
    out[c] = v
  return out


def hf_to_params(config, tensors: Mapping[str, np.ndarray], where: str
                 ) -> tuple[dict[str, np.ndarray], tuple[str, ...], str]:
  """Maps transformers/fair-esm tensors to jaxgeo's flat params.

  Returns:
    (flat params, names of the source tensors that were not used, how inv_freq was obtained).
  Raises:
    CheckpointError listing the first missing tensors or shape mismatches.
  """
  from jaxgeo.lm.esm2 import STACK_MODULE, check_params, default_inv_freq
  src_names = {_canonical_name(k): k for k in tensors}
  t = _canonical(tensors)
  used: set[str] = set()
  problems: list[str] = []
  n, d, f = config.num_layers, config.hidden_size, config.intermediate_size

  def get(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if name not in t:
      problems.append(f"missing {name} {list(shape)}")
      return None
    used.add(name)
    a = np.asarray(t[name], dtype=np.float32)
    if a.shape != shape:
      problems.append(f"{name}: shape {list(a.shape)}, config expects {list(shape)}")
      return None
    return a

  flat: dict[str, np.ndarray] = {}
  flat["esm2/embeddings"] = get("embeddings.word_embeddings.weight", (config.vocab_size, d))
  flat["esm2/final_ln_scale"] = get("encoder.emb_layer_norm_after.weight", (d,))
  flat["esm2/final_ln_offset"] = get("encoder.emb_layer_norm_after.bias", (d,))
  per_layer: dict[str, list] = {k: [] for k in (
      "attn_ln_scale", "attn_ln_offset", "qkv_w", "qkv_b", "out_w", "out_b", "mlp_ln_scale",
      "mlp_ln_offset", "fc1_w", "fc1_b", "fc2_w", "fc2_b")}
  for i in range(n):
    pre = f"encoder.layer.{i}."
    lin = lambda name, o, i_: get(pre + name + ".weight", (o, i_))
    bias = lambda name, o: get(pre + name + ".bias", (o,))
    q, k, v = (lin(f"attention.self.{x}", d, d) for x in ("query", "key", "value"))
    qb, kb, vb = (bias(f"attention.self.{x}", d) for x in ("query", "key", "value"))
    vals = {
        "attn_ln_scale": get(pre + "attention.LayerNorm.weight", (d,)),
        "attn_ln_offset": get(pre + "attention.LayerNorm.bias", (d,)),
        # torch Linear stores [out, in]; we use [in, out]. q, k, v fused along the output.
        "qkv_w": None if any(a is None for a in (q, k, v)) else np.concatenate([q.T, k.T, v.T], axis=1),
        "qkv_b": None if any(a is None for a in (qb, kb, vb)) else np.concatenate([qb, kb, vb]),
        "out_w": _t(lin("attention.output.dense", d, d)),
        "out_b": bias("attention.output.dense", d),
        "mlp_ln_scale": get(pre + "LayerNorm.weight", (d,)),
        "mlp_ln_offset": get(pre + "LayerNorm.bias", (d,)),
        "fc1_w": _t(lin("intermediate.dense", f, d)),
        "fc1_b": bias("intermediate.dense", f),
        "fc2_w": _t(lin("output.dense", d, f)),
        "fc2_b": bias("output.dense", d),
    }
    for key, val in vals.items():
      per_layer[key].append(val)
  extra_layers = sorted({int(m.group(1)) for name in t
                         for m in [re.match(r"encoder\.layer\.(\d+)\.", name)] if m} - set(range(n)))
  if extra_layers:
    problems.append(f"checkpoint has layer(s) {extra_layers[:5]} beyond the config's {n}")
  if problems:
    raise CheckpointError(
        f"{where}: checkpoint does not match the config ({n} layers, hidden {d}, "
        f"intermediate {f}); {len(problems)} problem(s), first: " + "; ".join(problems[:8]))
  for key, vals in per_layer.items():
    flat[f"{STACK_MODULE}/{key}"] = np.stack(vals)

  # Rotary inverse frequencies: transformers 5 keeps one `rotary_embeddings.inv_freq`, older
  # transformers and fair-esm one per layer. Use the stored values (as transformers does).
  inv_names = sorted(k for k in t if k.endswith("rotary_embeddings.inv_freq"))
  expected = default_inv_freq(config)
  if inv_names:
    stored = [np.asarray(t[k], np.float32) for k in inv_names]
    for k, s in zip(inv_names, stored):
      used.add(k)
      if s.shape != expected.shape:
        raise CheckpointError(f"{where}: {k} has shape {list(s.shape)}, expected {list(expected.shape)}")
      if not np.array_equal(s, stored[0]):
        raise CheckpointError(f"{where}: {k} differs from {inv_names[0]}")
    flat["esm2/rotary_inv_freq"] = stored[0]
    err = float(np.max(np.abs(stored[0] - expected) / expected))
    how = f"from the checkpoint ({inv_names[0]}; max rel. difference to theta^(-2i/d): {err:.1e})"
  else:
    flat["esm2/rotary_inv_freq"] = expected
    how = f"computed (theta={config.rope_theta:g}; none stored)"
  check_params(config, flat, where)
  unused = tuple(sorted(src_names[k] for k in t if k not in used))
  return flat, unused, how


def _t(a: np.ndarray | None) -> np.ndarray | None:
  return None if a is None else np.ascontiguousarray(a.T)


# ---------------------------------------------------------------------------------------------

def _download(repo_id: str) -> pathlib.Path:
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    raise CheckpointError(f"{repo_id}: not a local folder or file, and huggingface_hub is not "
                          "installed to download it (pip install 'jaxgeo[hf]')") from None
  try:
    return pathlib.Path(snapshot_download(
        repo_id, allow_patterns=["config.json", "vocab.txt", "*.safetensors",
                                 "model.safetensors.index.json"]))
  except Exception as e:
    raise CheckpointError(f"{repo_id}: not a local folder or file, and downloading it from the "
                          f"HuggingFace hub failed ({type(e).__name__}: {e})") from None


def check_finite(flat: Mapping[str, np.ndarray], where: str) -> None:
  """Raises CheckpointError naming the tensors that hold NaN or inf (a corrupt source would
  otherwise fill the embedding store with NaN vectors)."""
  bad = {k: int(v.size - np.isfinite(v).sum()) for k, v in flat.items()
         if not np.isfinite(v).all()}
  if bad:
    names = ", ".join(f"{k} ({n})" for k, n in sorted(bad.items())[:6])
    raise CheckpointError(f"{where}: {len(bad)} tensor(s) hold non-finite values (NaN or inf): "
                          f"{names}{' ...' if len(bad) > 6 else ''}; the source is corrupt")


def convert(src: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None,
            config_path: str | os.PathLike | None = None) -> ConversionReport:
  """Converts `src` (see the module docstring) into `out_dir`. -> a report of what was used."""
  from jaxgeo.lm.esm2 import ESM2Config, read_fingerprint, save_converted
  out_path = pathlib.Path(out_dir)
  if out_path.exists() and not out_path.is_dir():
    raise CheckpointError(f"--out {out_path}: is a file, not a folder")
  src_path = pathlib.Path(src)
  override = None
  if config_path is not None:
    try:
      override = json.loads(pathlib.Path(config_path).read_text())
    except (OSError, ValueError) as e:
      raise CheckpointError(f"--config {config_path}: cannot be read as JSON ({e})") from None

  if src_path.is_dir():
    hf_config, tensors, what = read_hf_folder(src_path)
    default_name = os.path.basename(str(hf_config.get("_name_or_path", "")).rstrip("/")) \
        or src_path.resolve().name
    source = f"{src_path} ({what})"
  elif src_path.is_file():
    if src_path.suffix == ".safetensors":
      hf_config, tensors = None, read_safetensors(src_path)
    elif src_path.suffix in (".pt", ".pth", ".bin"):
      hf_config, tensors = read_fair_esm(src_path) if src_path.suffix != ".bin" else (
          None, _to_numpy(_torch_load(src_path), src_path))
    else:
      raise CheckpointError(f"{src_path}: unknown checkpoint type (expected a HuggingFace "
                            "folder, a fair-esm .pt, a .bin or a .safetensors file)")
    default_name = src_path.name.split(".")[0]
    source = str(src_path)
    if hf_config is None and override is None:
      hf_config = _infer_fair_config(tensors, src_path)
  elif re.fullmatch(r"[\w.-]+/[\w.-]+", str(src)) and not str(src).startswith("."):
    folder = _download(str(src))
    hf_config, tensors, what = read_hf_folder(folder)
    default_name = str(src).split("/")[-1]
    source = f"{src} (HuggingFace hub, {what})"
  else:
    raise CheckpointError(f"{src}: no such file or folder (nor a HuggingFace model id)")

  if override is not None:
    hf_config = {**(hf_config or {}), **override}
  config = ESM2Config.from_hf(hf_config, name=name or default_name)
  flat, unused, how = hf_to_params(config, tensors, source)
  check_finite(flat, source)
  try:
    save_converted(out_dir, config, flat)
  except OSError as e:
    raise CheckpointError(f"--out {out_dir}: cannot be written ({e.strerror or e})") from None
  return ConversionReport(
      source=source, out_dir=str(out_dir), name=config.name, num_layers=config.num_layers,
      hidden_size=config.hidden_size, num_params=int(sum(a.size for a in flat.values())),
      used=len(tensors) - len(unused), unused=unused, inv_freq=how,
      fingerprint=read_fingerprint(out_dir) or "")
