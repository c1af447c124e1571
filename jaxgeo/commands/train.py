"""`jaxgeo train`: run an experiment (a row of `jaxgeo rows`, or a config file).

  jaxgeo train --config NAME|FILE [--set key=value ...] [--run-dir DIR]
  jaxgeo train --run-dir DIR                      resume a run with its saved config
  jaxgeo train --config ... --check-env           check the environment first (launch.sh)
  jaxgeo train --config ... --check-only          only check the environment

`--check-env` checks what the experiment needs (JAX devices, the config, the task's data
files, the embedding store and its entries for the task's sequences, a writable run folder
and compilation cache), prints one line per check and a clear message for each missing
piece, and exits with status 2 when something is missing.

Compiled steps are kept in a persistent JAX compilation cache (`jaxgeo.compile_cache`):
`--compile-cache DIR`, else $JAXGEO_JAX_CACHE, else `.jax_cache` in the runs root (beside the
run folders); `--no-compile-cache` turns it off.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "train", help="train an experiment config (resumes an existing run folder)",
      description="Trains an experiment (a row name of `jaxgeo rows`, or a config file) into "
      "a run folder (default runs/NAME-<timestamp>): resolved config, per-epoch JSONL log, "
      "best and last checkpoints, final test metrics. Re-running on an existing run folder "
      "resumes it.")
  p.add_argument("--config", default=None,
                 help="experiment: a row name (`jaxgeo rows`), a config file (.py with "
                 "get_config()), or a run's config.json")
  p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
  p.add_argument("--run-dir", default=None,
                 help="run folder (default: $JAXGEO_RUNS or runs/, then NAME-<timestamp>); "
                 "an existing one resumes")
  p.add_argument("--check-env", action="store_true",
                 help="check devices, data and embedding store first; exit 2 if a piece is "
                 "missing")
  p.add_argument("--check-only", action="store_true", help="only check the environment")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  cache = p.add_mutually_exclusive_group()
  cache.add_argument("--compile-cache", metavar="DIR", default=None,
                     help="persistent JAX compilation cache: compiled train/eval steps (and "
                     "language-model shapes) are kept there and reused by the next run in any "
                     "process (default: $JAXGEO_JAX_CACHE, else .jax_cache in the runs root, "
                     "beside the run folders)")
  cache.add_argument("--no-compile-cache", dest="compile_cache_enabled", action="store_false",
                     default=True, help="no persistent compilation cache (nothing is read or "
                     "written)")
  embed = p.add_mutually_exclusive_group()
  embed.add_argument("--embed-missing", dest="embed", action="store_true", default=True,
                     help="with a fused network: first embed the task's sequences the store "
                     "lacks with the run's language model when it is at hand (unirep*, or "
                     "the convert-esm folder the store records; the default)")
  embed.add_argument("--no-embed", dest="embed", action="store_false",
                     help="never embed; a missing sequence is an error naming `jaxgeo embed`")
  p.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)
  p.set_defaults(func=run_train)


def _load(args: argparse.Namespace):
  from jaxgeo import config as config_lib
  from jaxgeo.errors import ConfigError
  if args.config is None:
    if args.run_dir is None:
      raise ConfigError("train: pass --config NAME (a row of `jaxgeo rows`) or a config file (or --run-dir of a "
                        "run to resume)")
    saved = pathlib.Path(args.run_dir) / "config.json"
    if not saved.exists():
      raise ConfigError(f"--run-dir {args.run_dir}: has no config.json; pass --config")
    config = config_lib.from_json(saved)
  else:
    from jaxgeo import rows
    config = rows.resolve(args.config)
  # Checked here, before any sequence is embedded or file is read.
  return config_lib.validate(config_lib.apply_overrides(config, args.overrides))


def run_train(args: argparse.Namespace) -> int:
  config = _load(args)
  from jaxgeo import train
  run_dir = pathlib.Path(args.run_dir) if args.run_dir else train.default_run_dir(config)
  from jaxgeo import compile_cache
  train.setup_jax(getattr(args, "compile_cache", None),
                  default_cache=compile_cache.default_dir(run_dir.parent),
                  compile_cache_enabled=getattr(args, "compile_cache_enabled", True),
                  cpu_devices=train.cpu_device_count(config))
  if args.check_env or args.check_only:
    missing = check_environment(config, run_dir)
    if missing:
      print(f"jaxgeo train: {len(missing)} missing piece(s) for {config.name}:",
            file=sys.stderr)
      for line in missing:
        print(f"  - {line}", file=sys.stderr)
      return 2
    if args.check_only:
      return 0
  if args.embed and not (run_dir / train.RESULT_FILE).exists():
    _embed_missing(config, progress=not args.no_progress)
  result = train.train(config, run_dir, progress=not args.no_progress,
                       stop_after_epochs=args.stop_after_epochs,
                       echo=None if not args.no_progress else print)
  return 0 if result is not None or args.stop_after_epochs is not None else 1


def _embed_missing(config, progress: bool = True) -> None:
  """Embeds the task's sequences the store lacks when the language model is at hand (tasks
  that cannot list their sequences cheaply are left to the loader's own error)."""
  from jaxgeo import config as config_lib
  from jaxgeo.commands.predict import embed_missing
  from jaxgeo.lm.store import EmbeddingStore
  if not config_lib.uses_lm(config):
    return
  model = str(config.lm.model)
  store_dir = config_lib.store_path(config)
  source = (EmbeddingStore(store_dir, create=False).source(model)
            if EmbeddingStore.is_store(store_dir) else None) or model
  if not (source.startswith("unirep") or pathlib.Path(source).is_dir()):
    return   # not at hand: the loader names the `jaxgeo embed` command
  task, options, inputs = config_lib.task_setup(config, with_lm=False)
  sequences = task.sequences(options, inputs)
  if sequences:
    embed_missing(config, sequences, progress=progress)


def _writable(folder: pathlib.Path) -> str | None:
  """None when `folder` (or its nearest existing parent) is writable, else the reason."""
  probe = folder
  while not probe.exists() and probe != probe.parent:
    probe = probe.parent
  if not os.access(probe, os.W_OK):
    return f"{probe} is not writable"
  return None


def check_environment(config, run_dir: pathlib.Path, echo=print) -> list[str]:
  """Checks what the experiment needs; prints one line per check.
  -> a message per missing piece (empty when all is well)."""
  from jaxgeo import config as config_lib
  from jaxgeo.errors import JaxgeoError
  missing: list[str] = []

  def report(ok: bool, what: str, detail: str = "") -> None:
    echo(f"check-env: {'ok     ' if ok else 'MISSING'} {what}{': ' + detail if detail else ''}")

  # JAX and its devices.
  try:
    import jax
    devices = jax.devices()
    kinds = sorted({d.platform for d in devices})
    report(True, "jax devices", f"jax {jax.__version__}, {len(devices)} x {'/'.join(kinds)} "
           f"({', '.join(str(d) for d in devices[:4])}{' ...' if len(devices) > 4 else ''})")
    if kinds == ["cpu"]:
      echo("check-env: note    no GPU/TPU visible: training runs on the CPU (install "
           "jax[cuda12]==0.10.2 or jax[tpu] for an accelerator)")
  except Exception as e:  # a broken install: say so, do not trace back
    report(False, "jax devices", str(e))
    missing.append(f"jax cannot list devices ({e}); reinstall with pip install -r "
                   "requirements.txt -e .")

  # The config and its task (language-model features are checked below, not opened here).
  try:
    task, options, inputs = config_lib.task_setup(config, with_lm=False)
    config_lib.validate(config, task)
    report(True, "config", f"{config.name}: task {task.name}, model "
           f"{config.model.network}/{config.model.fusion.mode}")
  except JaxgeoError as e:
    report(False, "config", str(e))
    missing.append(f"config: {e}")
    return missing

  # The task's data.
  paths = task.required_paths(options, inputs)
  if not paths:
    report(True, "data", "the task reads no files (generated data)")
  for path, what in paths:
    if pathlib.Path(path).exists():
      report(True, f"data {what}", str(path))
    else:
      report(False, f"data {what}", str(path))
      missing.append(f"data: {what} not found at {path} (data root "
                     f"{config_lib.data_root(config)}; set JAXGEO_DATA or --set data.root=...)")

  # The embedding store.
  if config_lib.uses_lm(config):
    missing += _check_store(config, task, options, inputs, run_dir, report)
  else:
    report(True, "embedding store", "not needed (fusion mode 'none')")

  # Where the run and the compilation cache (as `train.setup_jax` set it) are written.
  from jaxgeo import compile_cache
  cache_dir = compile_cache.current()
  for folder, what in ((run_dir, "run folder"),
                       (pathlib.Path(cache_dir) if cache_dir else None, "compilation cache")):
    if folder is None:
      echo("check-env: note    no persistent compilation cache (--no-compile-cache): every "
           "run compiles its steps again")
      continue
    reason = _writable(folder)
    report(reason is None, what, str(folder) + (f" ({reason})" if reason else ""))
    if reason:
      missing.append(f"{what}: {reason}")
  return missing


def _check_store(config, task, options, inputs, run_dir: pathlib.Path, report) -> list[str]:
  """The embedding-store part of `check_environment`. -> messages of missing pieces."""
  from jaxgeo import config as config_lib
  from jaxgeo import io
  from jaxgeo.errors import JaxgeoError
  from jaxgeo.lm.store import EmbeddingStore, embed_command
  store_dir = config_lib.store_path(config)
  model, layer = str(config.lm.model), int(config.lm.layer)
  store, source = None, None
  if EmbeddingStore.is_store(store_dir):
    try:
      store = EmbeddingStore(store_dir, create=False)
      source = store.source(model)
    except JaxgeoError as e:
      report(False, "embedding store", str(e))
      return [f"embedding store: {e}"]

  def how(what: str) -> str:
    return (f"compute them with `{embed_command(model, store_dir, layer, what, source)}`, or "
            "point lm.store (or JAXGEO_STORE) at a filled store")

  try:
    sequences = task.sequences(options, inputs)
  except JaxgeoError as e:
    sequences = None
    report(False, "task sequences", str(e))
  if sequences is None:
    count = 0 if store is None else len(store.entries(model))
    report(count > 0, "embedding store", f"{store_dir}: {count} entries of {model}")
    if count:
      return []
    return [f"embedding store: {store_dir} holds no {model} layer {layer} embeddings; "
            + how("--structures DIR (the task's structures)")]
  unique = sorted(set(sequences))
  absent = [s for s in unique if store is None or not store.has(model, layer, s)]
  if not absent:
    report(True, "embedding store", f"{store_dir}: all {len(unique)} sequences have {model} "
           f"layer {layer}")
    return []
  fasta = run_dir / "missing_sequences.fasta"
  io.atomic_write_text(fasta, "".join(f">seq{i}\n{s}\n" for i, s in enumerate(absent)))
  if store is None:
    where = (f"{store_dir} does not exist; the task's {len(unique)} sequences need {model} "
             f"layer {layer} embeddings")
  else:
    where = (f"{store_dir} lacks {model} layer {layer} embeddings of {len(absent)} of "
             f"{len(unique)} sequences")
  report(False, "embedding store", where)
  return [f"embedding store: {where} (fusion mode {config.model.fusion.mode!r}); the missing "
          f"sequences are in {fasta}: " + how(f"--fasta {fasta}")]
