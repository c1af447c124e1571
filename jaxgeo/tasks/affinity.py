"""Protein-ligand binding affinity on real complexes (the FEP benchmark): a graph task.

Data (`../shared/data/fep_benchmark`, from openforcefield/protein-ligand-benchmark):
  <target>/protein.pdb.gz    the prepared protein (hydrogens are ignored)
  <target>/ligands.sdf.gz    every ligand of the target, posed in the binding site
  affinities.csv             target, ligand, ..., dg_exp_kcal_mol (the label)

One example per (target, ligand): the pocket (protein residues with a heavy atom within
`pocket_cutoff` A, default 8, of a ligand heavy atom) as residue nodes, plus the ligand's heavy
atoms as atom nodes (`graph.residue_graph(..., atoms=(xyz, elements))`: aatype LIGAND_ATOM,
`nodes["element"]`, partner 1; protein-ligand edges flagged inter-partner). SDF files are read
with RDKit (`Chem.ForwardSDMolSupplier`, hydrogens kept in the file and dropped here unless
`ligand_hydrogens`). Label: `globals["label"]` = dg_exp_kcal_mol (kcal/mol, more negative =
tighter binding), matched by the SDF molecule name (`_Name`) = the CSV `ligand` column;
`globals["group"]` = the target's index in `TARGETS`.

Splits hold out whole targets (`task.train_targets`, `val_targets`, `test_targets`); the
default split is fixed (10 / 2 / 3 targets):
  train: cdk8 cmet eg5 hif2a p38 pde2 pfkfb3 shp2 syk tnks2   (277 ligands)
  val:   cdk2 ptp1b                                           (32)
  test:  mcl1 thrombin tyk2                                   (60)

Ligands in the CSV without a molecule in the SDF (thrombin's lig_7d in this copy), molecules
of the SDF without a CSV row, and SDF records RDKit cannot read are logged and skipped and
listed in the dataset's info (`info["splits"][split]["skipped"]`); with `task.strict=True` each raises DataError naming the
target, the ligand and the file. A target folder without protein or ligand file always raises
DataError.

LM features: the whole protein's chains are looked up in the store (by sequence) and the pocket
residues' rows taken from them, so the pocket sees full-chain context; ligand atoms get zeros.
Outputs are standardized (`task.standardize`, default on): the network predicts
(dG - mean) / std with the training split's mean and std, the loss is the MSE of those values,
and predictions and metrics are in kcal/mol (`base.label_scale`, `base.standardized_loss`).
Metrics: RMSE over all ligands (primary, lower is better), MAE, global Pearson / Spearman /
Kendall, and their means per target.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import pathlib
import zlib

import jraph
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo import structure
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.datasets import db5
from jaxgeo.lm.features import attach, chain_segments
from jaxgeo.structure import Protein
from jaxgeo.tasks import base

logger = logging.getLogger(__name__)

TARGETS = ("cdk2", "cdk8", "cmet", "eg5", "hif2a", "mcl1", "p38", "pde2", "pfkfb3", "ptp1b",
           "shp2", "syk", "thrombin", "tnks2", "tyk2")
DEFAULT_SPLIT = {
    "train": ("cdk8", "cmet", "eg5", "hif2a", "p38", "pde2", "pfkfb3", "shp2", "syk", "tnks2"),
    "val": ("cdk2", "ptp1b"),
    "test": ("mcl1", "thrombin", "tyk2"),
}


@dataclasses.dataclass(frozen=True)
class AffinityOptions:
  """Options of `config.task` ("" / 0: the default noted)."""
  data_dir: str = ""                       # "": <data root>/fep_benchmark
  train_targets: str = ",".join(DEFAULT_SPLIT["train"])
  val_targets: str = ",".join(DEFAULT_SPLIT["val"])
  test_targets: str = ",".join(DEFAULT_SPLIT["test"])
  pocket_cutoff: float = 8.0               # A from any ligand heavy atom
  ligand_hydrogens: bool = False           # keep ligand hydrogens as atom nodes
  strict: bool = False                     # unmatched / unreadable ligands raise DataError
  limit: int = 0                           # first N targets of each split; 0: all
  standardize: bool = True                 # outputs read as (dG - train mean) / train std

  def __post_init__(self):
    seen: dict[str, str] = {}
    for name in base.SPLITS:
      for t in self.targets(name):
        if t in seen:
          raise ConfigError(f"task.{name}_targets: target {t!r} is also in "
                            f"task.{seen[t]}_targets; splits must hold out whole targets")
        seen[t] = name
    if self.pocket_cutoff <= 0:
      raise ConfigError(f"task.pocket_cutoff={self.pocket_cutoff}: must be positive")

  def targets(self, split: str) -> list[str]:
    return base.name_list(getattr(self, f"{split}_targets"), f"task.{split}_targets")
LABEL_COLUMN = "dg_exp_kcal_mol"


@dataclasses.dataclass(frozen=True)
class LigandPose:
  """Atoms of one posed ligand.

  Attributes:
    name: SDF molecule name (`_Name`).
    element: [A] element symbols.
    positions: [A, 3] float32 coordinates (Angstrom).
  """
  name: str
  element: np.ndarray
  positions: np.ndarray


def read_sdf(path: str | pathlib.Path, hydrogens: bool = False, strict: bool = False
             ) -> tuple[list[LigandPose], list[str]]:
  """Reads every molecule of an SDF file (optionally gzipped) with RDKit.

  Args:
    path: `.sdf` or `.sdf.gz`.
    hydrogens: keep hydrogen atoms.
    strict: raise on an unreadable record instead of skipping it.
  Returns:
    (poses in file order, problems: one line per skipped record).
  Raises:
    DataError naming the file when it is missing, not gzip, holds no molecule, or (strict)
    has an unreadable record.
  """
  from rdkit import Chem, RDLogger
  from jaxgeo.io import read_bytes_maybe_gzip
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"{path}: ligand file not found")
  raw = read_bytes_maybe_gzip(path, DataError)
  poses, problems = [], []
  RDLogger.DisableLog("rdApp.*")
  try:
    import io
    supplier = Chem.ForwardSDMolSupplier(io.BytesIO(raw), sanitize=False, removeHs=False)
    for index, mol in enumerate(supplier):
      if mol is None or mol.GetNumConformers() == 0:
        msg = f"{path}: record {index + 1} cannot be read as a 3D molecule"
        if strict:
          raise DataError(msg)
        problems.append(msg)
        continue
      name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
      symbols = np.array([a.GetSymbol() for a in mol.GetAtoms()])
      xyz = mol.GetConformer().GetPositions().astype(np.float32)
      keep = np.ones(len(symbols), bool) if hydrogens else ~np.isin(symbols, ("H", "D"))
      if not keep.any() or not np.all(np.isfinite(xyz)):
        msg = f"{path}: record {index + 1} ({name!r}) has no heavy atom or bad coordinates"
        if strict:
          raise DataError(msg)
        problems.append(msg)
        continue
      poses.append(LigandPose(name=name, element=symbols[keep], positions=xyz[keep]))
  finally:
    RDLogger.EnableLog("rdApp.*")
  if not poses and not problems:
    raise DataError(f"{path}: no molecule in the SDF file")
  return poses, problems


def read_affinities(path: str | pathlib.Path) -> dict[str, dict[str, float]]:
  """affinities.csv -> {target: {ligand: dg_exp_kcal_mol}}.

  Raises DataError naming the file for a missing file or column, a non-numeric label, or a
  (target, ligand) listed twice.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"{path}: affinity table not found")
  out: dict[str, dict[str, float]] = {}
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = {"target", "ligand", LABEL_COLUMN} - set(reader.fieldnames or ())
    if missing:
      raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    for line, row in enumerate(reader, start=2):
      target, ligand = row["target"].strip(), row["ligand"].strip()
      try:
        value = float(row[LABEL_COLUMN])
      except (TypeError, ValueError):
        raise DataError(f"{path}: line {line}: {LABEL_COLUMN}={row[LABEL_COLUMN]!r} is not a "
                        "number") from None
      if not np.isfinite(value):
        raise DataError(f"{path}: line {line}: {LABEL_COLUMN} is not finite")
      if ligand in out.setdefault(target, {}):
        raise DataError(f"{path}: line {line}: target {target} ligand {ligand} listed twice")
      out[target][ligand] = value
  return out


def pocket_index(protein: Protein, ligand_xyz: np.ndarray, cutoff: float) -> np.ndarray:
  """Residues with a heavy atom within `cutoff` A of a ligand atom.

  Args:
    protein: L residues; ligand_xyz: [A, 3]; cutoff: Angstrom.
  Returns:
    [K] int indices in residue order.
  """
  lig = np.asarray(ligand_xyz, np.float64)
  lo, hi = lig.min(axis=0) - cutoff, lig.max(axis=0) + cutoff
  pos = protein.atom_positions.astype(np.float64)
  mask = protein.atom_mask & np.all((pos >= lo) & (pos <= hi), axis=-1)
  res, slot = np.nonzero(mask)
  if res.size == 0:
    return np.zeros(0, np.int64)
  atoms = pos[res, slot]
  d2 = np.sum((atoms[:, None, :] - lig[None, :, :]) ** 2, axis=-1).min(axis=1)
  return np.unique(res[d2 < cutoff * cutoff])


def complex_example(protein: Protein, pose: LigandPose, label: float, group: int,
                    cutoff: float = 8.0, graph_options: dict | None = None,
                    protein_rows: np.ndarray | None = None, name: str = ""
                    ) -> jraph.GraphsTuple:
  """One labelled pocket + ligand graph.

  Args:
    protein: the whole protein (L residues).
    pose: the ligand's atoms.
    label: the binding free energy (kcal/mol).
    group: the target id.
    cutoff: pocket radius (A).
    graph_options: keyword arguments of `graph.residue_graph`.
    protein_rows: optional LM rows [L, D] of the whole protein.
    name: "target/ligand" for errors.
  Returns:
    GraphsTuple with K pocket residues then A ligand atoms; globals label [1], group [1].
  """
  index = pocket_index(protein, pose.positions, cutoff)
  if index.size == 0:
    raise DataError(f"{name or pose.name}: no protein residue within {cutoff} A of the ligand "
                    f"({protein.source}); is the ligand posed in the binding site?")
  pocket = protein.take(index)
  g = graph_lib.residue_graph(pocket, atoms=(pose.positions, pose.element),
                              partner=np.zeros(len(pocket), np.int32), **(graph_options or {}))
  g = graph_lib.with_globals(g, label=np.float32(label), group=np.int32(group))
  if protein_rows is not None:
    g = attach(g, protein_rows[index])
  return g


class AffinityTask(base.StandardizedRegression, base.Task):
  """Binding free energy of FEP-benchmark complexes (graph regression, kcal/mol)."""
  name = "affinity"
  Options = AffinityOptions
  head = "graph"
  out_dim = 1
  primary_metric = "rmse"
  higher_is_better = False

  def required_paths(self, options, inputs) -> list[tuple[str, str]]:
    data_dir = base.data_folder(inputs, options.data_dir, "fep_benchmark")
    paths = [(str(data_dir / "affinities.csv"), "FEP benchmark affinities")]
    for split in base.SPLITS:
      for t in options.targets(split):
        paths.append((str(data_dir / t / "protein.pdb.gz"), f"{t} protein"))
        paths.append((str(data_dir / t / "ligands.sdf.gz"), f"{t} ligands"))
    return paths

  def sequences(self, options, inputs) -> list[str]:
    data_dir = base.data_folder(inputs, options.data_dir, "fep_benchmark")
    out = []
    for split in base.SPLITS:
      for t in options.targets(split):
        out.extend(seq for _, seq in chain_segments(self._protein(data_dir, t)))
    return sorted(set(out))

  @staticmethod
  def _protein(data_dir: pathlib.Path, target: str) -> Protein:
    path = data_dir / target / "protein.pdb.gz"
    if not path.is_file():
      raise DataError(f"{path}: protein of target {target} not found")
    return structure.load_protein(path)

  def target_examples(self, target: str, labels: dict[str, float], options: AffinityOptions,
                      inputs: base.Inputs, skipped: list[str]) -> list[jraph.GraphsTuple]:
    """The labelled graphs of one target, in SDF order (problems appended to `skipped`)."""
    data_dir = base.data_folder(inputs, options.data_dir, "fep_benchmark")
    strict = options.strict
    protein = self._protein(data_dir, target)
    sdf = data_dir / target / "ligands.sdf.gz"
    if not sdf.is_file() and (data_dir / target / "ligands.sdf").is_file():
      sdf = data_dir / target / "ligands.sdf"
    poses, problems = read_sdf(sdf, hydrogens=options.ligand_hydrogens, strict=strict)
    skipped.extend(problems)
    by_name: dict[str, LigandPose] = {}
    for pose in poses:
      if pose.name in by_name:
        raise DataError(f"{sdf}: molecule name {pose.name!r} appears twice")
      by_name[pose.name] = pose
    for ligand in labels:
      if ligand not in by_name:
        msg = (f"target {target}: ligand {ligand} has an affinity in affinities.csv but no "
               f"molecule named {ligand!r} in {sdf}")
        if strict:
          raise DataError(msg)
        skipped.append(msg)
    rows = inputs.lm.rows(protein) if inputs.lm is not None else None
    group = TARGETS.index(target) if target in TARGETS else len(TARGETS) + zlib.crc32(
        target.encode()) % 100000
    graphs = []
    for pose in poses:
      if pose.name not in labels:
        msg = (f"target {target}: molecule {pose.name!r} of {sdf} has no affinity in "
               "affinities.csv")
        if strict:
          raise DataError(msg)
        skipped.append(msg)
        continue
      graphs.append(complex_example(protein, pose, labels[pose.name], group,
                                    options.pocket_cutoff, dict(inputs.graph_options), rows,
                                    name=f"{target}/{pose.name}"))
    return graphs

  def examples(self, split, options, inputs) -> base.Examples:
    data_dir = base.data_folder(inputs, options.data_dir, "fep_benchmark")
    table = read_affinities(data_dir / "affinities.csv")
    graphs, per_target, skipped = [], {}, []
    for target in db5.limit_ids(options.targets(split), options.limit):
      if target not in table:
        raise DataError(f"{data_dir / 'affinities.csv'}: no affinity for target {target}")
      examples = self.target_examples(target, table[target], options, inputs, skipped)
      per_target[target] = len(examples)
      graphs.extend(examples)
    for line in skipped:
      logger.warning("affinity task: skipped: %s", line)
    labels = np.array([float(g.globals["label"][0]) for g in graphs])
    info = {"targets": per_target, "skipped": skipped,
            "label_mean": float(labels.mean()) if labels.size else float("nan"),
            "label_std": float(labels.std()) if labels.size else float("nan")}
    return base.Examples(graphs, info)

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    return base.regression_metrics(y_true, y_pred, group)
