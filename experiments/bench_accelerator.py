"""Throughput and memory of jaxgeo on the first device JAX sees (GPU, TPU or CPU).

(a) ESM-2 650M (random weights, jaxgeo's Haiku model as `jaxgeo embed` builds it: block
    matrices stored in bfloat16, bfloat16 compute): forward throughput in residues/s on full
    batches of `--esm-batch` x `--esm-length` tokens, and model FLOPs utilisation (MFU): matmul
    FLOPs counted analytically (2 x block-matrix parameters per token for the dense layers,
    plus 4 x T x D per token per layer for q.k and the value product) over the device's peak
    (`--peak-tflops`; defaults: H100 / H200 989 (bf16 dense), A100 312, TPU v4 275, v5e 197,
    v5p 459, v6e 918; CPU and unknown devices: a jitted float32 / bfloat16 matmul measured
    here, the faster of the two). The attention implementation that ran (cuDNN's fused flash
    attention shows as a cuDNN custom call in the compiled program) is recorded.
(b) GVP-GNN, EGNN, Molformer (paper configurations, residue-type embedding; `molformer_dense`:
    with `model.molformer.attention_impl=dense`) and EGNN-1280 (the
    paper's "replace" configuration: hidden width 1280, random 1280-d vectors standing in for
    the ESM-2 embeddings): training-step (forward + backward + Adam, `jaxgeo.train.make_steps`,
    params and optimiser state donated) and evaluation-step throughput in graphs/s at the
    paper's batch (32 graphs; 4 for Molformer) on DB5.5 bound chains (CA radius graph 8 A, at
    most 32 neighbours, as experiments/bench_nets.py), compile time excluded; graph regression
    on random labels (the quality task's loss). `--precision bf16` sets
    `train.precision=bf16` (bfloat16 compute, float32 parameters and optimiser state); where
    this jaxgeo has no such key, the networks run in float32 and a note says so.

Peak device memory is `device.memory_stats()["peak_bytes_in_use"]` ("n/a" where the backend
reports none, e.g. CPU). It is a per-process high-water mark, so by default (not with
`--tiny`) every item runs in a child process of its own (`--isolate`): the peaks are then per
item. Results: a Markdown table on stdout and JSON in `--out`, rewritten after every item
(meta.complete stays false until the last), so that a run stopped part-way keeps what finished.

    python experiments/bench_accelerator.py [--precision f32|bf16] [--peak-tflops X]
        [--items esm2 gvp egnn molformer molformer_dense egnn_1280] [--attention auto|xla|cudnn|chunked]
        [--out experiments/results/bench_accelerator.json]
    python experiments/bench_accelerator.py --tiny     # ESM-2 8M, 8 small chains, 2 steps
    python experiments/bench_accelerator.py --item-timeout 150   # on a short lease: an item
        # that compiles for longer is recorded as timed out and the next one runs

Data (no network access needed): `--data`, else $JAXGEO_DATA, else $JAXGEO_SHARED_DATA, else
../shared/data beside the repository (db5.5/structures, esm2/<model>/config.json; the
published ESM-2 configs are used when the latter are absent). $JAXGEO_JAX_CACHE: the
persistent compilation cache folder, if set.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import pickle
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ITEMS = ("esm2", "gvp", "egnn", "molformer", "molformer_dense", "egnn_1280")
NETWORKS = ITEMS[1:]
ESM2_MODEL, ESM2_TINY = "esm2_t33_650M_UR50D", "esm2_t6_8M_UR50D"
# Published configs (used when <data>/esm2/<name>/config.json is absent).
ESM2_FALLBACK = {
    "esm2_t33_650M_UR50D": dict(num_hidden_layers=33, hidden_size=1280, num_attention_heads=20,
                                intermediate_size=5120),
    "esm2_t6_8M_UR50D": dict(num_hidden_layers=6, hidden_size=320, num_attention_heads=20,
                             intermediate_size=1280),
}
# Dense bfloat16 peak TFLOP/s by device kind (lower-case substrings of `device.device_kind`).
KNOWN_PEAK_TFLOPS = (("h200", 989.0), ("h100", 989.0), ("a100", 312.0), ("v5 lite", 197.0),
                     ("v5e", 197.0), ("v5p", 459.0), ("v6", 918.0), ("v4", 275.0))
PAPER_BATCH = {"gvp": 32, "egnn": 32, "molformer": 4, "molformer_dense": 4, "egnn_1280": 32}
# Items that are a network with settings of their own: (network, overrides).
VARIANTS = {"molformer_dense": ("molformer", ["model.molformer.attention_impl=dense"])}
NA = "n/a"


def data_root(arg: str | None) -> pathlib.Path:
  for value in (arg, os.environ.get("JAXGEO_DATA"), os.environ.get("JAXGEO_SHARED_DATA")):
    if value:
      return pathlib.Path(value).expanduser()
  return REPO.parent / "shared" / "data"


# --- device ------------------------------------------------------------------------------------

def device_info(device) -> dict:
  import jax
  return {"platform": device.platform, "device_kind": str(device.device_kind),
          "device": str(device), "devices_visible": len(jax.devices()), "jax": jax.__version__,
          "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}


def peak_memory(device):
  """peak_bytes_in_use of the device's allocator, or "n/a"."""
  try:
    stats = device.memory_stats()
  except Exception:  # backends without allocator statistics raise or return None
    stats = None
  if not stats or "peak_bytes_in_use" not in stats:
    return NA
  return int(stats["peak_bytes_in_use"])


def measure_matmul_tflops(device, n: int, repeats: int = 5) -> dict:
  """TFLOP/s of a jitted n x n matmul in float32 and bfloat16 (float32 accumulation), best
  of `repeats`."""
  import jax
  import jax.numpy as jnp
  out = {}
  for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
    key = jax.random.key(0)
    a = jax.device_put(jax.random.normal(key, (n, n), jnp.float32).astype(dtype), device)
    b = jax.device_put(jax.random.normal(jax.random.fold_in(key, 1), (n, n),
                                         jnp.float32).astype(dtype), device)
    f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
    jax.block_until_ready(f(a, b))
    best = math.inf
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(f(a, b))
      best = min(best, time.perf_counter() - t0)
    out[name] = 2.0 * n ** 3 / best / 1e12
  return out


def peak_tflops(device, flag: float | None, tiny: bool) -> tuple[float, str, dict]:
  """(peak TFLOP/s, where it comes from: "flag" / "table" / "measured", matmul measurements)."""
  if flag:
    return float(flag), "flag", {}
  kind = str(device.device_kind).lower()
  if device.platform != "cpu":
    for key, value in KNOWN_PEAK_TFLOPS:
      if key in kind:
        return value, "table", {}
  n = 512 if tiny else (2048 if device.platform == "cpu" else 8192)
  measured = measure_matmul_tflops(device, n)
  return max(measured.values()), "measured", {f"matmul_{n}_{k}_tflops": v
                                               for k, v in measured.items()}


# --- (a) ESM-2 ---------------------------------------------------------------------------------

def esm2_config(data: pathlib.Path, name: str):
  from jaxgeo.lm import esm2
  f = data / "esm2" / name / "config.json"
  if f.is_file():
    return esm2.ESM2Config.from_hf(json.loads(f.read_text()), name=name), str(f)
  hf = {"_name_or_path": name, "vocab_size": 33, "layer_norm_eps": 1e-5, "token_dropout": True,
        "mask_token_id": 32, "pad_token_id": 1, "max_position_embeddings": 1026,
        "position_embedding_type": "rotary", **ESM2_FALLBACK[name]}
  return esm2.ESM2Config.from_hf(hf, name=name), "published config (no config.json found)"


def esm2_flops_per_forward(config, batch: int, length: int) -> float:
  """Matmul FLOPs of one forward over batch x length tokens: 2 x (block matrices' parameters)
  per token, plus 4 x length x hidden per token per layer (q.k and the value product)."""
  d, f, n = config.hidden_size, config.intermediate_size, config.num_layers
  dense = n * (3 * d * d + d * d + 2 * d * f)
  tokens = batch * length
  return float(tokens * (2 * dense + 4 * length * d * n))


def bench_esm2(args, device) -> dict:
  import jax
  import jax.numpy as jnp
  from jaxgeo.lm import esm2, tokenizer
  name = ESM2_TINY if args.tiny else ESM2_MODEL
  config, source = esm2_config(args.data, name)
  batch, length = args.esm_batch, args.esm_length
  if length > config.max_position_embeddings - 2:
    raise SystemExit(f"--esm-length {length}: ESM-2 takes at most "
                     f"{config.max_position_embeddings - 2} tokens")
  try:  # initialise on the host, so that the device's peak memory is the forward's
    host = jax.devices("cpu")[0]
  except RuntimeError:
    host = device
  with jax.default_device(host):
    params = esm2.init_params(config, seed=0)
  params = jax.device_put(esm2.cast_matrices(params, jnp.bfloat16))
  rng = np.random.default_rng(0)
  tokens = rng.integers(4, 24, size=(batch, length)).astype(np.int32)   # the 20 amino acids
  tokens[:, 0], tokens[:, -1] = tokenizer.CLS_ID, tokenizer.EOS_ID
  tokens = jax.device_put(tokens)
  fwd = esm2.make_forward(config, compute_dtype=jnp.bfloat16, attention_impl=args.attention)
  t0 = time.perf_counter()
  compiled = jax.jit(fwd.apply).lower(params, tokens).compile()
  hlo = compiled.as_text()
  jax.block_until_ready(compiled(params, tokens))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.esm_steps):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, tokens))
    times.append(time.perf_counter() - t0)
  step = float(np.median(times))
  flops = esm2_flops_per_forward(config, batch, length)
  used = esm2.resolve_attention_impl(args.attention, config.head_size, jnp.bfloat16,
                                     device.platform)
  if used == "cudnn" and "__cudnn$fmha" not in hlo:   # `attention` fell back at trace time
    used = "xla (cuDNN refused the inputs)"
  peak, source_peak = args.peak, args.peak_source
  achieved = flops / step / 1e12
  return {
      "item": "esm2", "model": name, "config": source, "params": esm2.param_count(config),
      "dtype": "bfloat16", "batch": batch, "length": length,
      "attention_requested": args.attention, "attention_used": used,
      "residues_per_s": batch * (length - 2) / step, "tokens_per_s": batch * length / step,
      "step_s": step, "all_step_s": times, "compile_s": compile_s,
      "flops_per_forward": flops, "achieved_tflops": achieved, "peak_tflops": peak,
      "peak_source": source_peak, "mfu": achieved / peak,
      "peak_bytes_in_use": peak_memory(device),
  }


# --- (b) geometric networks -------------------------------------------------------------------

def load_graphs(data: pathlib.Path, limit: int | None, smallest: bool = False):
  """DB5.5 bound chains as residue graphs, as experiments/bench_nets.py builds them."""
  sys.path.insert(0, str(REPO / "experiments"))
  from bench_nets import load_db55
  return load_db55(data / "db5.5", limit, smallest)


def network_setup(name: str, precision: str):
  """(config, model, compute_model or None, precision, notes) of a network at the paper's
  configuration for a graph regression, with `train.precision` set."""
  import jax.numpy as jnp
  from jaxgeo import config as config_lib
  from jaxgeo import nets
  base, extra = VARIANTS.get(name, (name, []))
  base, fusion = (base[:-5], "replace") if base.endswith("_1280") else (base, "none")
  config = config_lib.paper_experiment("quality", base, fusion)   # graph head, LM width 1280
  with config.unlocked():
    config.train.batch_graphs = PAPER_BATCH[name]
  config = config_lib.apply_overrides(config, [f"train.precision={precision}", *extra])
  model_config = config_lib.model_config(config)
  model = nets.make_model(model_config)
  compute_model = nets.make_model(model_config, jnp.bfloat16) if precision == "bf16" else None
  return config, model, compute_model, precision, []


def bench_network(name: str, graphs, args, device) -> dict:
  import jax
  import jax.numpy as jnp
  from jaxgeo import batching, nets, tasks
  from jaxgeo import train as train_lib
  config, model, compute_model, used, notes = network_setup(name, args.precision)
  batch_graphs = int(config.train.batch_graphs)
  rng = np.random.default_rng(args.seed)
  buckets = batching.choose_buckets(graphs, batch_graphs=batch_graphs,
                                    max_buckets=args.buckets, seed=args.seed)
  planned = list(batching.batches(graphs, buckets, batch_graphs, rng=rng, return_indices=True))
  lm_dim = int(config.model.fusion.lm_dim) if config.model.fusion.mode != "none" else 0
  chosen, real = [], []
  for i in range(args.steps):
    batch, index = planned[i % len(planned)]
    nodes = dict(batch.nodes)
    if lm_dim:
      nodes["lm"] = rng.normal(size=(batch.nodes["x"].shape[0], lm_dim)).astype(np.float32)
    globals_ = dict(batch.globals or {})
    globals_["label"] = rng.normal(size=batch.n_node.shape[0]).astype(np.float32)
    chosen.append(jax.device_put(batch._replace(nodes=nodes, globals=globals_)))
    real.append(len(index))
  task = tasks.get_task("quality")    # graph regression: masked MSE on globals["label"]
  adam, plateau, optimizer = train_lib.make_optimizer(config)
  kwargs = {"compute_model": compute_model} if compute_model is not None else {}
  train_step, eval_step, _ = train_lib.make_steps(model, task, {}, adam, plateau, **kwargs)
  params = model.init(jax.random.key(args.seed), chosen[0], is_training=True)
  n_params = nets.param_count(params)
  state = {"params": params}
  state["opt"] = optimizer.init(state["params"])
  key = jax.random.key_data(jax.random.key(args.seed + 1))
  counter = {"step": 0}

  def train(b):
    state["params"], state["opt"], loss = train_step(
        state["params"], state["opt"], b, key, jnp.int32(0), jnp.int32(counter["step"]))
    counter["step"] += 1
    return loss

  evaluate = lambda b: eval_step(state["params"], b)[1]
  shapes = {}
  for b in chosen:  # one batch per bucket shape: compiled outside the timed passes
    shapes.setdefault(int(b.nodes["x"].shape[0]), b)
  t0 = time.perf_counter()
  for b in shapes.values():
    jax.block_until_ready(evaluate(b))
  compile_eval = time.perf_counter() - t0
  t0 = time.perf_counter()
  for b in shapes.values():
    jax.block_until_ready(train(b))
  compile_train = time.perf_counter() - t0

  def timed(fn) -> float:
    t0 = time.perf_counter()
    out = [fn(b) for b in chosen]
    jax.block_until_ready(out)
    return time.perf_counter() - t0

  compiled = (train_step._cache_size(), eval_step._cache_size())
  eval_s, train_s = timed(evaluate), timed(train)
  if (train_step._cache_size(), eval_step._cache_size()) != compiled:
    notes.append("the timed passes compiled again")
  losses = [float(evaluate(b)) for b in chosen[:1]]
  return {
      "item": name, "network": name, "params": n_params, "precision_requested": args.precision,
      "precision": used, "notes": notes, "batch_graphs": batch_graphs, "steps": len(chosen),
      "graphs": int(sum(real)), "buckets": len(shapes),
      "padded_nodes_per_batch": float(np.mean([b.nodes["x"].shape[0] for b in chosen])),
      "real_nodes_per_batch": float(np.mean([int(np.asarray(b.n_node)[:r].sum())
                                             for b, r in zip(chosen, real)])),
      "train_graphs_s": sum(real) / train_s, "eval_graphs_s": sum(real) / eval_s,
      "compile_s_train": compile_train, "compile_s_eval": compile_eval,
      "loss_after": losses[0], "peak_bytes_in_use": peak_memory(device),
  }


# --- driver ------------------------------------------------------------------------------------

def run_items(args, items, graphs=None, on_item=None) -> dict:
  """Runs `items` in this process, on the default device (arrays uncommitted, as `jaxgeo
  train` places them: committed arrays would make the second step compile again);
  `on_item(results so far)` after each. -> {"meta", "esm2", "networks"}."""
  import jax
  if os.environ.get("JAXGEO_JAX_CACHE"):
    jax.config.update("jax_compilation_cache_dir",
                      os.path.abspath(os.environ["JAXGEO_JAX_CACHE"]))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  device = jax.devices()[0]
  meta = device_info(device)
  out = {"meta": meta, "esm2": None, "networks": []}
  if "esm2" in items:
    args.peak, args.peak_source, measured = peak_tflops(device, args.peak_tflops, args.tiny)
    meta.update(measured)
    out["esm2"] = _guard("esm2", lambda: bench_esm2(args, device))
    print(json.dumps(out["esm2"]), flush=True)
    if on_item:
      on_item(out)
  for name in items:
    if name == "esm2":
      continue
    if graphs is None:
      graphs = load_graphs(args.data, args.limit, args.tiny)
    row = _guard(name, lambda: bench_network(name, graphs, args, device))
    print(json.dumps(row), flush=True)
    out["networks"].append(row)
    if on_item:
      on_item(out)
  return out


def _guard(name, fn) -> dict:
  """fn(), or a row naming the error (an out-of-memory item does not stop the others)."""
  try:
    return fn()
  except SystemExit:
    raise
  except Exception as e:  # noqa: BLE001 (recorded in the results, then the next item)
    return {"item": name, "error": f"{type(e).__name__}: {str(e)[:2000]}"}


def run_isolated(args, items, on_item=None) -> dict:
  """Every item in a child process of its own (per-item peak memory); the graphs are read
  once here and passed on in a pickle. This process never touches the device.
  `on_item(results so far)` after each item."""
  out = {"meta": None, "esm2": None, "networks": []}
  with tempfile.TemporaryDirectory() as work:
    graphs_file = None
    if any(i != "esm2" for i in items):
      graphs_file = pathlib.Path(work) / "graphs.pkl"
      graphs_file.write_bytes(pickle.dumps(load_graphs(args.data, args.limit, args.tiny)))
    for name in items:
      part = pathlib.Path(work) / f"{name}.json"
      cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--no-isolate",
             "--items", name, "--part", str(part), "--data", str(args.data),
             "--precision", args.precision, "--steps", str(args.steps),
             "--buckets", str(args.buckets), "--esm-batch", str(args.esm_batch),
             "--esm-length", str(args.esm_length), "--esm-steps", str(args.esm_steps),
             "--attention", args.attention, "--seed", str(args.seed)]
      if args.peak_tflops:
        cmd += ["--peak-tflops", str(args.peak_tflops)]
      if args.tiny:
        cmd.append("--tiny")
      if graphs_file is not None and name != "esm2":
        cmd += ["--graphs-file", str(graphs_file)]
      try:
        status = subprocess.run(cmd, cwd=REPO, timeout=args.item_timeout).returncode
        error = f"child process exited with status {status}"
      except subprocess.TimeoutExpired:   # the child is killed; the next item runs
        status, error = -1, f"timed out after {args.item_timeout:g} s (--item-timeout)"
      if status or not part.is_file():
        row = {"item": name, "error": error}
        if name == "esm2":
          out["esm2"] = row
        else:
          out["networks"].append(row)
      else:
        sub = json.loads(part.read_text())
        out["meta"] = {**(out["meta"] or {}), **sub["meta"]}
        if sub["esm2"] is not None:
          out["esm2"] = sub["esm2"]
        out["networks"] += sub["networks"]
      if on_item:
        on_item(out)
  return out


def _num(value, digits: int = 3) -> str:
  if not isinstance(value, (int, float)):
    return str(value)
  if value >= 1000:
    return f"{value:,.0f}"
  return f"{value:.{digits}g}"


def _bytes(value) -> str:
  return f"{value / 2 ** 30:.2f} GiB" if isinstance(value, int) else str(value)


def markdown(results: dict) -> str:
  m = results["meta"] or {}
  lines = [f"Device: {m.get('device_kind', '?')} ({m.get('platform', '?')}), JAX "
           f"{m.get('jax', '?')}; networks at train.precision={results.get('precision', '?')}",
           ""]
  e = results.get("esm2")
  if e is not None:
    lines += ["| ESM-2 | dtype | batch x length | attention | residues/s | TFLOP/s | peak "
              "TFLOP/s | MFU | peak memory |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    if "error" in e:
      lines.append(f"| esm2 | error: {e['error'][:200]} | | | | | | | |")
    else:
      lines.append(
          f"| {e['model']} | {e['dtype']} | {e['batch']} x {e['length']} | "
          f"{e['attention_used']} | {_num(e['residues_per_s'])} | "
          f"{_num(e['achieved_tflops'])} | {_num(e['peak_tflops'])} ({e['peak_source']}) | "
          f"{e['mfu']:.1%} | {_bytes(e['peak_bytes_in_use'])} |")
    lines.append("")
  if results.get("networks"):
    lines += ["| network | params | precision | batch | train graphs/s | eval graphs/s | peak "
              "memory |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in results["networks"]:
      if "error" in r:
        lines.append(f"| {r['item']} | error: {r['error'][:200]} | | | | | |")
        continue
      lines.append(f"| {r['network']} | {r['params']:,} | {r['precision']} | "
                   f"{r['batch_graphs']} | {_num(r['train_graphs_s'])} | "
                   f"{_num(r['eval_graphs_s'])} | {_bytes(r['peak_bytes_in_use'])} |")
  notes = sorted({n for r in results.get("networks", []) for n in r.get("notes", [])})
  if notes:
    lines += [""] + [f"Note: {n}" for n in notes]
  return "\n".join(lines)


def parse_args(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--out", type=pathlib.Path,
                  default=REPO / "experiments" / "results" / "bench_accelerator.json")
  ap.add_argument("--data", default=None, help="data folder (db5.5/, esm2/)")
  ap.add_argument("--items", nargs="+", default=list(ITEMS), choices=ITEMS)
  ap.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                  help="train.precision of the networks (ESM-2 always runs in bfloat16)")
  ap.add_argument("--peak-tflops", type=float, default=None,
                  help="the device's peak TFLOP/s for the MFU (default: from the device kind, "
                       "or measured)")
  ap.add_argument("--attention", default="auto",
                  choices=("auto", "xla", "cudnn", "chunked"), help="ESM-2 attention_impl")
  ap.add_argument("--tiny", action="store_true",
                  help="ESM-2 8M, the 8 smallest chains, 2 timed steps, one bucket (a quick "
                       "check on CPU)")
  ap.add_argument("--steps", type=int, default=None,
                  help="timed train / eval steps per network (default 20; --tiny 2)")
  ap.add_argument("--limit", type=int, default=None,
                  help="DB5.5 bound chains read (default all; --tiny 8)")
  ap.add_argument("--buckets", type=int, default=None,
                  help="batch shapes (max_buckets; default 4, --tiny 1)")
  ap.add_argument("--esm-batch", type=int, default=None, help="default 16 (--tiny 2)")
  ap.add_argument("--esm-length", type=int, default=None,
                  help="tokens per sequence, <cls> and <eos> included (default 1024, --tiny 128)")
  ap.add_argument("--esm-steps", type=int, default=None, help="timed forwards (default 10; "
                                                               "--tiny 2)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--item-timeout", type=float, default=None,
                  help="seconds one item's child process may run (compilation included) "
                       "before it is stopped and recorded as timed out; the next item then "
                       "runs (default: no limit; with --isolate only)")
  iso = ap.add_mutually_exclusive_group()
  iso.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                   help="one child process per item (the default without --tiny)")
  iso.add_argument("--no-isolate", dest="isolate", action="store_false")
  ap.add_argument("--part", type=pathlib.Path, default=None, help=argparse.SUPPRESS)
  ap.add_argument("--graphs-file", type=pathlib.Path, default=None, help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  defaults = dict(steps=(2, 20), limit=(8, None), buckets=(1, 4), esm_batch=(2, 16),
                  esm_length=(128, 1024), esm_steps=(2, 10))
  for key, (tiny, full) in defaults.items():
    if getattr(args, key) is None:
      setattr(args, key, tiny if args.tiny else full)
  if args.isolate is None:
    args.isolate = not args.tiny and args.part is None
  args.data = data_root(args.data)
  for key in ("steps", "buckets", "esm_batch", "esm_steps"):
    if getattr(args, key) < 1:
      ap.error(f"--{key.replace('_', '-')} must be at least 1")
  if args.esm_length < 3:
    ap.error("--esm-length must be at least 3")
  if args.item_timeout is not None and (args.item_timeout <= 0 or not args.isolate):
    ap.error("--item-timeout must be positive and needs --isolate (the default without "
             "--tiny)")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  items = [i for i in ITEMS if i in args.items]
  if args.part is not None:  # a child of run_isolated
    graphs = pickle.loads(args.graphs_file.read_bytes()) if args.graphs_file else None
    results = run_items(args, items, graphs)
    args.part.write_text(json.dumps(results))
    return 0
  from jaxgeo import io
  t0 = time.perf_counter()

  def save(partial: dict, complete: bool) -> dict:
    """Writes `partial` to --out (atomically): after every item, so that a run stopped
    part-way (a time limit, an out-of-memory kill) keeps the items it finished."""
    results = {**partial, "precision": args.precision}
    results["meta"] = {**(partial["meta"] or {}), "tiny": args.tiny, "data": str(args.data),
                       "isolated": args.isolate, "wall_s": time.perf_counter() - t0,
                       "load_average": os.getloadavg()[0], "complete": complete,
                       "items_requested": items}
    results["markdown"] = markdown(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write_json(args.out, results)
    return results

  on_item = lambda partial: save(partial, complete=False)
  results = (run_isolated(args, items, on_item) if args.isolate
             else run_items(args, items, on_item=on_item))
  results = save(results, complete=True)
  print("\n" + results["markdown"])
  print(f"wrote {args.out}")
  failed = [r["item"] for r in [results["esm2"] or {}] + results["networks"] if "error" in r]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
