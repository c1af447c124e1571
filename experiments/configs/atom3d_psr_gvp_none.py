"""ATOM3D PSR (protein structure ranking): regress the GDT_TS of CASP models, grouped by
target. Needs the ATOM3D PSR LMDBs (split-by-year) downloaded into
<data root>/atom3d/psr/{train,val,test} (or set task.train / val / test).
Metrics: Spearman per target (primary), global Spearman / Pearson / Kendall, RMSE.

GVP-GNN, fusion 'none': no language model (residue-type embedding, the paper's baseline).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 32 graphs, CA radius
graph 8 A with at most 32 neighbours.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("atom3d_psr", "gvp", "none")
