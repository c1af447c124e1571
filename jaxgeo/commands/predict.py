"""`jaxgeo predict`: a trained run's predictions for structures nobody labelled.

    jaxgeo predict --model RUN_DIR (--structures DIR | FILE ...) --out OUT.csv [--pdb-out DIR]

Loads the run's saved config and best (or last) checkpoint, featurises each structure
exactly as the run did (the config's graph options and features; with a fused network the
run's language model and layer, from its embedding store) and writes one CSV row per
structure (graph tasks) or per residue (node tasks: file, chain, residue_number,
insertion_code, residue, score). `--pdb-out DIR` writes each PDB input again with the
per-residue score in the B-factor field (columns 61-66 of ATOM/HETATM lines; every other
byte of the input kept; atoms of residues without a score get 0.00). While the network runs,
each graph's rows are appended to OUT.csv.partial as soon as its batch has run (in the order
they finish); OUT.csv is written, in input order, at the end and the partial file removed, so
a run stopped by an error or a kill leaves what it had predicted there.

Sequences the store lacks are embedded first with the run's language model when it is at
hand (`unirep*`, or the `jaxgeo convert-esm` folder recorded in the store or given with
`--lm-source`); `--no-embed` turns that off and names the `jaxgeo embed` command instead.
Structures that cannot be read are listed at the end; the others are still predicted.
Graphs are batched as the run was (packed, fixed or balanced counts, `--batch-graphs` a batch
on average); on a host without GPU / TPU the CPU is split into devices as the run's `jaxgeo
train` split it (`--cpu-devices N` to choose) and batches are predicted data-parallel.

Tasks whose examples are single structures: `interface`, `csv`, `csv_residue` (whole file,
or `--chains`), `position` / `position_id` (each chain its own graph, as in training).
`embed_missing` is shared with `jaxgeo train --embed-missing`.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io as _io
import json
import pathlib
import sys
from collections.abc import Sequence

from jaxgeo.commands import add_cpu_devices_argument

STRUCTURE_SUFFIXES = (".pdb", ".pdb.gz", ".ent", ".ent.gz", ".cif", ".cif.gz", ".mmcif",
                      ".mmcif.gz")
# Tasks with single-structure examples -> how their outputs read (csv tasks say themselves).
OUTPUT_KINDS = {"interface": "binary", "position": "regression", "position_id": "multiclass"}
PER_CHAIN = ("position", "position_id")
DATASET_FILE = "dataset.json"   # the run's dataset info with its "stats" (see run_stats)
PARTIAL_SUFFIX = ".partial"     # OUT.csv.partial: rows written as each batch has run


# --- language-model features -------------------------------------------------------------------

def embed_missing(config, sequences: Sequence[str], *, embed: bool = True,
                  lm_source: str | None = None, store_path: str | None = None,
                  progress: bool = True, echo=print) -> int:
  """Makes sure the store holds the run's LM rows of `sequences`. -> how many were embedded.

  The missing ones are embedded with the run's language model when it is at hand (`unirep*`,
  or a convert-esm folder: `lm_source`, else the one the store records); otherwise (or with
  embed=False) raises DataError printing the `jaxgeo embed` command that fills the store.
  """
  from jaxgeo import config as config_lib
  from jaxgeo import io
  from jaxgeo.errors import DataError
  from jaxgeo.lm.store import EmbeddingStore, embed_command
  if not config_lib.uses_lm(config):
    return 0
  model, layer = str(config.lm.model), int(config.lm.layer)
  path = pathlib.Path(store_path) if store_path else config_lib.store_path(config)
  store = EmbeddingStore(path, create=False) if EmbeddingStore.is_store(path) else None
  unique = sorted(set(sequences))
  missing = [s for s in unique if store is None or not store.has(model, layer, s)]
  if not missing:
    return 0
  source = lm_source or (store.source(model) if store is not None else None)
  if source is None and model.startswith("unirep"):
    source = model
  at_hand = source is not None and (source.startswith("unirep")
                                    or pathlib.Path(source).is_dir())
  if not embed or not at_hand:
    fasta = pathlib.Path(path).parent / f"missing_{model}.fasta"
    io.atomic_write_text(fasta, "".join(f">seq{i}\n{s}\n" for i, s in enumerate(missing)))
    why = ("--no-embed" if not embed else
           f"the {model} weights are not at hand (pass --lm-source CONVERTED_DIR)")
    raise DataError(f"embedding store {path}: {len(missing)} of {len(unique)} sequences lack "
                    f"{model} layer {layer} embeddings ({why}); compute them with "
                    f"`{embed_command(model, path, layer, f'--fasta {fasta}', source)}`")
  from jaxgeo.lm import embed as embed_lib
  echo(f"embedding {len(missing)} sequence(s) the store lacks with {source} (layer {layer}) "
       f"into {path}")
  embedder = embed_lib.get_embedder(source)
  if embedder.name != model:
    raise DataError(f"--lm-source {source}: is model {embedder.name!r} but the run reads "
                    f"{model!r}")
  result = embed_lib.embed_sequences(
      embedder, [(f"seq{i}", s) for i, s in enumerate(missing)], EmbeddingStore(path),
      layers=[layer], progress=progress)
  echo(result.summary())
  return len(missing)


# --- inputs ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Item:
  """One graph to predict: the file, the protein it was built from, and its graph."""
  path: pathlib.Path
  protein: object
  graph: object


def input_files(structures: str | None, files: Sequence[str]) -> list[pathlib.Path]:
  """The structure files of `--structures DIR` or the FILE arguments."""
  from jaxgeo import io
  from jaxgeo.errors import DataError
  if structures:
    folder = io.input_folder(structures, f"--structures {structures}", DataError)
    out = sorted(p for p in folder.iterdir()
                 if p.is_file() and p.name.lower().endswith(STRUCTURE_SUFFIXES))
    if not out:
      raise DataError(f"--structures {structures}: no structure files "
                      f"({', '.join(STRUCTURE_SUFFIXES)})")
    return out
  if not files:
    raise DataError("predict: pass --structures DIR or structure FILE arguments")
  return [pathlib.Path(f) for f in files]


def read_proteins(task_name: str, paths: Sequence[pathlib.Path], chains: str | None,
                  progress: bool = True):
  """-> ([(path, protein)] (one per chain for per-chain tasks), [(path, cause)]): the cause
  without the path the error starts with (each listing names the path once)."""
  from tqdm.auto import tqdm
  from jaxgeo import structure
  from jaxgeo.errors import JaxgeoError
  read, failed = [], []
  for path in tqdm(paths, desc="read", unit="file", disable=not progress, leave=False):
    try:
      protein = structure.load_protein(path, chains or None)
    except JaxgeoError as e:
      failed.append((path, str(e).removeprefix(f"{path}: ")))
      continue
    if task_name in PER_CHAIN:
      from jaxgeo.tasks.position import chains_of
      read.extend((path, c) for c in chains_of(protein))
    else:
      read.append((path, protein))
  return read, failed


# --- the run -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Run:
  config: object
  task: object
  options: object
  model: object
  params: object
  stats: dict
  kind: str
  classes: tuple


def output_kind(task, options) -> tuple[str, tuple]:
  """("regression" | "binary" | "multiclass", class names) of a task's outputs."""
  from jaxgeo.errors import ConfigError
  if hasattr(task, "output_kind"):
    return task.output_kind(options), tuple(task.class_names(options))
  if task.name not in OUTPUT_KINDS:
    raise ConfigError(f"task {task.name!r}: predict handles tasks whose examples are single "
                      f"structures ({', '.join(sorted(OUTPUT_KINDS))}, csv, csv_residue)")
  kind = OUTPUT_KINDS[task.name]
  classes = tuple(str(i) for i in range(task.out_dim_for(options))) if kind == "multiclass" else ()
  return kind, classes


def load_run(run_dir: str | pathlib.Path, example, which: str = "best") -> Run:
  """The run's config, task, model and restored parameters (`example`: one graph to shape
  the parameter template)."""
  import jax
  from jaxgeo import batching, nets
  from jaxgeo import config as config_lib
  from jaxgeo import train
  run_dir = pathlib.Path(run_dir)
  config = run_config(run_dir)
  task, options, _ = config_lib.task_setup(config, with_lm=False)
  model = nets.make_model(config_lib.model_config(config))
  buckets = batching.choose_buckets([example], batch_graphs=1, max_buckets=1)
  batch = next(batching.batches([example], buckets, 1))
  params, _ = train.restore_params(
      config, lambda: model.init(jax.random.key(0), batch, is_training=True),
      run_dir / "checkpoints" / which)
  stats = run_stats(run_dir, task, options)
  kind, classes = output_kind(task, options)
  params = jax.tree_util.tree_map(lambda x: jax.device_put(jax.numpy.asarray(x)), params)
  return Run(config, task, options, model, params, stats, kind, classes)


def run_stats(run_dir: pathlib.Path, task, options) -> dict:
  """The stats the run's loss and predictions used: RUN_DIR/dataset.json's "stats" when the
  trainer wrote it, else recomputed without the training graphs (interface: pos_weight;
  csv: the training labels of the table; position: none)."""
  from jaxgeo.errors import DataError
  path = run_dir / DATASET_FILE
  if path.exists():
    try:
      stats = json.loads(path.read_text()).get("stats")
      if stats is not None:
        return {k: float(v) for k, v in stats.items()}
    except (OSError, ValueError, AttributeError, TypeError) as e:
      raise DataError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
  return {k: float(v) for k, v in task.stats(options, []).items()}


def run_config(run_dir: pathlib.Path):
  from jaxgeo import config as config_lib
  from jaxgeo.errors import ConfigError
  if not (run_dir / "config.json").exists():
    raise ConfigError(f"--model {run_dir}: not a run folder (no config.json)")
  return config_lib.from_json(run_dir / "config.json")


def predict_graphs(run: Run, graphs: Sequence, batch_graphs: int = 8, progress: bool = True,
                   on_result=None) -> list:
  """Raw outputs of the run's head for each graph: [N, out_dim] (node) or [out_dim]
  (`apply_batched`; `on_result(i, raw)` as each graph's batch has run)."""
  head = run.task.head
  # Every batch is padded (`batching`): the networks may skip the padding graph's work
  # (`nets.make_model`).
  forward = lambda p, b: run.model.apply(p, None, b, is_training=False, padded=True)[head]
  return apply_batched(forward, run.params, run.config, graphs, per_node=head == "node",
                       batch_graphs=batch_graphs, progress=progress, on_result=on_result)


def apply_batched(forward, params, config, graphs: Sequence, *, per_node: bool,
                  batch_graphs: int = 8, progress: bool = True, desc: str = "predict",
                  on_result=None) -> list:
  """`forward(params, padded batch)` of every graph: its rows [N, ...] of the node array
  `forward` returns (per_node) or its row [...] of the graph array. `on_result(i, value)`,
  when given, is called for graph i as soon as its batch has run (so that a caller can keep
  each result before the next batch: nothing computed is lost if a later one fails).

  Graphs are batched as the run of `config` was: packed to a node / edge budget of
  `batch_graphs` graphs a batch on average (budgets from these graphs), or fixed counts
  (balanced: dealt to about equal sizes, `batching.plan_balanced`).
  With several local devices (GPUs, or a CPU split into devices: `--cpu-devices`) in one
  process, each batch of `batch_graphs` graphs is cut into one slot a device
  (`parallel.global_batches`) over as many devices as divide `batch_graphs`."""
  import jax
  import numpy as np
  from tqdm.auto import tqdm
  from jaxgeo import batching, parallel, train, xla_options
  local = jax.local_devices() if jax.process_count() == 1 else jax.local_devices()[:1]
  slots = parallel.even_split(batch_graphs, len(local))
  t, graphs = config.train, list(graphs)
  packing = train.packing_of(config, graphs, batch_graphs // slots)
  balanced = train.is_balanced(config)
  buckets = batching.choose_buckets(graphs, batch_graphs=batch_graphs // slots,
                                    max_buckets=int(t.max_buckets if packing is None else
                                                    t.packing.buckets), packing=packing,
                                    balanced=balanced)
  if slots == 1:
    apply = jax.jit(forward)
    plan = (([np.asarray(apply(params, batch))], [index], [batch]) for batch, index in
            batching.batches(graphs, buckets, batch_graphs, return_indices=True,
                             packing=packing, balanced=balanced))
  else:
    from jax.sharding import PartitionSpec as P
    mesh = parallel.make_mesh(local[:slots])
    spec = P(parallel.DATA_AXIS)
    one_slot = lambda p, b: forward(p, parallel.slot(b, 0))[None]
    apply = jax.jit(jax.shard_map(one_slot, mesh=mesh, in_specs=(P(), spec), out_specs=spec),
                    compiler_options=xla_options.eval_step(local[0].platform, slots))
    params = parallel.replicate(params, mesh)
    plan = ((np.asarray(parallel.to_host(apply(params, parallel.shard_stacked(stacked, mesh)))),
             index, padded) for stacked, index, padded in
            parallel.global_batches(graphs, buckets, batch_graphs, slots, packing=packing,
                                    balanced=balanced))
  out: list = [None] * len(graphs)
  for values, indices, batches in tqdm(plan, desc=desc, unit="batch", disable=not progress,
                                       leave=False):
    for slot_values, index, batch in zip(values, indices, batches):
      if batch is None:         # an all-padding slot
        continue
      slot_values = np.asarray(slot_values, np.float32)
      offset = 0
      for k, i in enumerate(index):
        if per_node:
          n = int(batch.n_node[k])
          out[i] = slot_values[offset:offset + n]
          offset += n
        else:
          out[i] = slot_values[k]
        if on_result is not None:
          on_result(i, out[i])
  return out


def scores(run: Run, raw):
  """Raw head outputs [..., out_dim] -> (value [...], score [...], per-class probabilities
  [..., C] or None): regression value in the label's unit; binary logit and probability;
  multi-class argmax index and its probability."""
  import numpy as np
  raw = np.asarray(raw, np.float64)
  if run.kind == "regression":
    value = raw[..., 0]
    if "label_mean" in run.stats:
      value = value * run.stats["label_std"] + run.stats["label_mean"]
    return value, value, None
  if run.kind == "binary":
    logit = raw[..., 0]
    return logit, 1.0 / (1.0 + np.exp(-logit)), None
  z = raw - raw.max(axis=-1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
  return raw.argmax(axis=-1), p.max(axis=-1), p


# --- outputs -----------------------------------------------------------------------------------

def rows_for(run: Run, item: Item, raw) -> list[dict]:
  """The CSV rows of one predicted graph."""
  value, score, probs = scores(run, raw)
  if run.task.head == "graph":
    row = {"file": item.path.name, "chains": ",".join(item.protein.chains),
           "residues": len(item.protein)}
    row.update(_values(run, value, score, probs))
    return [row]
  p = item.protein
  out = []
  for i in range(len(p)):
    row = {"file": item.path.name, "chain": str(p.chain_id[i]),
           "residue_number": int(p.residue_number[i]),
           "insertion_code": str(p.insertion_code[i]).strip(), "residue": p.sequence[i]}
    row.update(_values(run, value[i], score[i], None if probs is None else probs[i]))
    out.append(row)
  return out


def _values(run: Run, value, score, probs) -> dict:
  if run.kind == "regression":
    return {"score": f"{float(value):.6g}"}
  if run.kind == "binary":
    return {"score": f"{float(score):.6g}", "logit": f"{float(value):.6g}"}
  out = {"score": f"{float(score):.6g}",
         "predicted": run.classes[int(value)] if run.classes else int(value)}
  for c, pc in zip(run.classes or range(len(probs)), probs):
    out[f"p_{c}"] = f"{float(pc):.6g}"
  return out


class PartialRows:
  """Each predicted graph's rows appended to `path` (a CSV, header from the first rows) as
  soon as they exist: what is left of a run that stops before its final CSV is written."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.graphs = 0
    self._file = None
    self._writer = None

  def add(self, rows: list[dict]) -> None:
    self.graphs += 1
    if not rows:
      return
    if self._file is None:
      self._file = open(self.path, "w", newline="")
      self._writer = csv.DictWriter(self._file, fieldnames=list(rows[0]), lineterminator="\n")
      self._writer.writeheader()
    self._writer.writerows(rows)
    self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def discard(self) -> None:
    self.close()
    self.path.unlink(missing_ok=True)


def write_csv(path: pathlib.Path, rows: list[dict]) -> None:
  from jaxgeo import io
  header = list(dict.fromkeys(k for r in rows for k in r)) if rows else ["file"]
  buf = _io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  io.atomic_write_text(path, buf.getvalue())


def bfactor_pdb(text: str, scores_by_residue: dict[tuple[str, int, str], float]) -> str:
  """PDB text with columns 61-66 (B-factor) of ATOM/HETATM lines set to the residue's score
  ("%6.2f", clipped to -99.99..999.99; 0.00 for residues without one); every other column as
  it was."""
  out = []
  for line in text.splitlines(keepends=True):
    if line.startswith(("ATOM  ", "HETATM")):
      body = line.rstrip("\r\n")
      end = line[len(body):]
      try:
        key = (body[21], int(body[22:26]), body[26:27].strip())
      except ValueError:
        key = None
      value = scores_by_residue.get(key, 0.0)
      field = f"{min(max(value, -99.99), 999.99):6.2f}"
      body = body.ljust(66)
      line = body[:60] + field + body[66:] + end
    out.append(line)
  return "".join(out)


def write_bfactor_pdbs(folder: pathlib.Path, run: Run, items: Sequence[Item], raw: Sequence
                       ) -> list[tuple[pathlib.Path, str]]:
  """One PDB per input file with the scores as B-factors. -> [(path, why)] not written."""
  from jaxgeo import io
  from jaxgeo.errors import StructureError
  if run.task.head != "node":
    return [(item.path, "graph-level task: no per-residue scores") for item in items[:1]]
  by_file: dict[pathlib.Path, dict] = {}
  for item, r in zip(items, raw):
    _, score, _ = scores(run, r)
    p = item.protein
    table = by_file.setdefault(item.path, {})
    for i in range(len(p)):
      table[(str(p.chain_id[i]), int(p.residue_number[i]),
             str(p.insertion_code[i]).strip())] = float(score[i])
  folder.mkdir(parents=True, exist_ok=True)
  skipped = []
  for path, table in by_file.items():
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if not name.lower().endswith((".pdb", ".ent")):
      skipped.append((path, "not a PDB file (--pdb-out rewrites PDB files only)"))
      continue
    text = io.read_bytes_maybe_gzip(path, StructureError).decode("latin-1")
    io.atomic_write_bytes(folder / name, bfactor_pdb(text, table).encode("latin-1"))
  return skipped


# --- the verb ----------------------------------------------------------------------------------

def predict(run_dir, paths: Sequence[pathlib.Path], *, chains: str | None = None,
            which: str = "best", embed: bool = True, lm_source: str | None = None,
            store: str | None = None, batch_graphs: int = 8, progress: bool = True,
            echo=print, on_rows=None):
  """-> (run, items, raw outputs, failures [(path, why)]). `on_rows(i, rows)`: item i's CSV
  rows (`rows_for`) as soon as its batch has run."""
  from tqdm.auto import tqdm
  from jaxgeo import config as config_lib
  from jaxgeo import graph as graph_lib
  from jaxgeo.errors import DataError
  from jaxgeo.lm import features as lm_features
  from jaxgeo.lm.features import chain_segments
  run_dir = pathlib.Path(run_dir)
  config = run_config(run_dir)
  task_name = str(config.task.name)
  if store:
    config.lm.store = store
  proteins, failed = read_proteins(task_name, paths, chains, progress)
  if not proteins:
    first = f"{failed[0][0]}: {failed[0][1]}" if failed else "none given"
    raise DataError(f"predict: none of the {len(paths)} structure(s) could be read (first: "
                    f"{first})")
  features = None
  if config_lib.uses_lm(config):
    sequences = [s for _, p in proteins for _, s in chain_segments(p)]
    embed_missing(config, sequences, embed=embed, lm_source=lm_source, progress=progress,
                  echo=echo)
    features = config_lib.lm_features(config)
  options = config_lib.graph_options(config)
  items = []
  for path, protein in tqdm(proteins, desc="featurize", unit="graph", disable=not progress,
                            leave=False):
    g = graph_lib.residue_graph(protein, **options)
    if features is not None:
      g = lm_features.attach(g, features.rows(protein))
    items.append(Item(path, protein, g))
  run = load_run(run_dir, items[0].graph, which)
  on_result = None if on_rows is None else (
      lambda i, raw: on_rows(i, rows_for(run, items[i], raw)))
  raw = predict_graphs(run, [i.graph for i in items], batch_graphs, progress, on_result)
  return run, items, raw, failed


def run(args: argparse.Namespace) -> int:
  import jax
  from jaxgeo import io, train
  from jaxgeo.errors import ConfigError
  train.setup_jax(cpu_devices=train.saved_cpu_device_count(args.model, args.cpu_devices))
  paths = input_files(args.structures, args.files)
  # The outputs are checked before anything is computed, so that no prediction is lost.
  io.output_file(args.out, f"--out {args.out}", ConfigError)
  if args.pdb_out:
    io.output_folder(args.pdb_out, f"--pdb-out {args.pdb_out}", ConfigError)
  out = pathlib.Path(args.out)
  partial = PartialRows(out.with_name(out.name + PARTIAL_SUFFIX))
  rows_of: dict[int, list[dict]] = {}      # item -> its rows, made once as its batch ran

  def keep(i: int, rows: list[dict]) -> None:
    rows_of[i] = rows
    partial.add(rows)

  try:
    run_, items, raw, failed = predict(
        args.model, paths, chains=args.chains, which=args.checkpoint, embed=args.embed,
        lm_source=args.lm_source, store=args.store, batch_graphs=args.batch_graphs,
        progress=not args.no_progress, on_rows=keep)
  except BaseException:
    partial.close()
    if partial.graphs:
      print(f"predict: stopped; the rows of the {partial.graphs} graph(s) predicted so far "
            f"are in {partial.path}", file=sys.stderr)
    raise
  rows = [row for i in range(len(items)) for row in rows_of[i]]
  write_csv(out, rows)
  partial.discard()
  print(f"predict: {len(items)} graph(s) from {len(paths) - len(failed)} file(s), "
        f"{len(rows)} row(s) ({run_.kind}) written to {out} ({jax.local_device_count()} "
        f"{jax.local_devices()[0].platform} device(s))")
  if args.pdb_out:
    skipped = write_bfactor_pdbs(pathlib.Path(args.pdb_out), run_, items, raw)
    for path, why in skipped:
      print(f"predict: no B-factor PDB for {path}: {why}", file=sys.stderr)
    print(f"predict: B-factor PDBs in {args.pdb_out}")
  if failed:
    print(f"predict: {len(failed)} structure(s) could not be read:", file=sys.stderr)
    for path, why in failed:
      print(f"  {path}: {why}", file=sys.stderr)
    return 1
  return 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "predict", help="predictions of a trained run for new structures",
      description="Loads a run folder's config and best checkpoint, featurises the structures "
      "as the run did (graph options, features, language model and layer) and writes one CSV "
      "row per structure (graph tasks) or per residue (node tasks). Unreadable structures are "
      "listed at the end (exit status 1); the others are predicted.")
  p.add_argument("--model", required=True, help="run folder written by `jaxgeo train`")
  p.add_argument("--structures", default=None, help="folder of structure files")
  p.add_argument("files", nargs="*", help="structure files (instead of --structures)")
  p.add_argument("--out", required=True,
                 help="output CSV file (written at the end; OUT.partial holds the rows "
                 "predicted so far while it runs)")
  p.add_argument("--pdb-out", default=None,
                 help="folder: each PDB input with the per-residue score as its B-factor")
  p.add_argument("--chains", default=None, help="chains to keep of every file, e.g. A,B")
  p.add_argument("--checkpoint", choices=("best", "last"), default="best")
  p.add_argument("--store", default=None, help="embedding store (default: the run's)")
  p.add_argument("--lm-source", default=None,
                 help="convert-esm folder of the run's ESM-2 model, to embed missing sequences")
  g = p.add_mutually_exclusive_group()
  g.add_argument("--embed-missing", dest="embed", action="store_true", default=True,
                 help="embed the sequences the store lacks with the run's language model "
                 "(default when it is at hand)")
  g.add_argument("--no-embed", dest="embed", action="store_false",
                 help="never embed; a missing sequence is an error naming `jaxgeo embed`")
  p.add_argument("--batch-graphs", type=int, default=8)
  add_cpu_devices_argument(p, "predict")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.set_defaults(func=run)
