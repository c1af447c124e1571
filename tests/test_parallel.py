"""Every device of a host and of a pod: data-parallel training, evaluation, sharded ESM-2,
embedding over devices, processes and concurrent writers, multi-host start-up errors.

Checks that need several devices run once in a subprocess with 4 fake CPU devices
(`--xla_force_host_platform_device_count=4`) and report JSON; the tests assert on it.
"""
import json
import pathlib
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from jaxgeo import parallel
from jaxgeo.errors import ConfigError
from conftest import cpu_subprocess_env

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY_ESM = dict(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64, name="tiny")

FOUR_DEVICES = textwrap.dedent(r'''
import json, sys, pathlib
import numpy as np, jax, jax.numpy as jnp
from jaxgeo import config as config_lib, rows, train, parallel, batching, testing
from jaxgeo.errors import ConfigError
from jaxgeo.lm import esm2, embed
from jaxgeo.lm.store import EmbeddingStore
tmp = pathlib.Path(sys.argv[1])
out = {}
TINY = ["task.num_train=14", "task.num_val=5", "task.num_test=4", "task.min_length=20",
        "task.max_length=60", "model.egnn.hidden=16", "model.fusion.embed_dim=16",
        "train.epochs=2", "train.batch_graphs=4", "train.max_buckets=1", "train.lr=3e-3",
        "train.patience=0", "model.head_dropout=0.0"]
def cfg(devices):
  c = config_lib.apply_overrides(rows.config("position_demo"), TINY)
  with c.train.unlocked():
    c.train.devices = devices
  return c
leaves = jax.tree_util.tree_leaves
diff = lambda a, b: max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                        for x, y in zip(leaves(a), leaves(b)))

# 1. Steps on 4 devices == one device on the merged global batch.
s4, s1 = train.prepare(cfg(4)), train.prepare(cfg(1))
host = parallel.to_host(train.init_state(s1))
p4 = parallel.replicate(host, s4.mesh)
P4, O4, P1, O1 = p4["params"], p4["opt_state"], host["params"], host["opt_state"]
P1, O1 = jax.tree_util.tree_map(jnp.asarray, (P1, O1))
key = jnp.asarray(host["key"])
out["l4"], out["l1"], out["slots"] = [], [], []
plan = parallel.global_batches(s4.splits.train, s4.buckets, 4, 4, np.random.default_rng(0))
for step, (stacked, parts, slots) in enumerate(plan):
  out["slots"].append([len(p) for p in parts])
  P4, O4, l4 = s4.train_step(P4, O4, parallel.shard_stacked(stacked, s4.mesh), key,
                             jnp.int32(0), jnp.int32(step))
  graphs = [s4.splits.train[i] for i in np.concatenate(parts)]
  merged = batching.pad(graphs, batching.Bucket(512, 8192, 5))
  P1, O1, l1 = s1.train_step(P1, O1, merged, key, jnp.int32(0), jnp.int32(step))
  out["l4"].append(float(l4)); out["l1"].append(float(l1))
out["param_diff"] = diff(P4, P1)
out["opt_diff"] = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))) /
                           max(float(np.max(np.abs(np.asarray(y)))), 1e-6))
                     for x, y in zip(leaves(O4[0]), leaves(O1[0])))   # relative: Adam's nu
out["p4_sharding_replicated"] = all(x.sharding.is_fully_replicated for x in leaves(P4))
e4, e1 = train.evaluate(s4, P4, s4.splits.val), train.evaluate(s1, P1, s1.splits.val)
out["eval"] = {"count": [e4["count"], e1["count"]], "loss": [e4["loss"], e1["loss"]],
               "metrics": [e4["metrics"], e1["metrics"]],
               "real_nodes": int(sum(int(g.n_node[0]) for g in s1.splits.val))}

# 1b. The same for each network with its loops exercised (GVP-GNN's and EGNN's edge chunks with
# the padding-chunk skip, EGNN's also with their products stored by a custom VJP, Molformer's
# blocked attention with its custom backward pass): the constants they start a scan, a loop or
# a cond from must type-check inside shard_map.
NETS = {"gvp": ["model.gvp.node_dims=(16, 4)", "model.gvp.num_layers=2",
                "model.gvp.edge_chunk=64", "model.gvp.eval_edge_chunk=64",
                "model.gvp.dropout=0.0"],
        "egnn": ["model.egnn.edge_chunk=64"],
        "egnn_stored": ["model.egnn.edge_chunk=64", "model.egnn.store_chunk_dots=True"],
        "molformer": ["model.molformer.query_block=16", "model.molformer.key_block=16",
                      "model.molformer.dropout=0.0"]}
out["nets"] = {
    name: testing.parallel_step_vs_one_device(
        lambda d, extra=extra, net=name.split("_")[0]: config_lib.apply_overrides(
            cfg(d), [f"model.network={net}"] + extra), 4, batching.Bucket(512, 8192, 5), seed=1)
    for name, extra in NETS.items()}

# 1c. Balanced batches through the trainer on 4 devices: each pass holds every graph once, at
# most one device's share a slot, and an epoch trains.
cb = cfg(4)
with cb.train.unlocked():
  cb.train.batching = "balanced"
sb = train.prepare(cb)
seen, widest = [], 0
for _, _, (parts, _) in train.device_batches(sb, sb.splits.train, np.random.default_rng(0)):
  seen += np.concatenate(parts).tolist()
  widest = max(widest, max(len(p) for p in parts))
out["balanced"] = {"once": sorted(seen) == list(range(len(sb.splits.train))),
                   "widest": widest}
train.train(cb, tmp / "balanced", progress=False, stop_after_epochs=1)
out["balanced"]["loss"] = [json.loads(l)["train_loss"]
                           for l in (tmp / "balanced" / "log.jsonl").read_text().splitlines()]

# 2. A run folder on 4 devices, refused on 3, resumed on 2.
run = tmp / "run"
train.train(cfg(4), run, progress=False, stop_after_epochs=1)
try:
  train.train(cfg(3), run, progress=False)
  out["three"] = None
except ConfigError as e:
  out["three"] = str(e)
res = train.train(cfg(2), run, progress=False)
out["log"] = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
out["run"] = str(run)
# 2b. A checkpoint as `Checkpointer.save` wrote them until 2026-12-06: jax arrays replicated
# over 2 devices handed to orbax as they are.
import orbax.checkpoint as ocp
manager = ocp.CheckpointManager(tmp / "old_checkpoint", options=ocp.CheckpointManagerOptions(
    create=True, enable_async_checkpointing=False))
manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(
    train.init_state(train.prepare(cfg(2)))), meta=ocp.args.JsonSave({"epoch": 1})), force=True)
manager.wait_until_finished()
manager.close()
out["old_checkpoint"] = str(tmp / "old_checkpoint")
out["finished"] = res is not None and res["epochs_run"] == 2

# 3. ESM-2 with parameters sharded over a 4-device model axis == unsharded.
c = esm2.ESM2Config(**%(esm)s)
params = esm2.init_params(c, seed=1)
tokens = np.array([[0, 5, 6, 7, 8, 9, 2, 1], [0, 10, 11, 12, 2, 1, 1, 1]], np.int32)
fwd = esm2.make_forward(c, layers=(1, 2))
ref = fwd.apply(params, tokens)
mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(1, 4), ("data", "model"))
sharded = esm2.shard_params(params, mesh)
qkv = sharded["esm2/layers/~"]["qkv_w"]
out["qkv_shard_shape"] = list(qkv.addressable_shards[0].data.shape)
got = jax.jit(fwd.apply)(sharded, tokens)
out["esm_sharded_diff"] = max(float(np.max(np.abs(np.asarray(got[l]) - np.asarray(ref[l]))))
                              for l in (1, 2))

# 4. Embedding over 4 devices (2 x 2 mesh, rows not a multiple of 2) == one device.
folder = tmp / "esm"
esm2.save_converted(folder, c, esm2.flatten_params(params))
seqs = [("a", "MKTAYIAK"), ("b", "GSHMLEDPV"), ("c", "ACDEFGHIKLMNPQRSTVWY"), ("d", "MKV")]
results = {}
for devices, mp in ((1, 1), (4, 2)):
  e = embed.get_embedder(str(folder), devices=devices, model_parallel=mp)
  store = EmbeddingStore(tmp / f"store{devices}")
  embed.embed_sequences(e, seqs, store, progress=False, max_tokens=64)
  results[devices] = {s: np.asarray(store.get(e.fingerprint, 2, s)) for _, s in seqs}
out["embed_diff"] = max(float(np.max(np.abs(results[1][s] - results[4][s]))) for _, s in seqs)
print("RESULT " + json.dumps(out))
''') % {"esm": repr(TINY_ESM)}


@pytest.fixture(scope="module")
def four(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("four")
  proc = subprocess.run(
      [sys.executable, "-c", FOUR_DEVICES, str(tmp)], capture_output=True, text=True,
      timeout=600, cwd=REPO,
      env=cpu_subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
  return json.loads(lines[-1][len("RESULT "):])


# --- data-parallel training ----------------------------------------------------------------------

def test_four_devices_train_like_one_device_on_the_same_global_batches(four):
  # A global batch with fewer graphs than devices leaves all-padding slots: they add nothing.
  assert any(0 in s for s in four["slots"])
  np.testing.assert_allclose(four["l4"], four["l1"], rtol=2e-5)
  assert four["param_diff"] < 1e-5 and four["opt_diff"] < 1e-4
  assert four["p4_sharding_replicated"]


def test_every_network_trains_on_four_devices_like_one_device(four):
  # Fails (a shard_map type error in the subprocess) when a network starts a scan's carry or a
  # cond's branch from a constant that is not typed as varying over the data axis.
  assert set(four["nets"]) == {"gvp", "egnn", "egnn_stored", "molformer"}
  for net, r in four["nets"].items():
    np.testing.assert_allclose(r["loss"][0], r["loss"][1], rtol=2e-5, err_msg=net)
    assert r["param_diff"] < 1e-5, (net, r["param_diff"])


def test_balanced_batches_train_on_four_devices(four):
  assert four["balanced"]["once"] and four["balanced"]["widest"] == 1   # 4 graphs / 4 devices
  assert len(four["balanced"]["loss"]) == 1 and np.isfinite(four["balanced"]["loss"][0])


def test_evaluation_gathers_every_device_exactly_once(four):
  ev = four["eval"]
  assert ev["count"][0] == ev["count"][1] == ev["real_nodes"]   # no padding, no duplicates
  np.testing.assert_allclose(ev["loss"][0], ev["loss"][1], rtol=1e-5)
  for k, v in ev["metrics"][1].items():
    np.testing.assert_allclose(ev["metrics"][0][k], v, rtol=1e-4, atol=1e-6)


def test_run_folder_resumes_on_another_device_count_and_logs_per_device(four):
  log = four["log"]
  assert [r["devices"] for r in log] == [4, 2]
  assert four["finished"]
  first = log[0]
  assert len(first["per_device"]["graphs_per_second"]) == 4
  assert first["graphs_per_second"] > 0
  assert all(0 < e <= 1 for e in first["per_device"]["padding_efficiency_nodes"])
  # 3 devices cannot split a global batch of 4 graphs: one line saying so and what to do.
  assert four["three"] and "trained on 4 device(s)" in four["three"]
  assert "train.devices" in four["three"] and "\n" not in four["three"]


def test_checkpoint_of_two_devices_restores_from_shapes_on_one(four):
  """Checkpoints saved over 2 devices (the run's last one, host copies; and one written as
  before 2026-12-06, jax arrays replicated over the 2 devices), restored in this 1-device
  process from a template of shapes only (`train.abstract_state`, what `jaxgeo eval`,
  `predict` and `dock` restore into): the arrays a computed template gets, on this device."""
  from jaxgeo import config as config_lib
  from jaxgeo import train
  from jaxgeo.checkpoint import Checkpointer
  run = pathlib.Path(four["run"])
  config = config_lib.apply_overrides(config_lib.from_json(run / "config.json"),
                                      ["train.devices=1"])
  setup = train.prepare(config)
  leaves = jax.tree_util.tree_leaves
  for folder, step in ((run / "checkpoints" / "last", 2), (four["old_checkpoint"], 1)):
    restored = {}
    for kind, template in (("shapes", train.abstract_state(setup)),
                           ("arrays", train.init_state(setup))):
      checkpointer = Checkpointer(folder)
      restored[kind], _, restored[kind + "_step"] = checkpointer.restore(template)
      checkpointer.close()
    assert restored["shapes_step"] == restored["arrays_step"] == step
    assert len(leaves(restored["shapes"])) == len(leaves(restored["arrays"]))
    for a, b in zip(leaves(restored["shapes"]), leaves(restored["arrays"])):
      assert a.sharding.device_set == {jax.local_devices()[0]}
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --- ESM-2 and embedding over devices ------------------------------------------------------------

def test_sharded_esm2_forward_equals_unsharded(four):
  assert four["qkv_shard_shape"] == [2, 32, 24]     # [L, D, 3D / 4 devices]
  assert four["esm_sharded_diff"] < 1e-5


def test_embedding_over_devices_equals_one_device(four):
  assert four["embed_diff"] < 1e-5


def test_esm2_memory_table_from_the_configs():
  from jaxgeo.lm import esm2
  folder = REPO.parent / "shared" / "data" / "esm2" / "esm2_t48_15B_UR50D"
  if not folder.is_dir():
    pytest.skip("../shared/data/esm2 absent")
  config = esm2.load_config(folder)
  n = esm2.param_count(config)
  assert 15.0e9 < n < 15.3e9                         # "15B"
  f32 = esm2.memory_bytes(config, "float32")
  bf16 = esm2.memory_bytes(config, "bfloat16")
  assert f32["params"] > 60e9 and bf16["params"] < 0.51 * f32["params"]


def test_bfloat16_matrices_change_no_output_bit():
  import jax.numpy as jnp
  from jaxgeo.lm import esm2
  c = esm2.ESM2Config(**TINY_ESM)
  params = esm2.init_params(c)
  fwd = esm2.make_forward(c, compute_dtype=jnp.bfloat16)
  tokens = np.array([[0, 5, 6, 7, 2, 1]], np.int32)
  a = fwd.apply(params, tokens)[2]
  b = fwd.apply(esm2.cast_matrices(params, jnp.bfloat16), tokens)[2]
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --- processes ----------------------------------------------------------------------------------

def test_process_shares_partition_the_sequences():
  keys = [f"SEQ{i}" for i in range(50)]
  shares = [parallel.process_share(keys, i, 3) for i in range(3)]
  assert sorted(sum(shares, [])) == list(range(50))
  assert shares == [parallel.process_share(list(keys), i, 3) for i in range(3)]


@pytest.fixture(scope="module")
def tiny_esm(tmp_path_factory):
  from jaxgeo.lm import esm2
  folder = tmp_path_factory.mktemp("esm") / "tiny"
  c = esm2.ESM2Config(**TINY_ESM)
  esm2.save_converted(folder, c, esm2.flatten_params(esm2.init_params(c)))
  return folder


def test_more_processes_than_sequences_leaves_some_with_nothing_to_do(tiny_esm, tmp_path):
  from jaxgeo.lm import embed
  from jaxgeo.lm.store import EmbeddingStore
  e = embed.get_embedder(str(tiny_esm))
  seqs = [("a", "MKTAYIAK"), ("b", "GSHMLEDPV")]
  store = EmbeddingStore(tmp_path / "store")
  done = [embed.embed_sequences(e, seqs, store, progress=False, process_index=i,
                                process_count=5) for i in range(5)]
  assert sum(r.computed for r in done) == 2
  idle = [r for r in done if r.sequences == 0]
  assert len(idle) == 3 and all("nothing to do" in " ".join(r.notes) for r in idle)


CONCURRENT = textwrap.dedent(r'''
import sys, json
from jaxgeo.lm import embed
from jaxgeo.lm.store import EmbeddingStore
e = embed.get_embedder(sys.argv[1])
records = embed.read_fasta(sys.argv[2])
r = embed.embed_sequences(e, records, EmbeddingStore(sys.argv[3]), progress=False,
                          max_tokens=64)
print("RESULT " + json.dumps({"computed": r.computed, "skipped": r.skipped}))
''')


def test_two_processes_embed_overlapping_inputs_into_one_store(tiny_esm, tmp_path):
  from jaxgeo.lm import embed
  from jaxgeo.lm.store import EmbeddingStore
  rng = np.random.default_rng(0)
  aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
  seqs = ["".join(rng.choice(aa, size=int(rng.integers(8, 28)))) for _ in range(60)]
  (tmp_path / "a.fasta").write_text("".join(f">a{i}\n{s}\n" for i, s in enumerate(seqs[:40])))
  (tmp_path / "b.fasta").write_text("".join(f">b{i}\n{s}\n" for i, s in enumerate(seqs[20:])))
  store_dir = tmp_path / "store"
  EmbeddingStore(store_dir)
  procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tiny_esm),
                             str(tmp_path / f), str(store_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=cpu_subprocess_env())
           for f in ("a.fasta", "b.fasta")]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (o, err) in zip(procs, outs):
    assert p.returncode == 0, err[-2000:]
  results = [json.loads(o.split("RESULT ")[-1]) for o, _ in outs]
  assert sum(r["computed"] for r in results) == len(set(seqs))   # nothing computed twice
  store = EmbeddingStore(store_dir)
  e = embed.get_embedder(str(tiny_esm))
  for s in set(seqs):
    assert store.get(e.fingerprint, 2, s).shape == (len(s), 32)   # every entry complete
    assert store.writes(e.fingerprint, 2, s) == 1                  # and written once
  assert len(store) == len(set(seqs)) and store.verify() == []     # index consistent


# --- multi-host start-up and bad input -------------------------------------------------------------

def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_unreachable_coordinator_is_one_clear_error_within_the_timeout(monkeypatch):
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", f"127.0.0.1:{_free_port()}")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "1")
  tick = time.monotonic()
  with pytest.raises(ConfigError, match="cannot reach the coordinator .* within 2 s"):
    parallel.initialize(timeout_s=2)
  assert time.monotonic() - tick < 8


def test_partial_multi_host_environment_is_refused(monkeypatch):
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
  monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
  monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
  with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES, JAX_PROCESS_ID not"):
    parallel.initialize()


def test_device_counts_that_do_not_fit_are_refused():
  with pytest.raises(ConfigError, match="does not split evenly over 3 devices"):
    parallel.per_device_graphs(32, 3)
  assert parallel.per_device_graphs(32, 4) == 8
  with pytest.raises(ConfigError, match="device"):
    parallel.select_devices(10_000)


def test_cpu_devices_auto_is_one_per_core_dividing_the_batch():
  assert [parallel.cpu_device_count(0, b, cores=2) for b in (8, 32, 7, 1)] == [2, 2, 1, 1]
  assert parallel.cpu_device_count(0, 32, cores=12) == 8      # 12 does not divide 32
  assert parallel.cpu_device_count(0, 32, cores=1) == 1
  assert [parallel.even_split(b, 4) for b in (6, 8, 7, 2)] == [3, 4, 1, 2]
  assert parallel.cpu_device_count(3, 8, cores=2) == 3        # asked for: as asked
  # A network of WIDE_MODEL_WIDTH or wider stays on one device unless asked otherwise.
  assert parallel.cpu_device_count(0, 8, cores=2, width=100) == 2
  assert parallel.cpu_device_count(0, 8, cores=2, width=1280) == 1
  assert parallel.cpu_device_count(2, 8, cores=2, width=1280) == 2
  with pytest.raises(ConfigError, match="train.cpu_devices=-1"):
    parallel.cpu_device_count(-1, 8)


SPLIT_CPU = """
import json, jax
from jaxgeo import parallel
first = parallel.split_cpu(3)
devices = len(jax.devices())
print("RESULT " + json.dumps([first, devices, parallel.split_cpu(2), len(jax.devices())]))
"""


@pytest.mark.parametrize("xla_flags, expected", [
    ("", [3, 3, 3, 3]), ("--xla_force_host_platform_device_count=4", [4, 4, 4, 4])])
def test_split_cpu_before_jax_starts_and_never_after(xla_flags, expected):
  proc = subprocess.run([sys.executable, "-c", SPLIT_CPU], capture_output=True, text=True,
                        timeout=120, cwd=REPO, env=cpu_subprocess_env(XLA_FLAGS=xla_flags))
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and line, proc.stderr[-2000:]
  assert json.loads(line[0][len("RESULT "):]) == expected
  # Asking again once JAX runs (or against XLA_FLAGS) changes nothing and says so.
  assert "CPU device(s) requested; JAX already runs with" in proc.stderr


def stop_at_setup_jax(monkeypatch) -> list:
  """Makes `train.setup_jax` record the CPU devices it is asked for, then stop the command
  (a JaxgeoError: exit status 2). -> the list it records into."""
  from jaxgeo import train
  from jaxgeo.errors import JaxgeoError
  seen = []

  def setup_jax(*args, **kwargs):
    seen.append(kwargs.get("cpu_devices"))
    raise JaxgeoError("stop here")

  monkeypatch.setattr(train, "setup_jax", setup_jax)
  return seen


@pytest.mark.parametrize("overrides, legacy", [
    ([], False), (["train.cpu_devices=3"], False), ([], True),
    (["model.fusion.mode=replace", "model.fusion.lm_dim=1280", "model.egnn.hidden=1280"],
     False)])
def test_jaxgeo_train_splits_the_cpu_before_jax_starts(monkeypatch, tmp_path, overrides,
                                                       legacy):
  from jaxgeo import cli, config as config_lib, rows
  seen = stop_at_setup_jax(monkeypatch)
  config = rows.config("position_demo")
  source = ["--config", "position_demo"] + [a for o in overrides for a in ("--set", o)]
  if legacy:   # a run folder saved before train.cpu_devices existed resumes on one device
    saved = config.to_dict()
    del saved["train"]["cpu_devices"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    source = []
  assert cli.main(["train", *source, "--run-dir", str(tmp_path), "--no-progress"]) == 2
  expected = (1 if legacy or "model.egnn.hidden=1280" in overrides else
              3 if overrides else parallel.cpu_device_count(0, int(config.train.batch_graphs)))
  assert seen == [expected]
  assert config_lib.base_config().train.cpu_devices == 0


@pytest.mark.parametrize("command", ["eval", "predict"])
@pytest.mark.parametrize("saved, flag, expected", [
    ("auto", None, "auto"), ("auto", 1, 1), ("legacy", None, 1), ("auto", 3, 3),
    ("wide", None, 1), ("none", None, None)])
def test_commands_reading_a_run_split_the_cpu_as_the_run_did(monkeypatch, tmp_path, command,
                                                             saved, flag, expected):
  from jaxgeo import cli, config as config_lib, rows
  seen = stop_at_setup_jax(monkeypatch)
  config = rows.config("position_demo")
  if saved == "wide":
    config = config_lib.apply_overrides(config, [
        "model.fusion.mode=replace", "model.fusion.lm_dim=1280", "model.egnn.hidden=1280"])
  if saved != "none":
    data = config.to_dict()
    if saved == "legacy":   # saved before train.cpu_devices existed: trained on one device
      del data["train"]["cpu_devices"]
    (tmp_path / "config.json").write_text(json.dumps(data))
  args = (["eval", str(tmp_path)] if command == "eval" else
          ["predict", "--model", str(tmp_path), "x.pdb", "--out", str(tmp_path / "p.csv")])
  args.append("--no-progress")
  if flag is not None:
    args += ["--cpu-devices", str(flag)]
  assert cli.main(args) == 2
  if expected == "auto":
    expected = parallel.cpu_device_count(0, int(config.train.batch_graphs))
  assert seen == [expected]


def test_jaxgeo_eval_refuses_a_negative_cpu_device_count(tmp_path, capsys):
  from jaxgeo import cli, rows
  (tmp_path / "config.json").write_text(json.dumps(rows.config("position_demo").to_dict()))
  assert cli.main(["eval", str(tmp_path), "--cpu-devices", "-1", "--no-progress"]) == 2
  assert "train.cpu_devices=-1" in capsys.readouterr().err


def test_padding_slots_and_dealing():
  import jraph
  from jaxgeo import batching
  g = jraph.GraphsTuple(nodes={"x": np.ones((3, 2), np.float32)},
                        edges={"d": np.ones((2, 1), np.float32)},
                        senders=np.array([0, 1]), receivers=np.array([1, 2]),
                        n_node=np.array([3]), n_edge=np.array([2]),
                        globals={"label": np.ones((1,), np.float32)})
  batch = batching.pad([g, g], batching.Bucket(16, 8, 4))
  empty = parallel.padding_like(batch)
  node_mask, edge_mask, graph_mask = batching.masks(empty)
  assert not node_mask.any() and not edge_mask.any() and not graph_mask.any()
  assert batching.num_real_graphs(empty) == 0
  parts = parallel.split_graphs(np.arange(6), np.array([9, 1, 5, 5, 2, 8]), 3, 2)
  assert sorted(np.concatenate(parts).tolist()) == list(range(6))
  assert max(len(p) for p in parts) == 2
  # 9, 8 and 5 open the slots; the other 5 joins the 5, the 2 the 8, the 1 the 9.
  assert [p.tolist() for p in parts] == [[0, 1], [4, 5], [2, 3]]


def test_global_batches_cover_every_graph_once_in_the_buckets():
  from jaxgeo import batching, graph, testing
  rng = np.random.default_rng(0)
  graphs = [graph.residue_graph(testing.random_protein(int(n), rng), k=6)
            for n in np.clip(rng.lognormal(np.log(100), 0.7, 45), 8, 600).astype(int)]
  fill = {}
  for balanced in (False, True):
    buckets = batching.choose_buckets(graphs, batch_graphs=3, max_buckets=2, balanced=balanced)
    shapes = {(b.n_node, b.n_edge, b.n_graph) for b in buckets}
    for order in (None, np.random.default_rng(1)):
      seen, real, padded_nodes = [], 0, 0
      for stacked, parts, padded in parallel.global_batches(graphs, buckets, 6, 2, order,
                                                            balanced=balanced):
        assert len(parts) == 2 and all(len(p) <= 3 for p in parts)
        assert (stacked.nodes["s"].shape[1], stacked.senders.shape[1],
                stacked.n_node.shape[1]) in shapes
        seen.extend(np.concatenate(parts).tolist())
        real += sum(int(batching.masks(b)[0].sum()) for b in padded if b is not None)
        padded_nodes += stacked.nodes["s"].shape[0] * stacked.nodes["s"].shape[1]
      assert sorted(seen) == list(range(len(graphs)))
      fill[balanced, order is None] = real / padded_nodes
  # Slots dealt to about equal sizes fill their two shapes better, shuffled or not.
  assert fill[True, False] > fill[False, False] and fill[True, True] > fill[False, True]
