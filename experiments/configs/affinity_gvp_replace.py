"""Protein-ligand binding free energy on the FEP benchmark (15 targets, 369 posed ligands):
pocket residues within 8 A of the ligand plus the ligand's heavy atoms in one graph, label
dG (kcal/mol). Whole targets held out: 10 / 2 / 3 targets (277 / 32 / 60 ligands).
Metrics: RMSE (primary), Pearson / Spearman / Kendall overall and per target.

GVP-GNN, fusion 'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM runs).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 32 graphs, CA radius
graph 8 A with at most 32 neighbours.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("affinity", "gvp", "replace")
