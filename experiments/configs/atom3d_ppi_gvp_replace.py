"""ATOM3D PPI (protein interface): per-residue interface labels of each subunit of a pair,
from ATOM3D's neighbour tables (heavy atoms within 6 A). Needs the ATOM3D PPI LMDBs
downloaded into <data root>/atom3d/ppi/{train,val,test} (or set task.train / val / test).
Metrics: AUROC pooled (primary), AUROC per pair, AUPRC.

GVP-GNN, fusion 'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM runs).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 32 graphs, CA radius
graph 8 A with at most 32 neighbours.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("atom3d_ppi", "gvp", "replace")
