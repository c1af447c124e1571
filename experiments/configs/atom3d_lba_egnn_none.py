"""ATOM3D LBA (ligand binding affinity): pocket residues plus ligand heavy atoms, label
-log(Kd/Ki). Needs the ATOM3D LBA LMDBs (e.g. split-by-sequence-identity-30) downloaded into
<data root>/atom3d/lba/{train,val,test} (or set task.train / val / test).
Metrics: RMSE (primary), Pearson, Spearman, Kendall.

EGNN, fusion 'none': no language model (residue-type embedding, the paper's baseline).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 32 graphs, CA radius
graph 8 A with at most 32 neighbours.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("atom3d_lba", "egnn", "none")
