"""Docking model quality on DB5.5: regress the DockQ of a docked complex (both partners in
one graph, inter-partner edges flagged). Train / val: 10 rigid-body decoys per bound complex
of the train / val splits, DockQ stratified over 10 bins of [0, 1] (2030 / 250 graphs); test:
the real models of ATTRACT, HDOCK, ClusPro, PatchDock, EquiDock and EquiDock without clashes
for the 25 test complexes (150 graphs). Labels cached in runs/cache/quality (generating them
takes a few CPU minutes once). Metrics: Spearman over all decoys (primary), Pearson, Kendall,
RMSE, per-complex means.

gvp with fusion 'replace': ESM-2 650M layer 33 vectors replace the
residue-type embedding (the paper's PLM runs).
The paper's schedule: Adam 1e-4, reduce-on-plateau x0.6, early stopping after 8 epochs, at
most 200 epochs, batches of 32 graphs.
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("quality", "gvp", "replace", head="graph", out_dim=1)
  config.task.update(dict(data_dir="", docking_dir="", splits_dir="", decoys_per_complex=10,
                          val_decoys_per_complex=0, bins=10, max_evals=5, seed=0,
                          methods="attract,hdock,cluspro,patchdock,equidock,equidock_no_clashes",
                          test_decoys="methods", cache_dir="runs/cache/quality", limit=0))
  config.data.edges = "radius"  # the paper: radius graph, 8 A, at most 32 neighbours
  config.train.batch_graphs = 32
  config.lm.model = "esm2_t33_650M"
  config.lm.layer = 33
  return config
