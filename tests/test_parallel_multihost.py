"""Two processes on loopback train like one process with two devices.

Two CPU processes (one device each) join one run through `jax.distributed` (the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID launch of `launch.sh`, on
127.0.0.1) and train the same run folder through `jaxgeo.train.train`; one process with two
fake CPU devices (`--xla_force_host_platform_device_count=2`) trains the same config, so the
same global batches. The final parameters must agree to float32 rounding, and only process 0
writes the run folder's files (config, log, results; orbax writes the checkpoint collectively).
"""
import json
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import cpu_subprocess_env

REPO = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT_S = 240

WORKER = textwrap.dedent(r'''
import json, os, sys, pathlib
import numpy as np
mode, run, other = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
from jaxgeo import config as config_lib, rows, train, parallel
from jaxgeo.checkpoint import Checkpointer
TINY = ["task.num_train=6", "task.num_val=2", "task.num_test=2", "task.min_length=20",
        "task.max_length=36", "model.egnn.hidden=8", "model.egnn.num_layers=1",
        "model.fusion.embed_dim=8", "train.epochs=1", "train.batch_graphs=2",
        "train.max_buckets=1", "train.lr=3e-3", "train.patience=0", "model.head_dropout=0.0",
        "train.devices=0"]
config = config_lib.apply_overrides(rows.config("position_demo"), TINY)
# Which run-folder files each process writes (orbax checkpoints are collective, not counted).
writes = []
def spy(name, fn):
  def wrapped(*args, **kwargs):
    writes.append(name)
    return fn(*args, **kwargs)
  return wrapped
train.io.atomic_write_json = spy("atomic_write_json", train.io.atomic_write_json)
train.config_lib.write_json = spy("write_json", train.config_lib.write_json)
train._write_log = spy("write_log", train._write_log)
result = train.train(config, run, progress=False)
import jax
out = {"mode": mode, "process": jax.process_index(), "processes": jax.process_count(),
       "devices": len(jax.devices()), "local_devices": len(jax.local_devices()),
       "writes": writes, "test_loss": result["test_loss"], "val_loss": result["val_loss"]}
if mode == "reference":
  # Final parameters of both run folders (checkpoints/last), restored on this process's mesh.
  setup = train.prepare(config)
  template = train.init_state(setup)
  states = [Checkpointer(pathlib.Path(r) / "checkpoints" / "last").restore(template)[0]
            for r in (run, other)]
  leaves = [jax.tree_util.tree_leaves(parallel.to_host(s["params"])) for s in states]
  out["param_leaves"] = len(leaves[0])
  out["param_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(*leaves))
  out["param_scale"] = max(float(np.max(np.abs(a))) for a in leaves[0])
  init = jax.tree_util.tree_leaves(parallel.to_host(template["params"]))
  out["moved"] = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves[0], init))
print("RESULT " + json.dumps(out), flush=True)
''')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _result(proc_out: str, err: str, code: int) -> dict:
  lines = [l for l in proc_out.splitlines() if l.startswith("RESULT ")]
  assert code == 0 and lines, proc_out[-3000:] + err[-3000:]
  return json.loads(lines[-1][len("RESULT "):])


def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
  multi, single = tmp_path / "multi", tmp_path / "single"
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, "-c", WORKER, "multi", str(multi), "-"], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, cwd=REPO,
      env=cpu_subprocess_env(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2",
                             JAX_PROCESS_ID=str(i), JAXGEO_DISTRIBUTED_TIMEOUT="60"))
      for i in range(2)]
  try:
    outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  workers = [_result(o, e, p.returncode) for p, (o, e) in zip(procs, outs)]
  assert [(w["process"], w["processes"], w["devices"], w["local_devices"]) for w in workers] \
      == [(0, 2, 2, 1), (1, 2, 2, 1)]
  # Only process 0 writes the run folder's files; both see the same numbers.
  assert workers[0]["writes"] and workers[1]["writes"] == []
  assert workers[0]["test_loss"] == pytest.approx(workers[1]["test_loss"], rel=1e-6)
  log = [json.loads(l) for l in (multi / "log.jsonl").read_text().splitlines()]
  assert [(r["epoch"], r["devices"], r["processes"]) for r in log] == [(1, 2, 2)]
  assert (multi / "test_metrics.json").exists()

  proc = subprocess.run(
      [sys.executable, "-c", WORKER, "reference", str(single), str(multi)], capture_output=True,
      text=True, timeout=TIMEOUT_S, cwd=REPO,
      env=cpu_subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  ref = _result(proc.stdout, proc.stderr, proc.returncode)
  assert (ref["processes"], ref["devices"]) == (1, 2)
  assert ref["param_leaves"] > 0 and ref["moved"] > 1e-6      # the steps changed the params
  assert ref["param_diff"] <= 1e-5 * max(1.0, ref["param_scale"])
  np.testing.assert_allclose(workers[0]["test_loss"], ref["test_loss"], rtol=1e-5)
  np.testing.assert_allclose(workers[0]["val_loss"], ref["val_loss"], rtol=1e-5)
