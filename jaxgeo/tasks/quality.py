"""Docking model quality: regress the DockQ of a docked complex from its structure.

A graph task: both partners of a docked model in one residue graph (`graph.complex_graph`:
receptor nodes partner 0, ligand nodes partner 1, inter-partner edges flagged), label the
model's DockQ against the crystal structure (`jaxgeo.metrics.docking`: fnat, CAPRI interface
and ligand RMSD, DockQ), `globals["group"]` the complex.

Decoys:
- train / val: rigid-body perturbations of the bound DB5.5 complexes of the train / val
  splits. The receptor stays in place; the ligand is rotated about its CA centroid by an
  angle of `ROTATION_DEG_PER_A` degrees per Angstrom of a translation of length m (random axis
  and direction). For each decoy a target DockQ is drawn stratified over `bins` equal bins
  of [0, 1] (each bin used equally often, a uniform draw inside it) and m is searched along
  that decoy's direction (bracketing on log(1 + m), at most `max_evals` DockQ evaluations, the
  first guess interpolated from the complex's earlier evaluations) until the DockQ falls
  within half a bin of the target; the closest evaluation is kept. The label is always the
  DockQ of the decoy kept, computed by `metrics.docking.dockq`. Everything is seeded per
  complex (`task.seed`, the complex id), so the decoys do not depend on the order or subset of
  complexes loaded.
- test: the real models of six docking methods for the 25 DB5.5 test complexes
  (`<docking_dir>/decoys/<method>/`); ligand-only methods are paired with the ground-truth
  receptor. Residues paired with the ground truth by `metrics.docking.match_residues`.
  (`task.test_decoys="perturbed"` uses perturbations of the DB5.5 test complexes instead.)

Labels can be cached (`task.cache_dir`): one JSON file per generation setting holding each
decoy's rotation vector, translation and scores, written atomically after each complex, so a
second load re-applies the motions without re-scoring (and an interrupted one resumes).

Options (`config.task`, see `QualityOptions`): data_dir (DB5.5, default <data root>/db5.5),
docking_dir (default <data root>/db5_docking), splits_dir, decoys_per_complex (train, 10),
val_decoys_per_complex (0: as train), bins (10), max_evals (5), seed (0), methods (default
all six), test_decoys ("methods" | "perturbed"), cache_dir ("": no cache), limit.
Metrics: Spearman over all decoys (primary), Pearson, Kendall, RMSE, and per-complex means of
Spearman / Pearson / Kendall.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import pathlib
import zlib
from typing import Any

import jraph
import numpy as np

from jaxgeo import geometry
from jaxgeo import graph as graph_lib
from jaxgeo.datasets import db5, docking_results
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.io import atomic_write_json
from jaxgeo.lm.features import attach, chain_segments
from jaxgeo.metrics import docking
from jaxgeo.structure import Protein
from jaxgeo.tasks import base

logger = logging.getLogger(__name__)



@dataclasses.dataclass(frozen=True)
class QualityOptions:
  """Options of `config.task` ("" / 0: the default noted)."""
  data_dir: str = ""                 # DB5.5 folder; "": <data root>/db5.5
  docking_dir: str = ""              # docking results; "": <data root>/db5_docking
  splits_dir: str = ""               # "": <data_dir>/splits
  decoys_per_complex: int = 10       # train decoys per complex
  val_decoys_per_complex: int = 0    # val (and perturbed test) decoys; 0: decoys_per_complex
  bins: int = 10                     # DockQ bins the targets are stratified over
  max_evals: int = 5                 # DockQ evaluations per decoy at most
  seed: int = 0                      # decoy generator seed
  methods: str = ",".join(docking_results.DOCKING_METHODS)   # test-set docking methods
  test_decoys: str = "methods"       # "methods" (real models) or "perturbed"
  cache_dir: str = ""                # folder for the decoy-label JSON cache; "": no cache
  limit: int = 0                     # first N complexes of each split; 0: all

  def __post_init__(self):
    for m in self.method_list:
      if m not in docking_results.DOCKING_METHODS:
        raise ConfigError(f"task.methods: unknown docking method {m!r}; choose from "
                          f"{', '.join(docking_results.DOCKING_METHODS)}")
    if self.test_decoys not in ("methods", "perturbed"):
      raise ConfigError(f"task.test_decoys={self.test_decoys!r}: expected 'methods' or "
                        "'perturbed'")
    if self.decoys_per_complex < 1:
      raise ConfigError(f"task.decoys_per_complex={self.decoys_per_complex}: must be at "
                        "least 1")
    if self.bins < 1 or self.max_evals < 1:
      raise ConfigError(f"task.bins={self.bins}, task.max_evals={self.max_evals}: must be "
                        ">= 1")

  @property
  def method_list(self) -> list[str]:
    return base.name_list(self.methods, "task.methods")

  def decoys(self, split: str) -> int:
    """Decoys per complex of a perturbed split."""
    if split == "train":
      return self.decoys_per_complex
    return self.val_decoys_per_complex or self.decoys_per_complex
ROTATION_DEG_PER_A = 2.0
MAX_MAGNITUDE = 80.0
GENERATOR_VERSION = 1


# ------------------------------------------------------------------ rigid motions


def ligand_centre(ligand: Protein) -> np.ndarray:
  """[3] CA centroid of a partner."""
  return ligand.ca.astype(np.float64).mean(axis=0)


def perturb(ligand: Protein, rotvec: np.ndarray, translation: np.ndarray) -> Protein:
  """The ligand rotated about its CA centroid by `rotvec` [3] then shifted by `translation` [3]."""
  return geometry.move_protein(ligand, geometry.rotation_matrix(rotvec), translation,
                               ligand_centre(ligand))


def _motion(magnitude: float, axis: np.ndarray, direction: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
  angle = min(math.pi, math.radians(ROTATION_DEG_PER_A) * magnitude)
  return axis * angle, direction * magnitude


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
  v = rng.standard_normal(3)
  return v / np.linalg.norm(v)


# ------------------------------------------------------------------ decoy generation


@dataclasses.dataclass(frozen=True)
class Decoy:
  """One rigid-body decoy of a complex and its scores against the native.

  Attributes:
    rotvec: [3] rotation vector (radians) of the ligand about its CA centroid.
    translation: [3] shift of the ligand (Angstrom), applied after the rotation.
    dockq, fnat, irmsd, lrmsd: `metrics.docking.dockq` of the decoy.
  """
  rotvec: tuple[float, float, float]
  translation: tuple[float, float, float]
  dockq: float
  fnat: float
  irmsd: float
  lrmsd: float

  def as_list(self) -> list[float]:
    return [*self.rotvec, *self.translation, self.dockq, self.fnat, self.irmsd, self.lrmsd]

  @classmethod
  def from_list(cls, values: list[float]) -> "Decoy":
    if len(values) != 10:
      raise ValueError(f"expected 10 numbers, got {len(values)}")
    v = [float(x) for x in values]
    return cls(tuple(v[0:3]), tuple(v[3:6]), v[6], v[7], v[8], v[9])


def score_decoy(receptor: Protein, ligand: Protein, rotvec, translation) -> Decoy:
  """DockQ of the ligand moved by (rotvec, translation) against the native complex."""
  moved = perturb(ligand, rotvec, translation)
  q = docking.dockq(moved, receptor, ligand, receptor)
  return Decoy(tuple(float(x) for x in rotvec), tuple(float(x) for x in translation),
               float(q.dockq), float(q.fnat), float(q.irmsd), float(q.lrmsd))


def stratified_targets(n: int, bins: int, rng: np.random.Generator) -> np.ndarray:
  """[n] target DockQ values: bins used round-robin in a shuffled order, uniform inside."""
  if bins < 1:
    raise ConfigError(f"task.bins={bins}: must be at least 1")
  order = np.concatenate([rng.permutation(bins) for _ in range(-(-n // bins))])[:n]
  return (order + rng.uniform(size=n)) / bins


def _first_guess(target: float, seen: list[tuple[float, float]]) -> float:
  """Magnitude expected to give `target`, from (magnitude, dockq) pairs seen so far."""
  if len(seen) >= 3:
    m = np.array([s[0] for s in seen])
    q = np.array([s[1] for s in seen])
    order = np.argsort(m)
    m, q = m[order], np.minimum.accumulate(q[order])  # a non-increasing envelope
    if q[-1] <= target <= q[0]:
      return float(np.interp(-target, -q, m))
  # Before anything is seen: the heuristic DockQ(m) ~ 1 / (1 + (m / 4)^2).
  target = min(max(target, 1e-3), 0.999)
  return float(4.0 * math.sqrt(1.0 / target - 1.0))


def generate_decoys(receptor: Protein, ligand: Protein, n: int, rng: np.random.Generator,
                    bins: int = 10, max_evals: int = 5, name: str = "complex") -> list[Decoy]:
  """`n` rigid-body decoys of a bound complex spanning DockQ 0..1 (see the module notes).

  Args:
    receptor, ligand: the native (bound) partners.
    n: decoys to make.
    rng: the complex's generator (deterministic).
    bins: DockQ bins the targets are stratified over.
    max_evals: DockQ evaluations per decoy at most.
    name: complex name for errors.
  Returns:
    `n` Decoys with their scores.
  Raises:
    DataError naming the complex when the native partners have no contact.
  """
  native = docking.dockq(ligand, receptor, ligand, receptor)
  if native.n_native_contacts == 0:
    raise DataError(f"complex {name} ({receptor.source} + {ligand.source}): the partners do "
                    "not touch (no heavy-atom contact within 5 A); DockQ is undefined")
  tolerance = 0.5 / bins
  seen: list[tuple[float, float]] = [(0.0, 1.0)]
  decoys = []
  for target in stratified_targets(n, bins, rng):
    axis, direction = _unit_vector(rng), _unit_vector(rng)
    lo, hi = 0.0, MAX_MAGNITUDE
    m = min(_first_guess(float(target), seen), MAX_MAGNITUDE)
    best = None
    for _ in range(max_evals):
      decoy = score_decoy(receptor, ligand, *_motion(m, axis, direction))
      seen.append((m, decoy.dockq))
      if best is None or abs(decoy.dockq - target) < abs(best.dockq - target):
        best = decoy
      if abs(decoy.dockq - target) <= tolerance:
        break
      if decoy.dockq > target:
        lo = m
      else:
        hi = m
      # Bisect on log(1 + m): DockQ falls fast at first, then slowly.
      m = math.expm1(0.5 * (math.log1p(lo) + math.log1p(hi)))
    decoys.append(best)
  return decoys


# ------------------------------------------------------------------ label cache


class LabelCache:
  """Decoy motions and scores in one JSON file, written atomically after each update.

  Keys are "split/complex" (perturbations) or "method/complex" (real decoys). `path` None:
  an in-memory cache only.
  """

  def __init__(self, path: pathlib.Path | None, settings: dict):
    self.path = path
    self.settings = settings
    self.entries: dict[str, Any] = {}
    if path is not None and path.is_file():
      try:
        data = json.loads(path.read_text())
        if data.get("settings") != settings:
          raise ValueError("settings differ")
        self.entries = dict(data["entries"])
      except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: unreadable decoy-label cache ({e}); delete it to regenerate")

  def get(self, key: str):
    return self.entries.get(key)

  def put(self, key: str, value) -> None:
    self.entries[key] = value
    if self.path is not None:
      atomic_write_json(self.path, {"settings": self.settings, "entries": self.entries})


def _cache_path(cache_dir, settings: dict) -> pathlib.Path | None:
  if not cache_dir:
    return None
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
  return pathlib.Path(cache_dir) / f"quality_labels_{digest}.json"


# ------------------------------------------------------------------ graphs


def decoy_graph(receptor: Protein, ligand: Protein, dockq: float, group: int,
                graph_options: dict | None = None,
                lm: tuple[np.ndarray, np.ndarray] | None = None) -> jraph.GraphsTuple:
  """One labelled complex graph: receptor (partner 0) + ligand (partner 1).

  Returns a single graph with `globals["label"] [1]` (DockQ) and `globals["group"] [1]`.
  """
  g = graph_lib.complex_graph(receptor, ligand, **(graph_options or {}))
  g = graph_lib.with_globals(g, label=np.float32(dockq), group=np.int32(group))
  if lm is not None:
    g = attach(g, np.concatenate(lm, axis=0))
  return g


def _rows_for_model(model: Protein, native: Protein, native_rows: np.ndarray | None,
                    inputs: base.Inputs) -> np.ndarray | None:
  """LM rows of a decoy partner: the native's rows of the paired residues (so decoy files
  whose chain ids differ still find the native's store entries); looked up from the model's
  own chains when some residue has no native partner."""
  if native_rows is None:
    return None
  match = docking.match_residues(model, native)
  if match.n_matched == len(model):
    rows = np.zeros((len(model), native_rows.shape[1]), np.float32)
    rows[match.model_index] = native_rows[match.native_index]
    return rows
  return inputs.lm.rows(model)


def dockq_summary(values: np.ndarray, bins: int = 10) -> dict:
  """Histogram over `bins` bins of [0, 1], mean, and CAPRI classes of DockQ values."""
  values = np.asarray(values, np.float64)
  hist = np.histogram(values, bins=bins, range=(0.0, 1.0))[0]
  return {
      "n": int(values.size), "mean": float(values.mean()) if values.size else float("nan"),
      "histogram": hist.tolist(),
      "high": int(np.sum(values >= 0.80)),
      "medium": int(np.sum((values >= 0.49) & (values < 0.80))),
      "acceptable": int(np.sum((values >= 0.23) & (values < 0.49))),
      "incorrect": int(np.sum(values < 0.23)),
  }


class QualityTask(base.Task):
  """DockQ regression of docked complexes (graph task)."""
  name = "quality"
  Options = QualityOptions
  head = "graph"
  out_dim = 1
  primary_metric = "spearman"
  higher_is_better = True

  @staticmethod
  def folders(options: QualityOptions, inputs: base.Inputs) -> dict[str, pathlib.Path]:
    """{"data": DB5.5, "splits": split files, "docking": docking results}."""
    data_dir = base.data_folder(inputs, options.data_dir, "db5.5")
    return {"data": data_dir,
            "splits": base.data_folder(inputs, options.splits_dir, "") if options.splits_dir
            else data_dir / "splits",
            "docking": base.data_folder(inputs, options.docking_dir, "db5_docking")}

  def split_ids(self, split: str, options: QualityOptions, inputs: base.Inputs) -> list[str]:
    f = self.folders(options, inputs)
    if split == "test" and options.test_decoys == "methods":
      return db5.limit_ids(docking_results.docking_complex_ids(f["docking"]), options.limit)
    return db5.limit_ids(db5.read_split(f["data"], split, f["splits"]), options.limit)

  def required_paths(self, options, inputs) -> list[tuple[str, str]]:
    f = self.folders(options, inputs)
    paths = [(str(f["data"] / "structures"), "DB5.5 structures"),
             (str(f["splits"]), "DB5.5 split files")]
    if options.test_decoys == "methods":
      paths.append((str(f["docking"]), "DB5.5 docking results (ground truth and decoys)"))
    return paths

  def sequences(self, options, inputs) -> list[str]:
    """Chain sequences of the natives (decoys reuse their natives' embeddings)."""
    f = self.folders(options, inputs)
    out = []
    for split in db5.SPLITS:
      for pdb_id in self.split_ids(split, options, inputs):
        if split == "test" and options.test_decoys == "methods":
          proteins = [_load(p) for p in docking_results.ground_truth_files(f["docking"], pdb_id)]
        else:
          proteins = db5.load_complex(f["data"], pdb_id)
        for protein in proteins:
          out.extend(seq for _, seq in chain_segments(protein))
    return sorted(set(out))

  @staticmethod
  def _generation_settings(options: QualityOptions) -> dict:
    return {"version": GENERATOR_VERSION, "seed": options.seed, "bins": options.bins,
            "max_evals": options.max_evals, "rotation_deg_per_a": ROTATION_DEG_PER_A,
            "max_magnitude": MAX_MAGNITUDE}

  def _perturbed(self, split: str, names: list[str], options: QualityOptions,
                 folder: pathlib.Path, groups: dict, cache: LabelCache, inputs: base.Inputs
                 ) -> tuple[list, list[float]]:
    graphs, labels = [], []
    n = options.decoys(split)
    for pdb_id in names:
      receptor, ligand = db5.load_complex(folder, pdb_id, bound=True)
      key = f"perturbed/{pdb_id}/{n}"
      cached = cache.get(key)
      if cached is not None:
        try:
          decoys = [Decoy.from_list(v) for v in cached]
        except (TypeError, ValueError) as e:
          raise DataError(f"{cache.path}: bad cached decoys of {pdb_id} ({e}); delete the file "
                          "to regenerate") from None
      else:
        rng = np.random.default_rng([options.seed, zlib.crc32(pdb_id.encode())])
        decoys = generate_decoys(receptor, ligand, n, rng, options.bins, options.max_evals,
                                 pdb_id)
        cache.put(key, [d.as_list() for d in decoys])
      lm = None
      if inputs.lm is not None:
        lm = (inputs.lm.rows(receptor), inputs.lm.rows(ligand))
      for d in decoys:
        moved = perturb(ligand, np.array(d.rotvec), np.array(d.translation))
        graphs.append(decoy_graph(receptor, moved, d.dockq, groups[pdb_id],
                                  dict(inputs.graph_options), lm))
        labels.append(d.dockq)
    return graphs, labels

  def _real(self, names: list[str], options: QualityOptions, folder: pathlib.Path,
            groups: dict, cache: LabelCache, inputs: base.Inputs
            ) -> tuple[list, list[float], dict]:
    graphs, labels, per_method = [], [], {}
    for pdb_id in names:
      rec_path, lig_path = docking_results.ground_truth_files(folder, pdb_id)
      native_rec, native_lig = _load(rec_path), _load(lig_path)
      native_rows = None
      if inputs.lm is not None:
        native_rows = (inputs.lm.rows(native_rec), inputs.lm.rows(native_lig))
      for method in options.method_list:
        model_rec_path, model_lig_path = docking_results.decoy_files(folder, method, pdb_id)
        model_lig = _load(model_lig_path)
        model_rec = _load(model_rec_path) if model_rec_path is not None else native_rec
        key = f"{method}/{pdb_id}"
        score = cache.get(key)
        if score is None:
          q = docking.dockq_proteins(model_lig, model_rec, native_lig, native_rec)
          if not np.isfinite(q.dockq):
            raise DataError(f"complex {pdb_id} ({rec_path.name} + {lig_path.name}): the "
                            "partners do not touch; DockQ is undefined")
          score = {"dockq": q.dockq, "fnat": q.fnat, "irmsd": q.irmsd, "lrmsd": q.lrmsd}
          cache.put(key, score)
        lm = None
        if native_rows is not None:
          lm = (_rows_for_model(model_rec, native_rec, native_rows[0], inputs),
                _rows_for_model(model_lig, native_lig, native_rows[1], inputs))
        graphs.append(decoy_graph(model_rec, model_lig, score["dockq"], groups[pdb_id],
                                  dict(inputs.graph_options), lm))
        labels.append(score["dockq"])
        per_method.setdefault(method, []).append(score["dockq"])
    return graphs, labels, per_method

  def examples(self, split, options, inputs) -> base.Examples:
    f = self.folders(options, inputs)
    names = self.split_ids(split, options, inputs)
    groups = db5.complex_group_ids(names)
    settings = self._generation_settings(options)
    cache = LabelCache(_cache_path(options.cache_dir, settings), settings)
    info: dict[str, Any] = {"complexes": len(names)}
    if split == "test" and options.test_decoys == "methods":
      graphs, labels, per_method = self._real(names, options, f["docking"], groups, cache,
                                              inputs)
      info["methods"] = {m: dockq_summary(v, options.bins) for m, v in per_method.items()}
    else:
      graphs, labels = self._perturbed(split, names, options, f["data"], groups, cache, inputs)
    info["dockq"] = dockq_summary(labels, options.bins)
    logger.info("quality task, %s split: %s", split, {k: v for k, v in info.items()
                                                      if k != "methods"})
    return base.Examples(graphs, info)

  def loss(self, outputs, batch, stats):
    return base.masked_mse(outputs["graph"], batch.globals["label"],
                           base.graph_label_mask(batch))

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    return base.regression_metrics(y_true, y_pred, group)


def _load(path) -> Protein:
  import warnings
  from jaxgeo import structure
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Could not parse charge")
    return structure.load_protein(path)
