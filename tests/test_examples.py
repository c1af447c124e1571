"""The shipped examples: the backbone-only DB5.5 copy (examples/db5_backbone, written by
experiments/make_backbone_examples.py) and the research-code example (examples/research.py)."""
import importlib.util
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxgeo import config as config_lib
from jaxgeo import residues, structure
from jaxgeo.datasets import db5
from jaxgeo.errors import DataError
from jaxgeo.tasks import contacts

REPO = pathlib.Path(__file__).resolve().parent.parent
BACKBONE = REPO / "examples" / "db5_backbone"
KEPT = [residues.ATOM_ORDER[a] for a in ("N", "CA", "C", "O", "CB")]


def make_backbone_examples():
  """experiments/make_backbone_examples.py as a module."""
  path = REPO / "experiments" / "make_backbone_examples.py"
  spec = importlib.util.spec_from_file_location("make_backbone_examples", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def interface_config(data_dir, **options):
  config = config_lib.paper_experiment("interface", "gvp", "none")
  config.task.update({"data_dir": str(data_dir), **options})
  return config


def shipped_splits():
  return {split: db5.read_split(BACKBONE, split) for split in db5.SPLITS}


def test_split_files_list_exactly_the_shipped_complexes():
  splits = shipped_splits()
  ids = [i for split in splits.values() for i in split]
  assert len(ids) == len(set(ids)), "a complex is in two splits (or twice in one)"
  expected = {f"{i}_{side}_b.pdb.gz" for i in ids for side in "rl"}
  shipped = {p.name for p in (BACKBONE / "structures").iterdir()}
  assert shipped == expected


def test_shipped_files_are_backbone_only_and_deterministic():
  size = 0
  for path in sorted((BACKBONE / "structures").iterdir()):
    raw = path.read_bytes()
    size += len(raw)
    assert raw[4:8] == b"\0\0\0\0", f"{path.name}: gzip mtime is not 0"
  assert size < 8e6   # the repository stays small (about 5 MB)
  for pdb_id in shipped_splits()["test"][:2]:
    for protein in db5.load_complex(BACKBONE, pdb_id):
      others = np.delete(protein.atom_mask, KEPT, axis=1)
      assert not others.any() and protein.atom_mask[:, residues.ATOM_ORDER["CA"]].all()
      assert protein.ligands == ()


def test_backbone_copy_round_trips_and_matches_the_shipped_files(shared_data, tmp_path):
  """The copy reads back with the same sequence, chains, numbering and N/CA/C/O/CB
  coordinates (1e-3 A) as DB5.5's file, and the shipped file is byte for byte what the
  script writes now."""
  make = make_backbone_examples()
  src = shared_data / "db5.5"
  for pdb_id in shipped_splits()["val"][:1] + shipped_splits()["train"][:1]:
    for source in db5.complex_files(src, pdb_id):
      target = tmp_path / source.name
      make.copy_structure(source, target)
      original, copy = structure.load_protein(source), structure.load_protein(target)
      assert copy.sequence == original.sequence
      np.testing.assert_array_equal(copy.chain_id, original.chain_id)
      np.testing.assert_array_equal(copy.residue_number, original.residue_number)
      np.testing.assert_array_equal(copy.insertion_code, original.insertion_code)
      np.testing.assert_array_equal(copy.atom_mask[:, KEPT], original.atom_mask[:, KEPT])
      mask = original.atom_mask[:, KEPT]
      np.testing.assert_allclose(copy.atom_positions[:, KEPT][mask],
                                 original.atom_positions[:, KEPT][mask], atol=1e-3)
      np.testing.assert_allclose(copy.cb, original.cb, atol=1e-3)
      assert target.read_bytes() == (BACKBONE / "structures" / source.name).read_bytes()
  # A change the check must catch.
  protein = structure.load_protein(db5.complex_files(src, pdb_id)[0])
  moved = protein.take(np.arange(1, len(protein)))
  assert make.round_trip_differences(protein, moved)


def test_shipped_splits_are_equidocks(shared_data):
  full = {split: db5.read_split(shared_data / "db5.5", split) for split in db5.SPLITS}
  shipped = shipped_splits()
  assert shipped["val"] == full["val"] and shipped["test"] == full["test"]
  assert shipped["train"] == full["train"][:len(shipped["train"])]


def test_interface_task_reads_the_backbone_copy():
  config = interface_config(BACKBONE, limit=1)
  splits = config_lib.load_task(config, None)[1].splits
  assert splits.sizes() == {"train": 2, "val": 2, "test": 2}
  receptor, ligand = db5.load_complex(BACKBONE, shipped_splits()["test"][0])
  labels = contacts.interface_labels(receptor, ligand)
  for g, protein, label in zip(splits.test, (receptor, ligand), labels):
    assert g.n_node[0] == len(protein)
    np.testing.assert_array_equal(g.nodes["label"], label)
    assert 0 < g.nodes["label"].sum() < len(protein)


def test_heavy_labels_on_a_backbone_copy_name_the_file(tmp_path):
  with pytest.raises(DataError) as error:
    config_lib.load_task(interface_config(BACKBONE, limit=1, definition="heavy"), None)
  message = str(error.value)
  first = shipped_splits()["train"][0]
  assert f"{first}_r_b.pdb.gz" in message and "full structures" in message
  assert "\n" not in message
  # Full structures (examples/structures) are accepted.
  (tmp_path / "structures").mkdir()
  (tmp_path / "splits").mkdir()
  for side in "rl":
    shutil.copy(REPO / "examples" / "structures" / f"1AY7_{side}_b.pdb.gz",
                tmp_path / "structures")
  for split in db5.SPLITS:
    (tmp_path / "splits" / f"{split}.txt").write_text("1AY7\n")
  splits = config_lib.load_task(interface_config(tmp_path, definition="heavy"), None)[1].splits
  assert splits.sizes() == {"train": 2, "val": 2, "test": 2}


def test_research_example_takes_a_step_that_lowers_the_loss():
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  result = subprocess.run(
      [sys.executable, str(REPO / "examples" / "research.py"), "--network", "egnn"],
      capture_output=True, text=True, env=env, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  numbers = {key: float(value) for key, value in re.findall(
      r"^(loss before|loss after 1 step\(s\)|parameter change): (\S+)$", result.stdout, re.M)}
  assert len(numbers) == 3, result.stdout
  before, after = numbers["loss before"], numbers["loss after 1 step(s)"]
  assert math.isfinite(before) and math.isfinite(after)
  assert numbers["parameter change"] > 0
  assert after < before


@pytest.mark.parametrize("net,lm,model", [("egnn", "unirep256", "unirep256"),
                                          ("gvp", "unirep", "unirep1900"),
                                          ("molformer", "unirep256", "unirep256")])
def test_quickstart_plans_rows_of_the_table_with_the_model_they_read(net, lm, model):
  """experiments/quickstart.sh (the README's main job): for each network / language model
  (named as `jaxgeo grid --lm`), the three rows it trains are rows of the table: interface,
  that network, fusion none / replace / replace, and the two LM rows read the model and its
  random-lm control."""
  from jaxgeo import rows
  env = {**os.environ, "QUICKSTART_PLAN": "1", "QUICKSTART_NET": net, "QUICKSTART_LM": lm}
  out = subprocess.run(["bash", str(REPO / "experiments" / "quickstart.sh")], env=env,
                       capture_output=True, text=True, check=True).stdout.splitlines()
  assert out[0] == f"language model: {model} {model}_random"
  none, with_lm, control = out[1].removeprefix("rows: ").split()
  configs = [rows.config(name) for name in (none, with_lm, control)]
  assert [c.task.name for c in configs] == ["interface"] * 3
  assert [c.model.network for c in configs] == [net] * 3
  assert [c.model.fusion.mode for c in configs] == ["none", "replace", "replace"]
  assert (configs[1].lm.model, configs[2].lm.model) == (model, f"{model}_random")


def test_quickstart_default_is_egnn_with_unirep256_and_bad_knobs_stop_it_first(tmp_path):
  script = str(REPO / "experiments" / "quickstart.sh")
  env = {k: v for k, v in os.environ.items() if not k.startswith("QUICKSTART_")}
  out = subprocess.run(["bash", script], env={**env, "QUICKSTART_PLAN": "1"},
                       capture_output=True, text=True, check=True).stdout
  assert "rows: interface_egnn_none interface_egnn_replace_unirep256 " in out
  for knob, value, message in [("QUICKSTART_NET", "resnet", "no such row"),
                               ("QUICKSTART_LM", "esm3", "--lm esm3: expected one of")]:
    done = subprocess.run(["bash", script], env={**env, knob: value,
                                                 "JAXGEO_RUNS": str(tmp_path / "runs")},
                          capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr
    assert "featurizing" not in done.stdout and not (tmp_path / "runs").exists()
