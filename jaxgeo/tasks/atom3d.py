"""The ATOM3D tasks PSR, LBA and PPI on ATOM3D's LMDB datasets (read by
`jaxgeo.datasets.atom3d`; the datasets are downloaded from the ATOM3D site, split folders
`train/`, `val/`, `test/`, each an LMDB; `task.train` / `val` / `test` may name them one by one):

- `atom3d_psr` (protein structure ranking): graph regression of `scores[gdt_ts]` of a model,
  grouped by target (the id is "('TARGET', 'MODEL')"); primary metric: Spearman per target.
- `atom3d_lba` (ligand binding affinity): the pocket's residues plus the ligand's heavy atoms
  (element types kept) in one graph, label `scores[neglog_aff]` (outputs standardized with the
  training split's mean and std, `task.standardize`); primary metric: RMSE.
- `atom3d_ppi` (protein interface): each subunit of a pair as a residue graph labelled, as the
  paper does, by CA distances (`task.definition="ca"`: a CA within 8 A of a partner CA), or by
  ATOM3D's neighbour table (`"neighbors"`: residues with a heavy atom within 6 A of the
  partner) or heavy-atom distances (`"heavy"`); primary metric: AUROC. Splits: ATOM3D's
  official DIPS split folders (`task.split="official"`), or the paper's: a seeded random
  80 / 10 / 10 re-split of the test LMDB alone (`task.split="paper"`, as `main.py` does with
  `split_randomly(LMDBDataset(data_path + 'test'))`).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import jraph
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo.datasets.atom3d import (AtomsTable, LMDBDataset, ligand_atoms, parse_target,
                                    protein_from_atoms)
from jaxgeo.errors import ConfigError, DataError, StructureError
from jaxgeo.structure import Protein
from jaxgeo.tasks import base
from jaxgeo.tasks.contacts import DEFINITIONS, interface_labels

__all__ = ["PSROptions", "LBAOptions", "PPIOptions", "PSRTask", "LBATask", "PPITask"]


@dataclasses.dataclass(frozen=True)
class _CommonOptions:
  data_dir: str = ""         # folder with train/ val/ test/ LMDBs; "": <data root>/atom3d/<task>
  train: str = ""            # explicit LMDB folders (override data_dir)
  val: str = ""
  test: str = ""
  allow_pickle: bool = False  # read pkl-serialized LMDBs (runs code from the files: trust them)
  limit: int = 0             # first N records of each split; 0: all


@dataclasses.dataclass(frozen=True)
class PSROptions(_CommonOptions):
  label: str = "gdt_ts"


@dataclasses.dataclass(frozen=True)
class LBAOptions(_CommonOptions):
  label: str = "neglog_aff"
  pocket: bool = True
  ligand_hydrogens: bool = False
  standardize: bool = True


@dataclasses.dataclass(frozen=True)
class PPIOptions(_CommonOptions):
  definition: str = "ca"          # "ca" (the paper's, 8 A), "neighbors" (ATOM3D's table), "heavy"
  cutoff: float = 0.0             # A; 0: the definition's default
  split: str = "official"         # "official" (split folders) or "paper" (re-split of test/)
  split_seed: int = 0             # the paper split's seed

  def __post_init__(self):
    if self.definition not in ("neighbors", *DEFINITIONS):
      raise ConfigError(f"task.definition={self.definition!r}: expected 'neighbors', "
                        f"{', '.join(map(repr, DEFINITIONS))}")
    if self.split not in ("official", "paper"):
      raise ConfigError(f"task.split={self.split!r}: expected 'official' or 'paper'")


class _Atom3DTask(base.Task):
  """Shared loading: split LMDB folders, per-record conversion."""
  subfolder = ""

  def split_path(self, options, inputs: base.Inputs, split: str) -> pathlib.Path:
    """The split's LMDB: task.<split>, else data_dir/<split> or data_dir/data/<split>."""
    explicit = getattr(options, split)
    if explicit:
      return pathlib.Path(os.path.expanduser(str(explicit)))
    data_dir = base.data_folder(inputs, options.data_dir, self.subfolder)
    candidates = [data_dir / split, data_dir / "data" / split]
    for c in candidates:
      if (c / "data.mdb").is_file():
        return c
    raise DataError(f"{self.name}: no {split} LMDB found (looked in "
                    f"{', '.join(str(c) for c in candidates)}); download the dataset from "
                    f"atom3d.ai or set task.{split}")

  def required_paths(self, options, inputs) -> list[tuple[str, str]]:
    out = []
    for split in base.SPLITS:
      try:
        out.append((str(self.split_path(options, inputs, split)),
                    f"ATOM3D {self.name} {split} LMDB"))
      except DataError:
        data_dir = base.data_folder(inputs, options.data_dir, self.subfolder)
        out.append((str(data_dir / split), f"ATOM3D {self.name} {split} LMDB"))
    return out

  def record_examples(self, item: dict, where: str, groups: dict, options,
                      inputs: base.Inputs) -> list[jraph.GraphsTuple]:
    raise NotImplementedError

  def record_indices(self, split: str, options, inputs: base.Inputs, size: int
                     ) -> tuple[pathlib.Path, list[int]]:
    """(LMDB folder, record indices) of one split (all records of the split's LMDB)."""
    return self.split_path(options, inputs, split), list(range(size))

  def examples(self, split, options, inputs) -> base.Examples:
    path = self.lmdb_of(split, options, inputs)
    groups: dict = {}
    graphs = []
    with LMDBDataset(path, allow_pickle=options.allow_pickle) as ds:
      _, indices = self.record_indices(split, options, inputs, len(ds))
      if options.limit:
        indices = indices[:options.limit]
      for i in indices:
        item = ds[i]
        graphs.extend(self.record_examples(item, f"{path}: record {i} (id {item['id']!r})",
                                           groups, options, inputs))
    return base.Examples(graphs, {"records": len(indices)})

  def lmdb_of(self, split: str, options, inputs: base.Inputs) -> pathlib.Path:
    """The LMDB folder a split's records come from."""
    return self.split_path(options, inputs, split)

  @staticmethod
  def _table(item: dict, key: str, where: str) -> AtomsTable:
    value = item.get(key)
    if not isinstance(value, AtomsTable):
      raise DataError(f"{where}: no {key!r} atoms table (keys: {', '.join(sorted(item))})")
    return value

  @staticmethod
  def _score(item: dict, key: str, where: str) -> float:
    scores = item.get("scores")
    if not isinstance(scores, dict) or key not in scores:
      raise DataError(f"{where}: no scores[{key!r}] label")
    try:
      value = float(scores[key])
    except (TypeError, ValueError):
      raise DataError(f"{where}: scores[{key!r}]={scores[key]!r} is not a number") from None
    if not np.isfinite(value):
      raise DataError(f"{where}: scores[{key!r}] is not finite")
    return value

  @staticmethod
  def _protein(table: AtomsTable, where: str) -> Protein:
    try:
      return protein_from_atoms(table, where)
    except StructureError as e:
      raise DataError(str(e)) from None


class PSRTask(_Atom3DTask):
  """ATOM3D PSR: GDT_TS of protein models, per-target ranking (graph regression)."""
  name = "atom3d_psr"
  Options = PSROptions
  head = "graph"
  out_dim = 1
  primary_metric = "spearman_per_target"
  higher_is_better = True
  subfolder = os.path.join("atom3d", "psr")

  def record_examples(self, item, where, groups, options, inputs):
    protein = self._protein(self._table(item, "atoms", where), f"{where}: atoms")
    label = self._score(item, options.label, where)
    target = parse_target(str(item["id"]))
    group = groups.setdefault(target, len(groups))
    g = graph_lib.residue_graph(protein, **inputs.graph_options)
    g = graph_lib.with_globals(g, label=np.float32(label), group=np.int32(group))
    return [base.with_lm(g, protein, inputs)]

  def loss(self, outputs, batch, stats):
    return base.masked_mse(outputs["graph"], batch.globals["label"],
                           base.graph_label_mask(batch))

  def metrics(self, y_true, y_pred, group, stats):
    return base.regression_metrics(y_true, y_pred, group)


class LBATask(base.StandardizedRegression, _Atom3DTask):
  """ATOM3D LBA: -log affinity of a protein pocket + ligand (graph regression)."""
  name = "atom3d_lba"
  Options = LBAOptions
  head = "graph"
  out_dim = 1
  primary_metric = "rmse"
  higher_is_better = False
  subfolder = os.path.join("atom3d", "lba")

  def record_examples(self, item, where, groups, options, inputs):
    key = "atoms_pocket" if options.pocket else "atoms_protein"
    pocket = self._protein(self._table(item, key, where), f"{where}: {key}")
    if "atoms_ligand" not in item or not isinstance(item["atoms_ligand"], AtomsTable):
      raise DataError(f"{where}: no 'atoms_ligand' table: the ligand is missing")
    xyz, elements = ligand_atoms(item["atoms_ligand"], options.ligand_hydrogens,
                                 f"{where}: atoms_ligand")
    label = self._score(item, options.label, where)
    group = groups.setdefault(str(item["id"]), len(groups))
    g = graph_lib.residue_graph(pocket, atoms=(xyz, elements),
                                partner=np.zeros(len(pocket), np.int32), **inputs.graph_options)
    g = graph_lib.with_globals(g, label=np.float32(label), group=np.int32(group))
    if inputs.lm is None:
      return [g]
    return [base.with_lm(g, pocket, inputs, self._pocket_rows(item, pocket, key, where, inputs))]

  def _pocket_rows(self, item, pocket: Protein, key: str, where: str, inputs: base.Inputs):
    """LM rows of the pocket: from the whole protein's chains when the record has them
    (pocket residues matched by chain, number and insertion code), else the pocket's own."""
    if key == "atoms_pocket" and isinstance(item.get("atoms_protein"), AtomsTable):
      full = self._protein(item["atoms_protein"], f"{where}: atoms_protein")
      rows = inputs.lm.rows(full)
      index = {k: i for i, k in enumerate(zip(full.chain_id.tolist(),
                                              full.residue_number.tolist(),
                                              full.insertion_code.tolist()))}
      keys = list(zip(pocket.chain_id.tolist(), pocket.residue_number.tolist(),
                      pocket.insertion_code.tolist()))
      if all(k in index for k in keys):
        return rows[[index[k] for k in keys]]
    return inputs.lm.rows(pocket)

  def metrics(self, y_true, y_pred, group, stats):
    out = base.regression_metrics(y_true, y_pred, group)
    return {k: v for k, v in out.items() if not k.endswith("_per_target")}


class PPITask(_Atom3DTask):
  """ATOM3D PPI: interface residues of each subunit of a pair (node classification)."""
  name = "atom3d_ppi"
  Options = PPIOptions
  head = "node"
  out_dim = 1
  primary_metric = "auroc"
  higher_is_better = True
  subfolder = os.path.join("atom3d", "ppi")

  def lmdb_of(self, split, options, inputs):
    if options.split == "paper":
      return self.split_path(options, inputs, "test")
    return self.split_path(options, inputs, split)

  def record_indices(self, split, options, inputs, size):
    if options.split != "paper":
      return super().record_indices(split, options, inputs, size)
    # main.py: split_randomly(LMDBDataset(test)) -> 80 / 10 / 10 of a random permutation.
    order = np.random.default_rng(options.split_seed).permutation(size).tolist()
    n_val = n_test = int(0.1 * size)
    n_train = size - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
              "test": (n_train + n_val, size)}[split]
    return self.lmdb_of(split, options, inputs), sorted(order[bounds[0]:bounds[1]])

  def _subunits(self, pairs: AtomsTable, neighbors: AtomsTable | None, where: str
                ) -> tuple[str, str]:
    if neighbors is not None and len(neighbors) and {"subunit0", "subunit1"} <= set(
        neighbors.names):
      return str(neighbors["subunit0"][0]), str(neighbors["subunit1"][0])
    names = list(dict.fromkeys(pairs["subunit"].tolist()))
    if len(names) == 4:
      bound = [n for n in names if n.endswith("_bound")]
      lig = [n for n in bound if "ligand" in n]
      rec = [n for n in bound if "receptor" in n]
      if lig and rec:
        return lig[0], rec[0]
    if len(names) == 2:
      return names[0], names[1]
    raise DataError(f"{where}: atoms_pairs has {len(names)} subunits ({', '.join(names)}); "
                    "expected a pair")

  def record_examples(self, item, where, groups, options, inputs):
    pairs = self._table(item, "atoms_pairs", where)
    if "subunit" not in pairs:
      raise DataError(f"{where}: atoms_pairs has no 'subunit' column")
    definition = options.definition
    neighbors = item.get("atoms_neighbors") if isinstance(item.get("atoms_neighbors"),
                                                          AtomsTable) else None
    if definition == "neighbors" and neighbors is None:
      raise DataError(f"{where}: no 'atoms_neighbors' table for task.definition='neighbors'")
    names = self._subunits(pairs, neighbors if definition == "neighbors" else None, where)
    proteins = [self._protein(pairs.select(pairs["subunit"] == s), f"{where}: subunit {s}")
                for s in names]
    if definition == "neighbors":
      labels = []
      for side, (protein, s) in enumerate(zip(proteins, names)):
        keep = neighbors[f"subunit{side}"] == s
        keys = set(zip(neighbors[f"chain{side}"][keep].tolist(),
                       neighbors[f"residue{side}"][keep].astype(np.int64).tolist()))
        labels.append(np.array([(c, int(r)) in keys for c, r in zip(
            protein.chain_id.tolist(), protein.residue_number.tolist())], bool))
    else:
      labels = list(interface_labels(proteins[0], proteins[1], definition,
                                     options.cutoff or None))
    if not labels[0].any() or not labels[1].any():
      raise DataError(f"{where}: subunits {names[0]} and {names[1]} do not touch (no interface "
                      f"residue by the {definition!r} definition)")
    group = groups.setdefault(str(item["id"]), len(groups))
    graphs = []
    for protein, lab in zip(proteins, labels):
      g = graph_lib.residue_graph(protein, **inputs.graph_options)
      g = graph_lib.with_nodes(g, label=lab.astype(np.float32))
      g = graph_lib.with_globals(g, group=np.int32(group))
      graphs.append(base.with_lm(g, protein, inputs))
    return graphs

  def loss(self, outputs, batch, stats):
    return base.masked_bce(outputs["node"], batch.nodes["label"], base.node_label_mask(batch))

  def metrics(self, y_true, y_pred, group, stats):
    return base.classification_metrics(y_true, y_pred, group)
