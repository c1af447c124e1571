"""`jaxgeo embed`: per-residue language-model embeddings of many sequences into a store.

    jaxgeo embed --model DIR|unirep1900 (--fasta F | --structures DIR | --config NAME) [--store S]

The computation is the library (`jaxgeo.lm.embed`); this verb reads the inputs: a FASTA file,
every chain of a folder of structures, or exactly the sequences an experiment's task reads
(`--config`: a row name of `jaxgeo.rows` or a config file).

Compiled batch shapes are kept in a persistent JAX compilation cache (`jaxgeo.compile_cache`),
so a second `jaxgeo embed` in a new process skips XLA compilation: `--compile-cache DIR`, else
$JAXGEO_JAX_CACHE, else `.jax_cache` inside the store; `--no-compile-cache` turns it off.
"""
from __future__ import annotations

import argparse
import sys


def config_sequences(config_name: str, overrides: list[str]):
  """-> ([(name, sequence)], config) for the sequences an experiment's task reads."""
  from jaxgeo import config as config_lib
  from jaxgeo import rows
  from jaxgeo.errors import DataError
  config = config_lib.apply_overrides(rows.resolve(config_name), overrides)
  task, options, inputs = config_lib.task_setup(config, with_lm=False)
  sequences = task.sequences(options, inputs)
  if not sequences:
    raise DataError(f"--config {config_name}: task {config.task.name!r} cannot list its "
                    "sequences; use --fasta or --structures")
  return [(f"{config.name}:{i}", seq) for i, seq in enumerate(sequences)], config


def run(args: argparse.Namespace) -> int:
  from jaxgeo import compile_cache, parallel
  from jaxgeo.errors import DataError
  from jaxgeo.lm import embed
  from jaxgeo.lm.store import EmbeddingStore
  if parallel.initialize():   # a multi-host launch: each process embeds its share
    print(parallel.process_info().describe(), file=sys.stderr, flush=True)
  config = None
  if args.fasta:
    records = embed.read_fasta(args.fasta)
  elif args.structures:
    records = embed.read_structures(args.structures)
  else:
    records, config = config_sequences(args.config, args.set or [])
  if args.store is None:
    if config is None:
      raise DataError("--store is required with --fasta / --structures")
    from jaxgeo import config as config_lib
    args.store = str(config_lib.store_path(config))
  if args.layers is None and config is not None:
    args.layers = [int(config.lm.layer)]
  store = EmbeddingStore(args.store)   # before the cache folder inside it
  with compile_cache.using(args.compile_cache, default=compile_cache.default_dir(store.path),
                           enabled=args.compile_cache_enabled):
    embedder = embed.get_embedder(args.model, args.dtype, devices=args.devices,
                                  model_parallel=args.model_parallel)
    result = embed.embed_sequences(
        embedder, records, store, layers=args.layers, store_dtype=args.store_dtype,
        max_tokens=args.max_tokens, overlap=args.overlap, max_residues=args.max_residues,
        progress=not args.no_progress)
  for note in result.notes:
    print(note, file=sys.stderr)
  print(result.summary())
  return 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "embed", help="per-residue language-model embeddings into an embedding store",
      description="Embeds every sequence of a FASTA file, or every chain of the structure files "
      "in a folder (each chain separately), or the sequences an experiment reads, with ESM-2 "
      "(a `jaxgeo convert-esm` folder) or UniRep (unirep64/256/1900, offline), and writes one "
      "[L, D] array per (model, layer, sequence) into the store. Re-running skips what is "
      "there (after checking it: damaged entries are recomputed). Sequences longer than the "
      "model's context are embedded in overlapping windows averaged where they overlap. "
      "Length buckets are chosen for the data at hand (padding against compilations), and "
      "compiled shapes are kept in a persistent compilation cache (STORE/.jax_cache by "
      "default), so a second run in a new process compiles nothing it has seen.")
  p.add_argument("--model", required=True,
                 help="convert-esm output folder, or unirep64 / unirep256 / unirep1900")
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--fasta", help="FASTA file of sequences")
  src.add_argument("--structures", help="folder of structure files (.pdb, .cif, optionally .gz); "
                   "each chain is embedded separately")
  src.add_argument("--config", help="an experiment (a row name, see `./launch.sh --list`, or a "
                   "config file): embed exactly the sequences its task reads, into its store "
                   "(lm.store) at its layer (lm.layer) unless --store / --layers say otherwise")
  p.add_argument("--set", action="append", metavar="KEY=VALUE",
                 help="with --config: override a config value (repeatable)")
  p.add_argument("--store", default=None,
                 help="embedding store folder (created if absent; an existing folder must be a "
                 "store or empty); with --config default lm.store")
  p.add_argument("--layers", type=int, nargs="+", default=None,
                 help="layers to keep (default: the last; ESM-2: 0..num_layers, 0 = embeddings)")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="compute precision of ESM-2's matmuls (float32 accumulation; LayerNorm, "
                 "softmax and the residual stream stay float32): bfloat16 runs faster where "
                 "the hardware has bfloat16 matrix units (GPU, TPU, CPUs with AMX: 1.7-2x on "
                 "the benchmark CPU), hidden states within about 2%% of float32's")
  p.add_argument("--store-dtype", choices=("float32", "float16"), default="float32",
                 help="precision of the arrays on disk")
  p.add_argument("--max-tokens", type=int, default=None,
                 help="tokens per batch (rows x padded length); default per data-parallel "
                 "device: ESM-2 4096 on CPU (faster per token there), 8192 on GPU / TPU; "
                 "UniRep 16384")
  p.add_argument("--max-residues", type=int, default=None,
                 help="window size for long sequences (default: the model's context, 1022)")
  p.add_argument("--overlap", type=int, default=256,
                 help="minimum overlap of consecutive windows of a long sequence")
  p.add_argument("--devices", type=int, default=0,
                 help="local devices to spread each batch over (default 0: all of them); "
                 "in a multi-host launch every process takes its share of the sequences")
  p.add_argument("--model-parallel", type=int, default=1,
                 help="ESM-2: split the parameters over this many of the devices (for 3B / "
                 "15B models larger than one device's memory); must divide --devices")
  cache = p.add_mutually_exclusive_group()
  cache.add_argument("--compile-cache", metavar="DIR", default=None,
                     help="persistent JAX compilation cache: every batch shape compiled once "
                     "is kept there and read back by later runs in any process (default: "
                     "$JAXGEO_JAX_CACHE, else STORE/.jax_cache)")
  cache.add_argument("--no-compile-cache", dest="compile_cache_enabled", action="store_false",
                     default=True, help="no persistent compilation cache (nothing is read or "
                     "written)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=run)
