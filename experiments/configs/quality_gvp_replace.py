"""Docking model quality on DB5.5: regress the DockQ of a docked complex (both partners in
one graph, inter-partner edges flagged). Train / val: 10 rigid-body decoys per bound complex
of the train / val splits, DockQ stratified over 10 bins of [0, 1] (2030 / 250 graphs); test:
the real models of ATTRACT, HDOCK, ClusPro, PatchDock, EquiDock and EquiDock without clashes
for the 25 test complexes (150 graphs). Labels cached in runs/cache/quality (generating them
takes a few CPU minutes once). Metrics: Spearman over all decoys (primary), Pearson, Kendall,
RMSE, per-complex means.

GVP-GNN, fusion 'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM runs).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 32 graphs, CA radius
graph 8 A with at most 32 neighbours.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("quality", "gvp", "replace", cache_dir="runs/cache/quality")
