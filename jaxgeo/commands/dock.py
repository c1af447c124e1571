"""`jaxgeo dock`: dock a ligand onto a receptor with a trained IEGMN run.

    jaxgeo dock --model RUN_DIR --receptor R.pdb --ligand L.pdb --out OUT.pdb
    jaxgeo dock --model RUN_DIR --pairs DIR --out OUT_DIR [--batch-graphs B] [--cpu-devices N]

The run folder (`jaxgeo train` of a docking row) gives the config (`config.json`) and the
best checkpoint (or `--checkpoint last`); fused runs read the partners' language-model rows
from the run's embedding store (`--store` to use another). The receptor stays where it is;
every atom of the ligand file (ATOM and HETATM, waters included) is moved by the predicted
rigid motion x -> R x + t. The output is the input ligand file with only the coordinate
columns (31-54) rewritten, so chain ids, residue numbering, HETATM records and every other
column stay as they were.

Folder mode docks every `ID_l_b.pdb[.gz]` with its `ID_r_b.pdb[.gz]` into
`OUT_DIR/ID_l_b_IEGMN.pdb`, and copies the receptor (unchanged) to `OUT_DIR/ID_r_b_IEGMN.pdb`:
the layout of a method folder of `jaxgeo score-docking`, which then scores the predicted
complex as it is (the inputs' receptors need not be in the ground truth's frame; in
`db5_docking/inputs_random_transformed` they are not). It reads every pair first, then runs
the network over batches of `--batch-graphs` pairs (packed, fixed-count or balanced as the
run's training batches were, so a few shapes compile, not one a pair size) and, on a host without
GPU / TPU, splits the CPU into devices as the run's `jaxgeo train` did (`--cpu-devices N`),
each batch cut into one slot a device; with progress bars. Each batch's files are written
(atomically) as soon as it has run. A pair's motion does not depend on the pairs batched
with it. A pair that fails (a missing partner, an unreadable file, missing language-model
rows) is reported and the others still dock; failures are listed at the end and the exit
status is then 1. One pair (`--receptor`, `--ligand`) runs on one device whose kernels XLA
threads over the cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import pathlib
import re
import time

import numpy as np

from jaxgeo.commands import add_cpu_devices_argument

OUTPUT_SUFFIX = "IEGMN"
BATCH_PAIRS = 8            # --pairs: pairs a batch (data-parallel slots are cut from it)
_PAIR_FILE = re.compile(r"^(?P<id>.+)_(?P<side>[lr])_b\.pdb(\.gz)?$")


@dataclasses.dataclass(frozen=True)
class DockResult:
  """One docked pair: the ligand's motion x -> x @ rotation.T + translation (input frame ->
  receptor frame), the output file, and the seconds the pair took (reading, featurising,
  the network and writing; the first pair of a size also compiles)."""
  rotation: np.ndarray
  translation: np.ndarray
  out: pathlib.Path
  seconds: float


def move_pdb_text(text: str, rotation: np.ndarray, translation: np.ndarray,
                  source: str = "ligand") -> str:
  """PDB text with the coordinates (columns 31-54) of every ATOM / HETATM record moved by
  x -> R x + t; every other character is kept. Raises DataError naming `source` for a
  record whose coordinates cannot be read or do not fit the PDB columns after the move."""
  from jaxgeo.errors import DataError
  rotation = np.asarray(rotation, np.float64)
  translation = np.asarray(translation, np.float64)
  lines = text.splitlines(keepends=True)
  for i, line in enumerate(lines):
    if not line.startswith(("ATOM  ", "HETATM")):
      continue
    try:
      x = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    except ValueError:
      raise DataError(f"{source}: line {i + 1}: unreadable coordinates") from None
    y = rotation @ x + translation
    field = "".join(f"{v:8.3f}" for v in y)
    if len(field) != 24:
      raise DataError(f"{source}: line {i + 1}: moved coordinates {y.round(3).tolist()} do not "
                      "fit the PDB format")
    lines[i] = line[:30] + field + line[54:]
  return "".join(lines)


class Docker:
  """A trained IEGMN run, loaded once: `dock(receptor, ligand, out)` per pair, `dock_pairs`
  for many (batched as the run's batches were, data-parallel over the local devices)."""

  def __init__(self, run_dir: str | os.PathLike, checkpoint: str = "best",
               store: str | None = None):
    import jax

    from jaxgeo import config as config_lib
    from jaxgeo import nets, train
    from jaxgeo.errors import ConfigError
    from jaxgeo.nets import iegmn
    run_dir = pathlib.Path(run_dir)
    config_path = run_dir / train.CONFIG_FILE
    if not config_path.is_file():
      raise ConfigError(f"--model {run_dir}: not a run folder (no {train.CONFIG_FILE})")
    config = config_lib.from_json(config_path)
    if store is not None:
      config.lm.store = str(store)
    model_config = config_lib.model_config(config)
    if model_config.network != "iegmn":
      raise ConfigError(f"--model {run_dir}: a {model_config.network} run; docking needs an "
                        "IEGMN run (a docking_iegmn_* row)")
    self.config = config
    self.task = config_lib.task_setup(config, with_lm=False)[0]
    self.options = self.task.options(config.task)
    # The language model the run trained with (its fingerprint, when lm.json recorded one).
    lm_config, _ = train.lm_setup(config, run_dir)
    self.features = config_lib.lm_features(lm_config)
    self.model = nets.make_model(model_config)
    example = iegmn.example_batch(model_config.iegmn)
    params, self.epoch = train.restore_params(
        config, lambda: self.model.init(jax.random.key(0), example),
        run_dir / "checkpoints" / checkpoint)
    self.params = jax.device_put(jax.tree_util.tree_map(np.asarray, params))

  def pair(self, receptor_path: str | os.PathLike, ligand_path: str | os.PathLike):
    """The pair graph of a receptor file and a ligand file as given (with the run's
    language-model rows for a fused run); DataError / StructureError naming the file."""
    from jaxgeo import structure
    from jaxgeo.errors import DataError
    from jaxgeo.tasks.docking import docking_example
    receptor = structure.load_protein(receptor_path)
    ligand = structure.load_protein(ligand_path)
    lm = None
    if self.features is not None:
      rows = []
      for path, protein in ((ligand_path, ligand), (receptor_path, receptor)):
        try:
          rows.append(self.features.rows(protein))
        except DataError as e:
          raise DataError(f"{path}: no language-model rows ({e})") from None
      lm = (rows[0], rows[1])
    try:
      return docking_example(ligand, receptor, 0, 0, self.options, lm, perturb=False)
    except DataError as e:
      raise DataError(f"{ligand_path} + {receptor_path}: {e}") from None

  def transforms(self, graphs, batch_graphs: int = 1, progress: bool = False,
                 on_result=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(R [3, 3], t [3]) of each pair graph (`pair`): moves its ligand file onto its
    receptor. Batches of `batch_graphs` pairs, packed, fixed-count or balanced as the run's
    were, each cut into one slot a local device (`predict.apply_batched`); `on_result(i, (R, t))` is
    called for pair i as soon as its batch has run."""
    from jaxgeo.commands.predict import apply_batched

    def forward(params, batch):
      out = self.model.apply(params, None, batch, is_training=False, padded=True)
      return _motion_rows(out["rotation"], out["translation"])

    def motion(row):
      return np.asarray(row[:9], np.float64).reshape(3, 3), np.asarray(row[9:], np.float64)

    rows = apply_batched(forward, self.params, self.config, graphs, per_node=False,
                         batch_graphs=batch_graphs, progress=progress, desc="dock",
                         on_result=None if on_result is None else
                         lambda i, row: on_result(i, motion(row)))
    return [motion(r) for r in rows]

  def transform(self, receptor_path: str | os.PathLike, ligand_path: str | os.PathLike
                ) -> tuple[np.ndarray, np.ndarray]:
    """(R [3, 3], t [3]) moving the ligand file's coordinates onto the receptor."""
    return self.transforms([self.pair(receptor_path, ligand_path)])[0]

  def dock(self, receptor_path: str | os.PathLike, ligand_path: str | os.PathLike,
           out_path: str | os.PathLike) -> DockResult:
    """Docks one pair and writes the moved ligand file (atomically; gzipped for `.gz`)."""
    tick = time.perf_counter()
    rotation, translation = self.transform(receptor_path, ligand_path)
    out = write_moved(ligand_path, rotation, translation, out_path)
    return DockResult(rotation, translation, out, time.perf_counter() - tick)

  def dock_pairs(self, pairs: dict[str, tuple], out_dir: str | os.PathLike,
                 batch_graphs: int = 8, progress: bool = True
                 ) -> tuple[dict[str, DockResult], list[str]]:
    """Docks every pair of `pairs` ({id: (receptor file, ligand file)}, `find_pairs`) into
    `out_dir` (`ID_l_b_IEGMN.pdb`, and the receptor copied as `ID_r_b_IEGMN.pdb`): all pairs
    read first, then the network over batches of `batch_graphs` pairs, each batch's files
    written (atomically) as soon as it has run.
    -> ({id: DockResult (seconds: the pair's share of the whole run)}, one message for each
    pair that failed; the others still dock)."""
    from tqdm.auto import tqdm

    from jaxgeo import io
    from jaxgeo.errors import JaxgeoError, StructureError
    tick = time.perf_counter()
    out_dir = pathlib.Path(out_dir)
    graphs, failures = {}, []
    for pdb_id, (rec, lig) in tqdm(pairs.items(), desc="read", unit="complex",
                                   disable=not progress, leave=False):
      try:
        graphs[pdb_id] = self.pair(rec, lig)
      except JaxgeoError as e:
        failures.append(str(e))
    ids, done = list(graphs), {}

    def write(i: int, motion: tuple[np.ndarray, np.ndarray]) -> None:
      pdb_id = ids[i]
      rec, lig = pairs[pdb_id]
      try:
        out = write_moved(lig, *motion, out_dir / f"{pdb_id}_l_b_{OUTPUT_SUFFIX}.pdb")
        io.atomic_write_bytes(out_dir / f"{pdb_id}_r_b_{OUTPUT_SUFFIX}.pdb",
                              io.read_bytes_maybe_gzip(rec, StructureError))
        done[pdb_id] = DockResult(*motion, out, 0.0)
      except JaxgeoError as e:
        failures.append(str(e))

    if graphs:
      self.transforms(list(graphs.values()), batch_graphs, progress, on_result=write)
    share = (time.perf_counter() - tick) / max(len(done), 1)
    return ({k: dataclasses.replace(r, seconds=share) for k, r in done.items()}, failures)


def _motion_rows(rotation, translation):
  """[G, 12] rows (R flattened, t) of the network's rotation [G, 3, 3] and translation [G, 3]."""
  import jax.numpy as jnp
  return jnp.concatenate([rotation.reshape(rotation.shape[0], 9), translation], axis=-1)


def write_moved(ligand_path: str | os.PathLike, rotation: np.ndarray, translation: np.ndarray,
                out_path: str | os.PathLike) -> pathlib.Path:
  """Writes the ligand file with every atom moved by x -> R x + t (`move_pdb_text`),
  atomically; gzipped when `out_path` ends in `.gz`."""
  from jaxgeo import io
  from jaxgeo.errors import StructureError
  text = io.read_bytes_maybe_gzip(ligand_path, StructureError).decode("utf-8", "replace")
  moved = move_pdb_text(text, rotation, translation, str(ligand_path)).encode()
  out_path = pathlib.Path(out_path)
  if out_path.name.endswith(".gz"):
    moved = gzip.compress(moved, mtime=0)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  io.atomic_write_bytes(out_path, moved)
  return out_path


def find_pairs(folder: str | os.PathLike) -> tuple[dict[str, tuple], list[str]]:
  """{id: (receptor file, ligand file)} of a folder of `ID_{l,r}_b.pdb[.gz]` files, and one
  message per id that misses its partner. No pair file at all -> DataError."""
  from jaxgeo import io
  from jaxgeo.errors import DataError
  folder = io.input_folder(folder, f"--pairs {folder}", DataError)
  files: dict[str, dict[str, pathlib.Path]] = {}
  for path in sorted(folder.iterdir()):
    m = _PAIR_FILE.match(path.name)
    if m and path.is_file():
      files.setdefault(m.group("id"), {})[m.group("side")] = path
  if not files:
    raise DataError(f"--pairs {folder}: no ID_l_b.pdb[.gz] / ID_r_b.pdb[.gz] files")
  pairs, problems = {}, []
  for pdb_id, sides in sorted(files.items()):
    if "l" in sides and "r" in sides:
      pairs[pdb_id] = (sides["r"], sides["l"])
    else:
      have, need = ("l", "r") if "l" in sides else ("r", "l")
      problems.append(f"{sides[have]}: its partner {pdb_id}_{need}_b.pdb[.gz] is missing")
  return pairs, problems


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "dock", help="dock a ligand onto a receptor with a trained IEGMN run",
      description="Predicts the rigid motion of the ligand onto the receptor with a trained "
      "IEGMN run (jaxgeo train of a docking_iegmn_* row) and writes the ligand file with all "
      "its atoms moved (only the coordinate columns change). --pairs docks a folder of "
      "ID_l_b.pdb[.gz] / ID_r_b.pdb[.gz] pairs into OUT/ID_l_b_IEGMN.pdb, in batches of "
      "pairs, data-parallel over the CPU split as the run's training split it.")
  p.add_argument("--model", required=True, metavar="RUN_DIR", help="run folder")
  p.add_argument("--checkpoint", choices=("best", "last"), default="best")
  p.add_argument("--receptor", help="receptor structure file (stays in place)")
  p.add_argument("--ligand", help="ligand structure file (PDB, optionally .gz)")
  p.add_argument("--pairs", metavar="DIR", help="folder of ID_l_b / ID_r_b pairs")
  p.add_argument("--out", required=True, help="output PDB (or output folder with --pairs)")
  p.add_argument("--store", default=None, help="embedding store (default: the run's lm.store)")
  p.add_argument("--batch-graphs", type=int, default=BATCH_PAIRS, metavar="B",
                 help=f"--pairs: pairs a batch of the network (default {BATCH_PAIRS}; packed, "
                 "fixed-count or balanced as the run's batches were)")
  add_cpu_devices_argument(p, "dock", scope="--pairs:")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from jaxgeo import io, parallel, train
  from jaxgeo.errors import ConfigError
  single = args.receptor or args.ligand
  if bool(args.pairs) == bool(single):
    raise ConfigError("dock: give either --receptor and --ligand, or --pairs DIR")
  if single and not (args.receptor and args.ligand):
    raise ConfigError("dock: --receptor and --ligand go together")
  if single and args.cpu_devices is not None:
    raise ConfigError("dock: --cpu-devices is for --pairs (one pair runs on one device)")
  if args.batch_graphs < 1:
    raise ConfigError(f"dock: --batch-graphs {args.batch_graphs}: must be at least 1")
  # One pair: one device, its kernels threaded over the cores. A folder: the CPU split as the
  # run's `jaxgeo train` split it (or --cpu-devices), batches data-parallel over the devices.
  train.setup_jax(cpu_devices=None if single else
                  train.saved_cpu_device_count(args.model, args.cpu_devices))
  import jax
  if single:
    for option, path in (("--receptor", args.receptor), ("--ligand", args.ligand)):
      io.input_file(path, f"{option} {path}", ConfigError)
    io.output_file(args.out, f"--out {args.out}", ConfigError)   # before the run is loaded
    docker = Docker(args.model, args.checkpoint, args.store)
    result = docker.dock(args.receptor, args.ligand, args.out)
    print(f"{args.ligand} -> {result.out} ({result.seconds:.2f} s); rotation "
          f"{np.round(result.rotation, 4).tolist()}, translation "
          f"{np.round(result.translation, 3).tolist()}")
    return 0

  pairs, failures = find_pairs(args.pairs)
  out_dir = io.output_folder(args.out, f"--out {args.out}", ConfigError)
  docker = Docker(args.model, args.checkpoint, args.store)
  tick = time.perf_counter()
  done, failed = docker.dock_pairs(pairs, out_dir, args.batch_graphs, not args.no_progress)
  failures += failed
  if done:
    seconds = time.perf_counter() - tick
    devices = parallel.even_split(args.batch_graphs, jax.local_device_count())
    print(f"docked {len(done)} of {len(pairs)} pairs into {out_dir} in {seconds:.1f} s: "
          f"{seconds / len(done):.3f} s per complex (reading, the network with its "
          f"compilations, writing; batches of {args.batch_graphs} pairs over {devices} "
          f"{jax.local_devices()[0].platform} device(s))")
  if failures:
    print(f"{len(failures)} failed:")
    for message in failures:
      print(f"  {message}")
    return 1
  return 0
