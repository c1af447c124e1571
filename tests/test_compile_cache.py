"""The persistent compilation cache (`jaxgeo.compile_cache`): a second process reads what the
first compiled, `jaxgeo embed` uses it by default and `--no-compile-cache` writes nothing."""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from jaxgeo import compile_cache
from jaxgeo.lm import esm2

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY = esm2.ESM2Config(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64,
                       name="esm2_tiny_cache_test")

# Compiles a small jitted function with the cache at argv[1]; prints the counts.
_SCRIPT = """
import sys
import jax
import jax.numpy as jnp
from jaxgeo import compile_cache
compile_cache.enable(sys.argv[1], min_compile_secs=0.0)
with compile_cache.CompileCounter() as total, \\
    compile_cache.CompileCounter(fun_name="jit(layer)") as mine:
  def layer(x, w):
    return jnp.tanh(x @ w) @ w.T + jnp.sin(x)
  x = jnp.arange(64 * 48, dtype=jnp.float32).reshape(64, 48) / 1000
  w = jnp.ones((48, 32), jnp.float32) / 7
  jax.block_until_ready(jax.jit(layer)(x, w))
print("total", total.requests, total.cache_hits, total.compiled)
print("mine", mine.requests, mine.cache_hits, mine.compiled)
"""


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if k != compile_cache.ENV}
  env.update(JAX_PLATFORMS="cpu", **extra)
  return env


def _counts(stdout: str, label: str) -> tuple[int, int, int]:
  line = next(l for l in stdout.splitlines() if l.startswith(label + " "))
  return tuple(int(v) for v in line.split()[1:])


def test_second_process_compiles_nothing(tmp_path):
  cache = tmp_path / "cache"
  runs = [subprocess.run([sys.executable, "-c", _SCRIPT, str(cache)], cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=300) for _ in range(2)]
  for r in runs:
    assert r.returncode == 0, r.stderr
  first, second = (_counts(r.stdout, "mine") for r in runs)
  assert first[0] == 1 and first[1] == 0 and first[2] == 1      # compiled, nothing to read
  assert second[0] == 1 and second[1] == 1 and second[2] == 0   # read from the cache
  # With the threshold at 0 every computation of the process was cached.
  assert _counts(runs[1].stdout, "total")[2] == 0 < _counts(runs[0].stdout, "total")[2]
  assert any(cache.iterdir())


def test_resolve_precedence(tmp_path, monkeypatch):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  default = compile_cache.default_dir(tmp_path / "store")
  assert default == tmp_path / "store" / ".jax_cache"
  assert compile_cache.resolve(None, default) == default
  assert compile_cache.resolve(None, None) is None
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
  assert compile_cache.resolve(None, default) == tmp_path / "env"
  assert compile_cache.resolve(tmp_path / "flag", default) == tmp_path / "flag"
  assert compile_cache.resolve(tmp_path / "flag", default, enabled=False) is None


def test_using_restores_the_previous_cache(tmp_path):
  import jax
  before = jax.config.jax_compilation_cache_dir
  with compile_cache.using(tmp_path / "a") as folder:
    assert folder == str(tmp_path / "a") == compile_cache.current()
    assert (tmp_path / "a").is_dir()
  assert jax.config.jax_compilation_cache_dir == before
  with compile_cache.using(enabled=False) as folder:
    assert folder is None and compile_cache.current() is None
  assert jax.config.jax_compilation_cache_dir == before


def test_unwritable_folder_is_one_line(tmp_path):
  from jaxgeo.errors import ConfigError
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(ConfigError, match="--compile-cache .*cannot create"):
    compile_cache.enable(blocker / "cache")


def test_train_keeps_the_counter_importable():
  from jaxgeo import train
  assert train.CompileCounter is compile_cache.CompileCounter


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
  params = esm2.init_params(TINY, seed=2)
  out = tmp_path_factory.mktemp("tiny_esm2_cache")
  esm2.save_converted(out, TINY, esm2.flatten_params(params))
  return out


def _embed(model, fasta, store, *flags, env=None):
  cmd = [sys.executable, "-m", "jaxgeo", "embed", "--model", str(model), "--fasta", str(fasta),
         "--store", str(store), "--max-tokens", "256", "--no-progress", *flags]
  r = subprocess.run(cmd, cwd=REPO, env=env or _env(), capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr
  m = re.search(r"(\d+) compilation\(s\) for batch shapes", r.stdout)
  hits = re.search(r"\((\d+) read from the compilation cache\)", r.stdout)
  return int(m.group(1)), int(hits.group(1)) if hits else 0


def _fasta(path):
  rng = np.random.default_rng(7)
  letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
  seqs = ["".join(rng.choice(letters, size=int(n))) for n in (12, 30, 31, 55, 90, 140)]
  path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
  return path


def test_embed_second_process_reads_every_shape_from_the_cache(tmp_path, tiny_model):
  fasta = _fasta(tmp_path / "seqs.fasta")
  # Default folder: inside the store.
  shapes, hits = _embed(tiny_model, fasta, tmp_path / "store1")
  assert shapes > 0 and hits == 0
  default = tmp_path / "store1" / ".jax_cache"
  assert default.is_dir() and any(default.iterdir())
  # A new store (everything to compute again) reading the first run's cache: the same plan,
  # so every batch shape is read, none compiled.
  shapes2, hits2 = _embed(tiny_model, fasta, tmp_path / "store2", "--compile-cache",
                          str(default))
  assert shapes2 == shapes and hits2 == shapes
  # $JAXGEO_JAX_CACHE works as before.
  shapes3, hits3 = _embed(tiny_model, fasta, tmp_path / "store3",
                          env=_env(**{compile_cache.ENV: str(default)}))
  assert hits3 == shapes3 == shapes


def test_no_compile_cache_writes_nothing(tmp_path, tiny_model):
  fasta = _fasta(tmp_path / "seqs.fasta")
  env_cache = tmp_path / "env_cache"
  shapes, hits = _embed(tiny_model, fasta, tmp_path / "store", "--no-compile-cache",
                        env=_env(**{compile_cache.ENV: str(env_cache)}))
  assert shapes > 0 and hits == 0
  assert not (tmp_path / "store" / ".jax_cache").exists()
  assert not env_cache.exists() or not any(env_cache.iterdir())


def test_train_check_env_reports_the_cache_beside_the_runs(tmp_path, capsys, monkeypatch):
  from jaxgeo.cli import main as cli_main
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  run_dir = tmp_path / "runs" / "one"
  with compile_cache.using():   # in-process: restore the session's cache afterwards
    assert cli_main(["train", "--config", "position_demo", "--run-dir", str(run_dir),
                     "--check-only"]) == 0
    out = capsys.readouterr().out
    assert f"compilation cache: {tmp_path / 'runs' / '.jax_cache'}" in out
    assert cli_main(["train", "--config", "position_demo", "--run-dir", str(run_dir),
                     "--check-only", "--no-compile-cache"]) == 0
    assert "no persistent compilation cache" in capsys.readouterr().out
