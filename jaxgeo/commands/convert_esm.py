"""`jaxgeo convert-esm SRC --out DIR`: ESM-2 weights -> jaxgeo's safetensors + config, once.

The conversion itself is the library function `jaxgeo.lm.convert.convert`.
"""
from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
  from jaxgeo.lm import convert
  report = convert.convert(args.src, args.out, name=args.name, config_path=args.config)
  print("\n".join(report.lines()))
  return 0


def register(subparsers) -> None:
  p = subparsers.add_parser(
      "convert-esm", help="convert ESM-2 weights (HuggingFace or fair-esm) to jaxgeo's format",
      description="ESM-2 weights -> jaxgeo's safetensors + config, once. SRC: a HuggingFace "
      "model folder (model.safetensors, sharded, or pytorch_model.bin), a fair-esm .pt "
      "checkpoint, or a HuggingFace model id (downloads; needs internet). Writes "
      "params.safetensors and config.json into --out; loading them needs no torch. Every "
      "source tensor is used or listed as unused; missing or mismatched tensors are errors.")
  p.add_argument("src", help="HuggingFace folder, fair-esm .pt file, or model id")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--name", default=None,
                 help="model name used in the embedding store (default: from the source)")
  p.add_argument("--config", default=None,
                 help="HuggingFace-style config.json overriding/completing the source's config")
  p.set_defaults(func=run)
