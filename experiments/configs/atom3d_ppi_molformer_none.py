"""ATOM3D PPI (protein interface): per-residue interface labels of each subunit of a pair,
from ATOM3D's neighbour tables (heavy atoms within 6 A). Needs the ATOM3D PPI LMDBs
downloaded into <data root>/atom3d/ppi/{train,val,test} (or set task.train / val / test).
Metrics: AUROC pooled (primary), AUROC per pair, AUPRC.

molformer with fusion 'none': no language model (residue-type embedding).
The paper's schedule: Adam 1e-4, reduce-on-plateau x0.6, early stopping after 8 epochs, at
most 200 epochs, batches of 4 graphs.
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("atom3d_ppi", "molformer", "none", head="node", out_dim=1)
  config.task.update(dict(data_dir="", train="", val="", test="", allow_pickle=False, limit=0,
                          definition="neighbors", cutoff=0.0))
  config.data.edges = "knn"  # unused by Molformer (attention over all nodes of a graph)
  config.train.batch_graphs = 4
  config.lm.model = "esm2_t33_650M"
  config.lm.layer = 33
  return config
