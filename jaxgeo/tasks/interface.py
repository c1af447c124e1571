"""Protein-protein interface prediction on DB5.5 (the paper's PPI task): a node task.

For each complex of a split, each partner (the receptor chain group, then the ligand chain
group; bound structures `_b`) becomes one residue graph whose residues are labelled 1 when they
lie at the interface with the other partner:
- definition "ca" (default, the paper's): the residue's CA is within `cutoff` (8 A) of a CA
  of the partner;
- definition "heavy" (ATOM3D's PPI labels): some heavy atom of the residue is within `cutoff`
  (6 A) of a heavy atom of the partner.

Config (`config.task`, see `DEFAULTS`): data_dir (the DB5.5 folder with structures/ and
splits/; default <data root>/db5.5), splits_dir, definition ("ca" | "heavy"), cutoff,
bound, limit (first N complexes of each split), pos_weight (positive class weight in the loss).
Graph options from `config.data`; LM features (`nodes["lm"]`) from the store when
`config.model.fusion.mode != "none"` (each chain looked up by its sequence).

Each graph carries `nodes["label"] [N] float32` and `globals["group"] [1] int32` (the complex,
an index into the sorted ids of all splits). Metrics: AUROC pooled over all residues
(primary), mean AUROC per complex, AUPRC pooled and per complex.
A complex whose partners do not touch (no interface residue) raises DataError naming it.
"""
from __future__ import annotations

import logging
from typing import Any

import jraph
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.metrics import classification, docking
from jaxgeo.structure import Protein
from jaxgeo.tasks import base
from jaxgeo.tasks import docking_data as dd

logger = logging.getLogger(__name__)

DEFINITIONS = {"ca": 8.0, "heavy": 6.0}
# Options of `config.task` ("" / 0: the default noted).
DEFAULTS = {
    "data_dir": "",        # DB5.5 folder; "": <data root>/db5.5
    "splits_dir": "",      # "": <data_dir>/splits
    "definition": "ca",    # "ca" (paper) or "heavy" (ATOM3D)
    "cutoff": 0.0,         # A; 0: 8 for "ca", 6 for "heavy"
    "bound": True,         # bound (_b) structures; False: unbound (_u)
    "limit": 0,            # first N complexes of each split; 0: all
    "pos_weight": 1.0,     # weight of interface residues in the loss
}


def _ca_distances_below(a: np.ndarray, b: np.ndarray, cutoff: float) -> np.ndarray:
  """[La, Lb] bool: |a_i - b_j| < cutoff for a [La, 3], b [Lb, 3] (row chunks)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  out = np.zeros((a.shape[0], b.shape[0]), bool)
  for start in range(0, a.shape[0], 512):
    d2 = np.sum((a[start:start + 512, None, :] - b[None, :, :]) ** 2, axis=-1)
    out[start:start + 512] = d2 < cutoff * cutoff
  return out


def interface_labels(first: Protein, second: Protein, definition: str = "ca",
                     cutoff: float | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Interface residues of two partners.

  Args:
    first: La residues; second: Lb residues (in the same frame).
    definition: "ca" (CA-CA distance) or "heavy" (closest heavy-atom pair).
    cutoff: Angstrom; default 8 for "ca", 6 for "heavy".
  Returns:
    (labels of first [La] bool, labels of second [Lb] bool).
  """
  if definition not in DEFINITIONS:
    raise ConfigError(f"task.definition={definition!r}: expected one of {sorted(DEFINITIONS)}")
  cutoff = DEFINITIONS[definition] if cutoff is None else float(cutoff)
  if cutoff <= 0:
    raise ConfigError(f"task.cutoff={cutoff}: must be positive")
  if definition == "ca":
    contact = _ca_distances_below(first.ca, second.ca, cutoff)
    # Residues without a CA coordinate (never in a Protein: CA-less residues are dropped).
  else:
    d = docking.residue_distances(first.atom_positions, first.atom_mask, second.atom_positions,
                                  second.atom_mask, cutoff)
    contact = d < cutoff
  return contact.any(axis=1), contact.any(axis=0)


def labelled_graphs(receptor: Protein, ligand: Protein, name: str, group: int,
                    definition: str = "ca", cutoff: float | None = None,
                    graph_options: dict | None = None, lm: tuple | None = None
                    ) -> list[jraph.GraphsTuple]:
  """The two labelled graphs of one complex: receptor vs ligand, then ligand vs receptor.

  Args:
    receptor, ligand: the partners (same frame).
    name: complex name for error messages.
    group: the complex id stored in `globals["group"]`.
    definition, cutoff: see `interface_labels`.
    graph_options: keyword arguments of `graph.residue_graph`.
    lm: optional (receptor rows [Lr, D], ligand rows [Ll, D]) LM embeddings.
  Raises:
    DataError naming the complex when the partners do not touch.
  """
  lab_r, lab_l = interface_labels(receptor, ligand, definition, cutoff)
  if not lab_r.any() or not lab_l.any():
    cut = DEFINITIONS.get(definition) if cutoff is None else cutoff
    raise DataError(
        f"complex {name} ({receptor.source} + {ligand.source}): the partners do not touch "
        f"(no residue pair within {cut} A by the {definition!r} definition); check that both "
        "files are in the complex's frame (bound structures)")
  out = []
  for i, (protein, labels) in enumerate(((receptor, lab_r), (ligand, lab_l))):
    g = graph_lib.residue_graph(protein, **(graph_options or {}))
    g = graph_lib.with_nodes(g, label=labels.astype(np.float32))
    g = graph_lib.with_globals(g, group=np.int32(group))
    if lm is not None:
      g = dd.attach_rows(g, lm[i])
    out.append(g)
  return out


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           group: np.ndarray) -> dict[str, float]:
  """AUROC / AUPRC pooled and mean per group of per-node scores ([M] each)."""
  y_pred = np.asarray(y_pred, np.float64).reshape(y_true.shape[0], -1)[:, 0]
  return {
      "auroc": classification.auroc(y_true, y_pred),
      "auroc_per_complex": classification.per_group("auroc", y_true, y_pred, group),
      "auprc": classification.auprc(y_true, y_pred),
      "auprc_per_complex": classification.per_group("auprc", y_true, y_pred, group),
      "positive_fraction": float(np.mean(y_true)) if len(y_true) else float("nan"),
      "n": float(len(y_true)),
  }


class InterfaceTask(base.Task):
  """DB5.5 protein-protein interface residues (node classification, logits out)."""
  name = "interface"
  defaults = DEFAULTS
  head = "node"
  out_dim = 1
  primary_metric = "auroc"
  higher_is_better = True

  def __init__(self):
    self.pos_weight = 1.0
    self.info: dict[str, Any] = {}

  def _settings(self, config) -> dict:
    o = dd.task_options(config, DEFAULTS, self.name)
    definition = str(o["definition"])
    if definition not in DEFINITIONS:
      raise ConfigError(f"task.definition={definition!r}: expected one of {sorted(DEFINITIONS)}")
    data_dir = dd.data_folder(config, o["data_dir"], "db5.5")
    return {
        "data_dir": data_dir,
        "splits_dir": dd.data_folder(config, o["splits_dir"], "") if o["splits_dir"]
        else data_dir / "splits",
        "definition": definition,
        "cutoff": float(o["cutoff"]) if o["cutoff"] else DEFINITIONS[definition],
        "bound": bool(o["bound"]),
        "limit": int(o["limit"]),
        "pos_weight": float(o["pos_weight"]),
    }

  def split_ids(self, config) -> dict[str, list[str]]:
    s = self._settings(config)
    return {split: dd.limit_ids(dd.read_split(s["data_dir"], split, s["splits_dir"]), s["limit"])
            for split in dd.SPLITS}

  def required_paths(self, config) -> list[tuple[str, str]]:
    s = self._settings(config)
    return [(str(s["data_dir"] / "structures"), "DB5.5 structures"),
            (str(s["splits_dir"]), "DB5.5 split files")]

  def sequences(self, config) -> list[str]:
    """Chain sequences of every complex (reads the structures: ~30 s for all of DB5.5)."""
    from jaxgeo.lm.embed import chain_segments
    s = self._settings(config)
    out = []
    for ids in self.split_ids(config).values():
      for pdb_id in ids:
        for protein in dd.load_complex(s["data_dir"], pdb_id, s["bound"]):
          out.extend(seq for _, seq in chain_segments(protein))
    return sorted(set(out))

  def load(self, config, store) -> base.Splits:
    s = self._settings(config)
    self.pos_weight = s["pos_weight"]
    opts = dd.graph_options(config)
    ids = self.split_ids(config)
    groups = dd.complex_group_ids(*ids.values())
    out: dict[str, list] = {}
    stats = {}
    for split, names in ids.items():
      graphs = []
      for pdb_id in names:
        receptor, ligand = dd.load_complex(s["data_dir"], pdb_id, s["bound"])
        lm = None
        if dd.fusion_mode(config) != "none":
          lm = (dd.lm_rows(receptor, config, store), dd.lm_rows(ligand, config, store))
        graphs.extend(labelled_graphs(receptor, ligand, pdb_id, groups[pdb_id], s["definition"],
                                      s["cutoff"], opts, lm))
      out[split] = graphs
      labels = np.concatenate([g.nodes["label"] for g in graphs]) if graphs else np.zeros(0)
      stats[split] = {"complexes": len(names), "graphs": len(graphs),
                      "residues": int(labels.size),
                      "positive_fraction": float(labels.mean()) if labels.size else 0.0}
    self.info = {"splits": stats, "definition": s["definition"], "cutoff": s["cutoff"]}
    logger.info("interface task: %s", stats)
    return base.check_splits(base.Splits(out["train"], out["val"], out["test"]), self.name)

  def loss(self, outputs, batch):
    mask = base.node_label_mask(batch)
    return base.masked_bce(outputs["node"], batch.nodes["label"], mask, self.pos_weight)

  def metrics(self, y_true, y_pred, group) -> dict[str, float]:
    return classification_metrics(y_true, y_pred, group)
