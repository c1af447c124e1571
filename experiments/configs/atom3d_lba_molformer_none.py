"""ATOM3D LBA (ligand binding affinity): pocket residues plus ligand heavy atoms, label
-log(Kd/Ki). Needs the ATOM3D LBA LMDBs (e.g. split-by-sequence-identity-30) downloaded into
<data root>/atom3d/lba/{train,val,test} (or set task.train / val / test).
Metrics: RMSE (primary), Pearson, Spearman, Kendall.

molformer with fusion 'none': no language model (residue-type embedding).
The paper's schedule: Adam 1e-4, reduce-on-plateau x0.6, early stopping after 8 epochs, at
most 200 epochs, batches of 4 graphs.
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("atom3d_lba", "molformer", "none", head="graph", out_dim=1)
  config.task.update(dict(data_dir="", train="", val="", test="", allow_pickle=False, limit=0,
                          label="neglog_aff", pocket=True, ligand_hydrogens=False,
                          standardize=True))
  config.data.edges = "knn"  # unused by Molformer (attention over all nodes of a graph)
  config.train.batch_graphs = 4
  config.lm.model = "esm2_t33_650M"
  config.lm.layer = 33
  return config
