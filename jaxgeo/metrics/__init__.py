"""Metrics computed on the host (numpy) after evaluation.

- `regression`: pearson, spearman, kendall (tau-b), rmse, mae, per_group ("mean per target").
- `classification`: auroc, auprc (average precision), per_group (e.g. per complex).
- `docking`: kabsch / superpose / rmsd, EquiDock's complex / interface / ligand RMSD on CA
  atoms, CAPRI fnat / interface RMSD / ligand RMSD and DockQ on atom37 heavy atoms.

All accept an optional boolean mask where padding may be present (padding never counts).
"""
from jaxgeo.metrics import classification, docking, regression

__all__ = ["classification", "docking", "regression"]
