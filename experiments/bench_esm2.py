"""Residues/s of jaxgeo's ESM-2 embedding pipeline vs transformers.EsmModel, on this machine.

Both run the same random-weight model (esm2_t6_8M_UR50D and esm2_t12_35M_UR50D configs), the
same sequences and the same precision, with the same token budget per batch:
- jaxgeo: `embed_sequences` as `jaxgeo embed` runs it (length buckets, jitted Haiku model, the
  store writes included), the last layer kept. The first pass compiles (one compilation per
  batch shape, counted); the timed passes reuse the compiled functions.
- transformers: `EsmModel` (sdpa attention, `torch.inference_mode`), sequences sorted by length
  and padded to the longest of each batch (its usual best case: no recompilation to avoid), the
  last hidden state copied to numpy per sequence.
Passes alternate (jaxgeo, transformers, jaxgeo, ...) and the best of `--repeats` is kept, as
the machine is shared.

    python experiments/bench_esm2.py [--models 8M 35M] [--dtypes float32 bfloat16]
        [--n-seqs 48] [--repeats 2] [--out experiments/results/bench_esm2.json]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_ESM2 = REPO.parent / "shared" / "data" / "esm2"
MODELS = {"8M": "esm2_t6_8M_UR50D", "35M": "esm2_t12_35M_UR50D"}
# Published configs (used when ../shared/data/esm2 is absent).
FALLBACK = {
    "esm2_t6_8M_UR50D": dict(num_hidden_layers=6, hidden_size=320, num_attention_heads=20,
                             intermediate_size=1280),
    "esm2_t12_35M_UR50D": dict(num_hidden_layers=12, hidden_size=480, num_attention_heads=20,
                               intermediate_size=1920),
}
COMMON = dict(vocab_size=33, layer_norm_eps=1e-5, token_dropout=True, mask_token_id=32,
              pad_token_id=1, max_position_embeddings=1026, position_embedding_type="rotary",
              emb_layer_norm_before=False, hidden_act="gelu")


def hf_config(name: str) -> dict:
  f = SHARED_ESM2 / name / "config.json"
  if f.is_file():
    return json.loads(f.read_text())
  return {"_name_or_path": name, **COMMON, **FALLBACK[name]}


def sequences(n: int, seed: int) -> list[str]:
  """Random sequences with UniProt-like lengths (log-normal, median 250, 30..1000)."""
  rng = np.random.default_rng(seed)
  lengths = np.clip(rng.lognormal(np.log(250), 0.6, size=n), 30, 1000).astype(int)
  letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
  return ["".join(rng.choice(letters, size=int(l))) for l in lengths]


def run_jaxgeo(embedder, seqs, max_tokens, workdir):
  from jaxgeo.lm.embed import embed_sequences
  from jaxgeo.lm.store import EmbeddingStore
  store = EmbeddingStore(tempfile.mkdtemp(dir=workdir))
  r = embed_sequences(embedder, [(f"s{i}", s) for i, s in enumerate(seqs)], store,
                      max_tokens=max_tokens, progress=False)
  return r.residues / r.seconds, r.compilations, r.seconds


def run_torch(model, seqs, max_tokens, dtype):
  import torch
  from jaxgeo.lm import tokenizer
  order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
  batches, cur = [], []
  for i in order:
    longest = max([len(seqs[j]) for j in cur + [i]]) + 2
    if cur and longest * (len(cur) + 1) > max_tokens:
      batches.append(cur)
      cur = []
    cur.append(i)
  batches.append(cur)
  t0 = time.perf_counter()
  n = 0
  with torch.inference_mode():
    for b in batches:
      tokens, mask = tokenizer.batch_encode([seqs[i] for i in b])
      out = model(torch.from_numpy(tokens).long(), attention_mask=torch.from_numpy(mask).long())
      h = out.last_hidden_state.float()
      for r, i in enumerate(b):
        _ = h[r, 1:len(seqs[i]) + 1].numpy().copy()
        n += len(seqs[i])
  dt = time.perf_counter() - t0
  return n / dt, dt


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--models", nargs="+", default=["8M", "35M"], choices=sorted(MODELS))
  ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                  choices=["float32", "bfloat16"])
  ap.add_argument("--n-seqs", type=int, default=48)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--max-tokens", type=int, default=8192)
  ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "bench_esm2.json"))
  args = ap.parse_args()

  import jax
  import torch
  import transformers
  from jaxgeo.lm import esm2
  from jaxgeo.lm.embed import ESM2Embedder

  seqs = sequences(args.n_seqs, args.seed)
  results = []
  print(f"{len(seqs)} sequences, {sum(map(len, seqs)):,} residues (lengths "
        f"{min(map(len, seqs))}..{max(map(len, seqs))}); torch threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.1f}")
  with tempfile.TemporaryDirectory() as work:
    for key in args.models:
      name = MODELS[key]
      hf = hf_config(name)
      config = esm2.ESM2Config.from_hf(hf, name=name)
      folder = pathlib.Path(work) / name
      esm2.save_converted(folder, config, esm2.flatten_params(esm2.init_params(config)))
      tcfg = transformers.EsmConfig(**{k: v for k, v in hf.items() if not k.startswith("_")})
      base = transformers.EsmModel(tcfg, add_pooling_layer=False).eval()
      for dtype in args.dtypes:
        embedder = ESM2Embedder(folder, compute_dtype=dtype)
        model = base.to(getattr(torch, dtype))
        t = time.perf_counter()
        _, compiles, first = run_jaxgeo(embedder, seqs, args.max_tokens, work)
        run_torch(model, seqs[:4], args.max_tokens, dtype)  # warm-up
        ours, theirs = [], []
        for _ in range(args.repeats):
          ours.append(run_jaxgeo(embedder, seqs, args.max_tokens, work)[0])
          theirs.append(run_torch(model, seqs, args.max_tokens, dtype)[0])
        row = {"model": name, "dtype": dtype, "jaxgeo_res_per_s": max(ours),
               "transformers_res_per_s": max(theirs), "ratio": max(ours) / max(theirs),
               "compilations": compiles, "first_pass_s_with_compilation": first,
               "all_jaxgeo": ours, "all_transformers": theirs}
        results.append(row)
        print(f"{name:20s} {dtype:9s} jaxgeo {row['jaxgeo_res_per_s']:8.0f} res/s   "
              f"transformers {row['transformers_res_per_s']:8.0f} res/s   "
              f"ratio {row['ratio']:.2f}   compilations {compiles} "
              f"(first pass {first:.1f} s)   [{time.perf_counter() - t:.0f} s]", flush=True)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
          "load_average_end": os.getloadavg()[0], "jax": jax.__version__,
          "torch": torch.__version__, "transformers": transformers.__version__,
          "n_seqs": len(seqs), "residues": sum(map(len, seqs)), "max_tokens": args.max_tokens,
          "seed": args.seed}
  tmp = out.with_suffix(".tmp")
  tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
  os.replace(tmp, out)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
