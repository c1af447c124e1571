"""ESM-2 in Haiku vs transformers.EsmModel (random weights), and `convert-esm`.

The conversion goes through the files users have: `save_pretrained` (safetensors, sharded
safetensors), a `pytorch_model.bin`, a fair-esm `.pt`, then `jaxgeo convert-esm`, then
`esm2.load_pretrained`.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from jaxgeo.cli import main as cli_main  # noqa: E402
from jaxgeo.errors import CheckpointError, ConfigError  # noqa: E402
from jaxgeo.lm import convert, esm2, tokenizer  # noqa: E402
from conftest import jaxpr_equations  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_ESM2 = pathlib.Path(os.environ.get("JAXGEO_SHARED_DATA", REPO.parent / "shared" / "data")) / "esm2"

# facebook/esm2_t6_8M_UR50D's config.json (used when ../shared/data/esm2 is absent).
ESM2_8M_CONFIG = {
    "_name_or_path": "facebook/esm2_t6_8M_UR50D", "architectures": ["EsmForMaskedLM"],
    "attention_probs_dropout_prob": 0.0, "classifier_dropout": None,
    "emb_layer_norm_before": False, "esmfold_config": None, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 320, "initializer_range": 0.02,
    "intermediate_size": 1280, "is_folding_model": False, "layer_norm_eps": 1e-05,
    "mask_token_id": 32, "max_position_embeddings": 1026, "model_type": "esm",
    "num_attention_heads": 20, "num_hidden_layers": 6, "pad_token_id": 1,
    "position_embedding_type": "rotary", "token_dropout": True, "torch_dtype": "float32",
    "use_cache": True, "vocab_list": None, "vocab_size": 33,
}
TINY = dict(vocab_size=33, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=64, position_embedding_type="rotary", token_dropout=True,
            mask_token_id=32, pad_token_id=1, emb_layer_norm_before=False,
            max_position_embeddings=1026, layer_norm_eps=1e-5)
# Different lengths (padded batch), the rare letters, and a <mask> (token-dropout rescaling).
SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MKV", "ACDEFGHIKLMNPQRSTVWYXBZUO",
             "MKT<mask>LLILAVAAALA", "GS"]


def _randomize(model, scale: float) -> None:
  """Random weights, LayerNorms included (default init leaves them at 1/0)."""
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if "LayerNorm" in name or "layer_norm" in name:
        p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
      else:
        p.copy_(scale * noise)


def _hf_model(config: dict, scale: float):
  cfg = transformers.EsmConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
  model = transformers.EsmForMaskedLM(cfg).eval()
  _randomize(model, scale)
  return model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
  """(HF folder, torch EsmForMaskedLM) of a tiny random ESM-2."""
  folder = tmp_path_factory.mktemp("hf_tiny")
  model = _hf_model(TINY, scale=0.2)
  model.save_pretrained(folder)
  return folder, model


@pytest.fixture(scope="session")
def tiny_converted(tiny, tmp_path_factory):
  out = tmp_path_factory.mktemp("tiny_converted")
  report = convert.convert(tiny[0], out)
  return out, report


@pytest.fixture(scope="session")
def esm2_8m(tmp_path_factory):
  """(converted folder, torch model) of esm2_t6_8M_UR50D's config with random weights,
  converted with the CLI from a save_pretrained folder."""
  cfg_file = SHARED_ESM2 / "esm2_t6_8M_UR50D" / "config.json"
  config = json.loads(cfg_file.read_text()) if cfg_file.is_file() else dict(ESM2_8M_CONFIG)
  model = _hf_model(config, scale=0.05)
  src = tmp_path_factory.mktemp("hf_8m") / "esm2_t6_8M_UR50D"
  model.save_pretrained(src)
  out = tmp_path_factory.mktemp("esm2_8m_converted")
  assert cli_main(["convert-esm", str(src), "--out", str(out)]) == 0
  return out, model


def _torch_hidden(model, tokens, mask):
  with torch.no_grad():
    out = model.esm(torch.tensor(tokens, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long), output_hidden_states=True)
  return [h.numpy() for h in out.hidden_states]


def _jax_hidden(folder, tokens, layers, dtype="float32", attention_impl="auto"):
  import jax
  import jax.numpy as jnp
  config, params = esm2.load_pretrained(folder)
  fwd = esm2.make_forward(config, layers, compute_dtype=getattr(jnp, dtype),
                          attention_impl=attention_impl)
  return {l: np.asarray(v) for l, v in jax.jit(fwd.apply)(params, tokens).items()}


def _check_parity(folder, model, n_layers, attention_impl="auto"):
  tokens, mask = tokenizer.batch_encode(SEQUENCES)
  ref = _torch_hidden(model, tokens, mask)
  assert len(ref) == n_layers + 1
  ours = _jax_hidden(folder, tokens, range(n_layers + 1), attention_impl=attention_impl)
  for layer in range(n_layers + 1):
    diff = np.abs(ours[layer][mask] - ref[layer][mask]).max()
    assert diff <= 1e-4, f"layer {layer}: max abs diff {diff}"
  ours16 = _jax_hidden(folder, tokens, range(n_layers + 1), dtype="bfloat16",
                       attention_impl=attention_impl)
  for layer in range(n_layers + 1):
    a, b = ours16[layer][mask], ref[layer][mask]
    rel = np.linalg.norm(a - b) / np.linalg.norm(b)
    assert rel <= 2e-2, f"bfloat16 layer {layer}: relative error {rel}"


def test_tiny_parity_every_layer(tiny, tiny_converted):
  _check_parity(tiny_converted[0], tiny[1], TINY["num_hidden_layers"])


def test_esm2_8m_config_parity(esm2_8m):
  _check_parity(esm2_8m[0], esm2_8m[1], 6)


@pytest.mark.parametrize("impl", ["chunked", "xla"])
def test_tiny_parity_each_attention_impl(tiny, tiny_converted, impl):
  _check_parity(tiny_converted[0], tiny[1], TINY["num_hidden_layers"], attention_impl=impl)


def test_attention_impls_agree(esm2_8m, monkeypatch):
  """jax.nn.dot_product_attention (XLA) and the chunked loop give the same hidden states, in
  float32 and bfloat16, with the chunked loop taking its lax.map branch (4 KiB chunks)."""
  tokens, mask = tokenizer.batch_encode(SEQUENCES)
  for dtype, atol in (("float32", 2e-5), ("bfloat16", None)):
    xla = _jax_hidden(esm2_8m[0], tokens, [3, 6], dtype, attention_impl="xla")
    whole = _jax_hidden(esm2_8m[0], tokens, [3, 6], dtype, attention_impl="chunked")
    with monkeypatch.context() as m:
      m.setattr(esm2, "ATTENTION_CHUNK_BYTES", 4096)
      chunked = _jax_hidden(esm2_8m[0], tokens, [3, 6], dtype, attention_impl="chunked")
    for layer in (3, 6):
      a, b, c = xla[layer][mask], whole[layer][mask], chunked[layer][mask]
      if atol is not None:
        np.testing.assert_allclose(a, b, atol=atol, err_msg=f"{dtype} layer {layer}")
        np.testing.assert_allclose(c, b, atol=atol, err_msg=f"{dtype} layer {layer}")
      else:  # bfloat16: the two round the softmax at different points
        for x in (a, c):
          rel = np.linalg.norm(x - b) / np.linalg.norm(b)
          assert rel <= 1e-2, f"{dtype} layer {layer}: relative difference {rel}"


@pytest.mark.parametrize("dh", [16, 24, 64])
def test_bfloat16_row_sums_from_the_value_product(dh, monkeypatch):
  """From ROW_SUMS_BY_PRODUCT_MIN_KEYS keys on, bfloat16 attention takes its softmax row sums
  from the value product over a column of ones: the result is softmax(q k^T + bias) v in
  float64 within bfloat16 rounding, masked keys get no weight, a row of padding keys stays
  finite, and it agrees with the separate row-sum pass (forced by raising the threshold) as
  closely as that pass agrees with float64."""
  import jax.numpy as jnp
  t = esm2.ROW_SUMS_BY_PRODUCT_MIN_KEYS
  rng = np.random.default_rng(dh)
  q, k, v = (rng.normal(size=(3, t, dh)) for _ in range(3))
  q *= 2.0 / np.sqrt(dh)
  bias = np.zeros((3, 1, t))
  bias[1, 0, t // 3:] = -1e9                       # row 1: only its first third are keys
  logits = q @ np.swapaxes(k, -1, -2) + bias
  w = np.exp(logits - logits.max(-1, keepdims=True))
  want = (w / w.sum(-1, keepdims=True)) @ v
  bf = lambda a: jnp.asarray(a, jnp.bfloat16)
  args = (bf(q), bf(k), bf(v), jnp.asarray(bias, jnp.float32))
  by_product = np.asarray(esm2._attention_core(*args))
  assert by_product.shape == (3, t, dh) and by_product.dtype == np.float32
  with monkeypatch.context() as m:
    m.setattr(esm2, "ROW_SUMS_BY_PRODUCT_MIN_KEYS", t + 1)
    separate = np.asarray(esm2._attention_core(*args))
  scale = np.abs(want).max()
  err_product = np.abs(by_product - want).max() / scale
  err_separate = np.abs(separate - want).max() / scale
  assert err_product <= 2e-2, err_product
  assert err_product <= 2 * err_separate + 1e-3, (err_product, err_separate)
  # Masked keys: changing their values changes nothing.
  v2 = v.copy()
  v2[1, t // 3:] = 100.0
  again = np.asarray(esm2._attention_core(args[0], args[1], bf(v2), args[3]))
  np.testing.assert_array_equal(again[1], by_product[1])
  # A whole row of padding keys (the embedder's padding rows): finite, as the separate pass.
  pad = args[3].at[2].set(-1e9)
  whole = np.asarray(esm2._attention_core(args[0], args[1], args[2], pad))
  assert np.isfinite(whole).all()
  with monkeypatch.context() as m:
    m.setattr(esm2, "ROW_SUMS_BY_PRODUCT_MIN_KEYS", t + 1)
    whole_separate = np.asarray(esm2._attention_core(args[0], args[1], args[2], pad))
  np.testing.assert_allclose(whole[2], whole_separate[2], atol=2e-2 * scale)
  # float32 keeps the separate pass: exact softmax within float32 rounding.
  f32 = np.asarray(esm2._attention_core(*(jnp.asarray(a, jnp.float32) for a in (q, k, v, bias))))
  np.testing.assert_allclose(f32, want, atol=2e-5 * scale)


@pytest.mark.parametrize("impl", ["chunked", "xla", "cudnn"])
def test_padding_is_masked(tiny_converted, impl):
  """Appending padding (to the batch's length, and whole padding rows) changes no real
  token's output; "cudnn" falls back to XLA where cuDNN is absent."""
  tokens, mask = tokenizer.batch_encode(SEQUENCES)
  t = tokens.shape[1]
  padded = np.full((tokens.shape[0] + 1, t + 37), tokenizer.PAD_ID, tokens.dtype)
  padded[:-1, :t] = tokens
  short = _jax_hidden(tiny_converted[0], tokens, range(4), attention_impl=impl)
  long = _jax_hidden(tiny_converted[0], padded, range(4), attention_impl=impl)
  for layer in range(4):
    np.testing.assert_allclose(long[layer][:-1, :t][mask], short[layer][mask], atol=1e-5,
                               err_msg=f"layer {layer}")
    assert np.isfinite(long[layer]).all()


def test_cudnn_attention_on_gpu():
  """On a GPU, attention_impl="cudnn" compiles to cuDNN's fused attention (no silent fallback
  to XLA) and, in bfloat16, gives XLA's hidden states on real tokens, with padding at the end
  of rows and a whole padding row (ESM-2 8M config, random weights). Skipped without a GPU:
  run on one with `python -m pytest -n 0 tests/test_lm_esm2.py -k cudnn_attention_on_gpu`."""
  import jax
  import jax.numpy as jnp
  if jax.default_backend() != "gpu":
    pytest.skip("needs a GPU (cuDNN)")
  config = esm2.ESM2Config.from_hf(dict(ESM2_8M_CONFIG), name="esm2_t6_8M_UR50D")
  params = esm2.init_params(config, seed=0)
  tokens, mask = tokenizer.batch_encode(SEQUENCES)
  t = tokens.shape[1]
  padded = np.full((tokens.shape[0] + 1, t + 37), tokenizer.PAD_ID, tokens.dtype)
  padded[:-1, :t] = tokens
  out = {}
  for name, impl, batch in (("cudnn", "cudnn", padded), ("xla", "xla", padded),
                            ("cudnn_short", "cudnn", tokens)):
    fwd = esm2.make_forward(config, [3, 6], compute_dtype=jnp.bfloat16, attention_impl=impl)
    compiled = jax.jit(fwd.apply).lower(params, batch).compile()
    if impl == "cudnn":
      assert "__cudnn$fmha" in compiled.as_text(), "cuDNN refused the inputs (fell back to XLA)"
    out[name] = {l: np.asarray(v, np.float32) for l, v in compiled(params, batch).items()}
  for layer in (3, 6):
    assert np.isfinite(out["cudnn"][layer]).all()
    ref = out["xla"][layer][:-1, :t][mask]
    for other in (out["cudnn"][layer][:-1, :t][mask], out["cudnn_short"][layer][mask]):
      rel = np.linalg.norm(other - ref) / np.linalg.norm(ref)
      assert rel <= 1e-2, f"layer {layer}: relative difference {rel}"


@pytest.mark.parametrize("impl", ["chunked", "xla"])
def test_float32_forward_asks_for_full_float32_matmuls(impl):
  """Every matmul of a float32 forward is traced at HIGHEST precision (no TF32 on GPUs, no
  bfloat16 passes on TPUs, as transformers' float32 model computes); a bfloat16 forward's
  are not forced to it."""
  import jax
  import jax.numpy as jnp
  config = esm2.ESM2Config.from_hf(TINY, name="tiny")
  params = esm2.init_params(config)
  tokens = jnp.asarray(tokenizer.batch_encode(SEQUENCES[:2])[0])

  def precisions(dtype):
    fwd = esm2.make_forward(config, compute_dtype=dtype, attention_impl=impl)
    with jax.default_matmul_precision("default"):   # XLA's default around the call (the suite
      jaxpr = jax.make_jaxpr(fwd.apply)(params, tokens).jaxpr   # sets float32: conftest.py)
    return [eqn.params["precision"] for eqn in jaxpr_equations(jaxpr)
            if eqn.primitive.name == "dot_general"]

  highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
  for dtype in (None, jnp.float32):
    found = precisions(dtype)
    # q/k/v, output, two feed-forward and the two attention products of the scanned block
    assert len(found) >= 6 and set(found) == {highest}, set(found)
  found = precisions(jnp.bfloat16)     # XLA's default (or the chunked path's bf16 algorithm)
  assert found and highest not in found, set(found)


def test_attention_impl_choice():
  import jax.numpy as jnp
  resolve = esm2.resolve_attention_impl
  assert resolve("auto", 64, jnp.float32, "cpu") == esm2.CPU_ATTENTION_IMPL
  assert resolve("auto", 64, jnp.bfloat16, "gpu") == "cudnn"
  assert resolve("auto", 64, jnp.float32, "gpu") == "xla"    # cuDNN flash: 16-bit only
  assert resolve("auto", 12, jnp.bfloat16, "gpu") == "xla"   # head size not a multiple of 8
  assert resolve("auto", 64, jnp.bfloat16, "tpu") == "xla"
  assert resolve("chunked", 64, jnp.bfloat16, "gpu") == "chunked"
  with pytest.raises(ConfigError, match="attention_impl"):
    resolve("flash", 64, jnp.float32, "cpu")
  with pytest.raises(ConfigError, match="attention_impl"):
    esm2.make_forward(esm2.ESM2Config.from_hf(TINY, name="tiny"), attention_impl="flash")


def test_requested_layers_subset_match_all_layers(tiny_converted):
  tokens, _ = tokenizer.batch_encode(SEQUENCES[:2])
  every = _jax_hidden(tiny_converted[0], tokens, range(4))
  some = _jax_hidden(tiny_converted[0], tokens, [1])
  last = _jax_hidden(tiny_converted[0], tokens, None)
  assert set(some) == {1} and set(last) == {3}
  np.testing.assert_allclose(some[1], every[1], atol=1e-6)
  np.testing.assert_allclose(last[3], every[3], atol=1e-6)


def test_report_lists_unused_tensors(tiny_converted):
  report = tiny_converted[1]
  assert any(n.startswith("lm_head.") for n in report.unused)
  assert any("contact_head" in n for n in report.unused)
  assert not any(".attention." in n for n in report.unused)
  assert "lm_head" in "\n".join(report.lines())
  config = esm2.load_config(tiny_converted[0])
  assert config.num_layers == 3 and config.max_residues == 1022


def _params(folder):
  return esm2.flatten_params(esm2.load_pretrained(folder)[1])


def _assert_same_params(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_sharded_bin_and_fair_esm_formats(tiny, tiny_converted, tmp_path):
  folder, model = tiny
  reference = _params(tiny_converted[0])
  # Sharded safetensors with an index file.
  sharded = tmp_path / "sharded"
  model.save_pretrained(sharded, max_shard_size="20KB")
  assert (sharded / "model.safetensors.index.json").is_file()
  convert.convert(sharded, tmp_path / "out_sharded")
  _assert_same_params(_params(tmp_path / "out_sharded"), reference)
  # pytorch_model.bin (torch state dict, current transformers names).
  binary = tmp_path / "bin"
  binary.mkdir()
  (binary / "config.json").write_text((folder / "config.json").read_text())
  torch.save(model.state_dict(), binary / "pytorch_model.bin")
  convert.convert(binary, tmp_path / "out_bin")
  _assert_same_params(_params(tmp_path / "out_bin"), reference)
  # fair-esm .pt: {"model": fair-esm names, "cfg": {"model": Namespace(...)}}.
  fair = {}
  for name, t in model.state_dict().items():
    name = name.removeprefix("esm.")
    for a, b in (("embeddings.word_embeddings", "embed_tokens"),
                 ("encoder.emb_layer_norm_after", "emb_layer_norm_after"),
                 ("attention.self.query", "self_attn.q_proj"),
                 ("attention.self.key", "self_attn.k_proj"),
                 ("attention.self.value", "self_attn.v_proj"),
                 ("attention.output.dense", "self_attn.out_proj"),
                 ("attention.LayerNorm", "self_attn_layer_norm"),
                 ("intermediate.dense", "fc1"), ("output.dense", "fc2"),
                 ("LayerNorm", "final_layer_norm"), ("encoder.layer.", "layers.")):
      name = name.replace(a, b)
    if name == "rotary_embeddings.inv_freq":
      for i in range(TINY["num_hidden_layers"]):
        # fair-esm's checkpoints name the rotary buffer `rot_emb` (not `rotary_emb`).
        fair[f"encoder.sentence_encoder.layers.{i}.self_attn.rot_emb.inv_freq"] = t
      continue
    prefix = "encoder." if name.startswith("lm_head") else "encoder.sentence_encoder."
    fair[prefix + name] = t
  cfg = argparse.Namespace(encoder_layers=3, encoder_embed_dim=32, encoder_attention_heads=4,
                           encoder_ffn_embed_dim=64, token_dropout=True)
  torch.save({"model": fair, "cfg": {"model": cfg}}, tmp_path / "esm2_tiny.pt")
  report = convert.convert(tmp_path / "esm2_tiny.pt", tmp_path / "out_pt")
  assert report.name == "esm2_tiny"
  _assert_same_params(_params(tmp_path / "out_pt"), reference)


def test_mismatches_are_clear_errors(tiny, tmp_path):
  folder, model = tiny
  config = json.loads((folder / "config.json").read_text())
  # Wrong hidden size: shape mismatches are listed with names.
  bad = tmp_path / "bad_shape"
  bad.mkdir()
  (bad / "model.safetensors").symlink_to(folder / "model.safetensors")
  (bad / "config.json").write_text(json.dumps({**config, "hidden_size": 48, "intermediate_size": 64}))
  with pytest.raises(CheckpointError, match=r"embeddings\.word_embeddings\.weight: shape \[33, 32\]"):
    convert.convert(bad, tmp_path / "o1")
  # Fewer layers in the config than in the checkpoint.
  (bad / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
  with pytest.raises(CheckpointError, match=r"layer\(s\) \[2\] beyond"):
    convert.convert(bad, tmp_path / "o2")
  # A missing tensor.
  from safetensors.numpy import save_file
  tensors = convert.read_safetensors(folder / "model.safetensors")
  del tensors["esm.encoder.layer.1.intermediate.dense.weight"]
  missing = tmp_path / "missing"
  missing.mkdir()
  save_file(tensors, str(missing / "model.safetensors"))
  (missing / "config.json").write_text(json.dumps(config))
  with pytest.raises(CheckpointError, match=r"missing encoder\.layer\.1\.intermediate\.dense\.weight"):
    convert.convert(missing, tmp_path / "o3")
  # Not ESM-2.
  (missing / "config.json").write_text(json.dumps({**config, "position_embedding_type": "absolute"}))
  with pytest.raises(ConfigError, match="rotary"):
    convert.convert(missing, tmp_path / "o4")
  # A converted folder whose params do not match its config.
  with pytest.raises(CheckpointError, match="no params.safetensors|no config.json"):
    esm2.load_pretrained(tmp_path)


def test_cli_convert_errors_exit_2(tmp_path, capsys):
  assert cli_main(["convert-esm", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
  assert "no such file or folder" in capsys.readouterr().err


def test_loading_converted_needs_neither_torch_nor_transformers(tiny_converted):
  code = ("import sys\n"
          "from jaxgeo.lm import esm2\n"
          f"config, params = esm2.load_pretrained({str(tiny_converted[0])!r})\n"
          "assert config.num_layers == 3, config\n"
          "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
          "assert not bad, bad\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_config_from_published_sizes():
  if not SHARED_ESM2.is_dir():
    pytest.skip(f"{SHARED_ESM2} absent")
  expected = {"esm2_t6_8M_UR50D": (6, 320, 20), "esm2_t12_35M_UR50D": (12, 480, 20),
              "esm2_t30_150M_UR50D": (30, 640, 20), "esm2_t33_650M_UR50D": (33, 1280, 20),
              "esm2_t36_3B_UR50D": (36, 2560, 40), "esm2_t48_15B_UR50D": (48, 5120, 40)}
  for name, (n, d, h) in expected.items():
    c = esm2.ESM2Config.from_hf(json.loads((SHARED_ESM2 / name / "config.json").read_text()))
    assert (c.num_layers, c.hidden_size, c.num_heads) == (n, d, h)
    assert c.name == name and c.intermediate_size == 4 * d
    shapes = esm2.param_shapes(c)
    assert shapes["esm2/layers/~/qkv_w"] == (n, d, 3 * d)


def test_safetensors_conversion_needs_no_torch(tiny, tiny_converted, tmp_path):
  code = ("import sys\n"
          "sys.modules['torch'] = None  # any import of torch fails\n"
          "from jaxgeo.lm import convert\n"
          f"convert.convert({str(tiny[0])!r}, {str(tmp_path / 'out')!r})\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
  assert esm2.is_converted(tmp_path / "out")
  _assert_same_params(_params(tmp_path / "out"), _params(tiny_converted[0]))


def test_model_id_offline_is_a_clear_error(tmp_path):
  env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
  r = subprocess.run([sys.executable, "-m", "jaxgeo", "convert-esm", "facebook/esm2_t6_8M_UR50D",
                      "--out", str(tmp_path / "o")], cwd=REPO, env=env, capture_output=True,
                     text=True, timeout=120)
  assert r.returncode == 2
  assert "facebook/esm2_t6_8M_UR50D" in r.stderr and "HuggingFace hub" in r.stderr
