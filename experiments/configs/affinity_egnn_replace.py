"""Protein-ligand binding free energy on the FEP benchmark (15 targets, 369 posed ligands):
pocket residues within 8 A of the ligand plus the ligand's heavy atoms in one graph, label
dG (kcal/mol). Whole targets held out: 10 / 2 / 3 targets (277 / 32 / 60 ligands).
Metrics: RMSE (primary), Pearson / Spearman / Kendall overall and per target.

egnn with fusion 'replace': ESM-2 650M layer 33 vectors replace the
residue-type embedding (the paper's PLM runs).
The paper's schedule: Adam 1e-4, reduce-on-plateau x0.6, early stopping after 8 epochs, at
most 200 epochs, batches of 32 graphs.
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("affinity", "egnn", "replace", head="graph", out_dim=1)
  config.task.update(dict(data_dir="",
                          train_targets="cdk8,cmet,eg5,hif2a,p38,pde2,pfkfb3,shp2,syk,tnks2",
                          val_targets="cdk2,ptp1b", test_targets="mcl1,thrombin,tyk2",
                          pocket_cutoff=8.0, ligand_hydrogens=False, strict=False, limit=0,
                          standardize=True))
  config.data.edges = "radius"  # the paper: radius graph, 8 A, at most 32 neighbours
  config.train.batch_graphs = 32
  config.lm.model = "esm2_t33_650M"
  config.lm.layer = 33
  return config
