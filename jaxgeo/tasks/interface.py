"""Protein-protein interface prediction on DB5.5 (the paper's PPI task): a node task.

For each complex of a split, each partner (the receptor chain group, then the ligand chain
group; bound structures `_b`) becomes one residue graph whose residues are labelled 1 when they
lie at the interface with the other partner:
- definition "ca" (default, the paper's): the residue's CA is within `cutoff` (8 A) of a CA
  of the partner;
- definition "heavy" (ATOM3D's PPI labels): some heavy atom of the residue is within `cutoff`
  (6 A) of a heavy atom of the partner.

Options (`config.task`, see `InterfaceOptions`): data_dir (the DB5.5 folder with structures/
and splits/; default <data root>/db5.5), splits_dir, definition ("ca" | "heavy"), cutoff,
bound, limit (first N complexes of each split), pos_weight (positive class weight in the loss).
LM features (`nodes["lm"]`) when the inputs carry them (each chain looked up by its sequence).

Each graph carries `nodes["label"] [N] float32` and `globals["group"] [1] int32` (the complex,
an index into the sorted ids of its split). Metrics: AUROC pooled over all residues
(primary), mean AUROC per complex, AUPRC pooled and per complex.
A complex whose partners do not touch (no interface residue) raises DataError naming it;
so does definition "heavy" on a backbone-only structure (e.g. examples/db5_backbone: atoms
N, CA, C, O, CB only): heavy-atom labels need the full structures.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib

import jraph
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo import residues
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.datasets import db5
from jaxgeo.lm.features import attach
from jaxgeo.structure import Protein
from jaxgeo.tasks import base
from jaxgeo.tasks.contacts import DEFINITIONS, interface_labels

logger = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class InterfaceOptions:
  """Options of `config.task` ("" / 0: the default noted)."""
  data_dir: str = ""        # DB5.5 folder; "": <data root>/db5.5
  splits_dir: str = ""      # "": <data_dir>/splits
  definition: str = "ca"    # "ca" (paper) or "heavy" (ATOM3D)
  cutoff: float = 0.0       # A; 0: 8 for "ca", 6 for "heavy"
  bound: bool = True        # bound (_b) structures; False: unbound (_u)
  limit: int = 0            # first N complexes of each split; 0: all
  pos_weight: float = 1.0   # weight of interface residues in the loss

  def __post_init__(self):
    if self.definition not in DEFINITIONS:
      raise ConfigError(f"task.definition={self.definition!r}: expected one of "
                        f"{sorted(DEFINITIONS)}")
    if self.cutoff < 0 or self.pos_weight <= 0:
      raise ConfigError(f"task.cutoff={self.cutoff}, task.pos_weight={self.pos_weight}: "
                        "cutoff must be >= 0 (0: the definition's) and pos_weight > 0")

  @property
  def label_cutoff(self) -> float:
    return self.cutoff if self.cutoff else DEFINITIONS[self.definition]


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
      g = attach(g, lm[i])
    out.append(g)
  return out


# atom37 slots beyond the backbone and CB: a structure with none of them is backbone-only.
_SIDE_CHAIN_SLOTS = np.array([i for i, name in enumerate(residues.ATOM_TYPES)
                              if name not in ("N", "CA", "C", "O", "CB")])


def is_backbone_only(protein: Protein) -> bool:
  """Whether no residue has a side-chain atom beyond CB (a backbone-only copy)."""
  return not protein.atom_mask[:, _SIDE_CHAIN_SLOTS].any()


def check_heavy_atoms(protein: Protein, path: pathlib.Path) -> None:
  """Raises DataError naming `path` when `protein` is backbone-only (definition "heavy")."""
  if is_backbone_only(protein):
    raise DataError(
        f"{path}: backbone-only structure (no side-chain atom beyond CB in any residue): "
        "task.definition='heavy' (heavy-atom interface labels) needs the full structures; "
        "use definition 'ca' or set task.data_dir to the full DB5.5")


class InterfaceTask(base.DB5Complexes, base.Task):
  """DB5.5 protein-protein interface residues (node classification, logits out)."""
  name = "interface"
  Options = InterfaceOptions
  head = "node"
  out_dim = 1
  primary_metric = "auroc"
  higher_is_better = True

  def examples(self, split, options, inputs) -> base.Examples:
    data_dir, _ = self.folders(options, inputs)
    names = self.split_ids(split, options, inputs)
    # Group ids: the complex's index among all splits' complexes (unique across splits).
    groups = db5.complex_group_ids(*(self.split_ids(s, options, inputs) for s in db5.SPLITS))
    graphs = []
    for pdb_id in names:
      receptor, ligand = db5.load_complex(data_dir, pdb_id, options.bound)
      if options.definition == "heavy":
        for protein, path in zip((receptor, ligand),
                                 db5.complex_files(data_dir, pdb_id, options.bound)):
          check_heavy_atoms(protein, path)
      lm = None
      if inputs.lm is not None:
        lm = (inputs.lm.rows(receptor), inputs.lm.rows(ligand))
      graphs.extend(labelled_graphs(receptor, ligand, pdb_id, groups[pdb_id], options.definition,
                                    options.label_cutoff, dict(inputs.graph_options), lm))
    labels = np.concatenate([g.nodes["label"] for g in graphs]) if graphs else np.zeros(0)
    info = {"complexes": len(names), "residues": int(labels.size),
            "positive_fraction": float(labels.mean()) if labels.size else 0.0}
    logger.info("interface task, %s split: %s", split, info)
    return base.Examples(graphs, info)

  def stats(self, options, train) -> dict[str, float]:
    return {"pos_weight": options.pos_weight}

  def loss(self, outputs, batch, stats):
    mask = base.node_label_mask(batch)
    return base.masked_bce(outputs["node"], batch.nodes["label"], mask, stats["pos_weight"])

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    return base.classification_metrics(y_true, y_pred, group)
