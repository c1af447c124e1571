"""The language-model seam: per-residue rows of a Protein, read from the embedding store.

One object, built once by the trainer or a command from the experiment's `lm` section and
handed to `Task.load` (None when the network is not fused):

    features = lm.open_features("embeddings/", model="unirep1900", layer=1)
    rows = features.rows(protein)                  # [L, D] float32, chain by chain
    g = lm.attach(graph, rows)                     # nodes["lm"] [N, D]

A (multi-chain) protein's rows are its chains' entries concatenated in residue order: each
run of equal `chain_id` is one store entry keyed by its sequence, exactly what `jaxgeo embed
--structures` writes. A missing entry raises the store's one `DataError`, which names the
`jaxgeo embed` command that fills it.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterable

import numpy as np

from jaxgeo.errors import DataError
from jaxgeo.lm.store import EmbeddingStore, embed_command

__all__ = ["Features", "open_features", "chain_segments", "attach"]


def chain_segments(protein) -> list[tuple[str, str]]:
  """Each run of equal `chain_id` of a Protein. -> [(chain id, sequence)] in residue order."""
  chain_id = np.asarray(protein.chain_id)
  seq = protein.sequence
  if len(chain_id) != len(seq):
    raise DataError(f"{getattr(protein, 'source', 'protein')}: {len(seq)} residues but "
                    f"{len(chain_id)} chain ids")
  out, start = [], 0
  for i in range(1, len(seq) + 1):
    if i == len(seq) or chain_id[i] != chain_id[start]:
      out.append((str(chain_id[start]), seq[start:i]))
      start = i
  return out


@dataclasses.dataclass(frozen=True)
class Features:
  """Per-residue language-model rows of one (model, layer) from a store.

  Attributes:
    store: the EmbeddingStore holding the entries.
    model: the store's model name (e.g. "unirep1900", "esm2_t33_650M"), or the content
      fingerprint (or a unique prefix of 8+ hex digits) of the model, which the store resolves
      the name to (see `jaxgeo.lm.store`).
    layer: the layer whose outputs were stored.

  Reads check each entry's checksum and finite values (a damaged entry is a DataError at
  load time, not NaN losses an epoch later).
  """
  store: EmbeddingStore
  model: str
  layer: int

  @property
  def fingerprint(self) -> str | None:
    """The content fingerprint of the model whose vectors these are (None: a store written
    before fingerprints). Raises DataError when the name is ambiguous in the store."""
    return self.store.fingerprint(self.model)

  def sequence_rows(self, sequence: str) -> np.ndarray:
    """[L, D] float32 rows of one sequence (one store entry)."""
    return np.asarray(self.store.get(self.model, self.layer, sequence, verify=True), np.float32)

  def rows(self, protein) -> np.ndarray:
    """[L, D] float32 rows of a Protein, chain by chain, in residue order."""
    return np.concatenate([self.sequence_rows(seq) for _, seq in chain_segments(protein)],
                          axis=0)

  def missing(self, sequences: Iterable[str]) -> list[str]:
    """The distinct sequences (sorted) that have no entry in the store."""
    return sorted(s for s in set(sequences) if not self.store.has(self.model, self.layer, s))


def open_features(store_path: str | os.PathLike, model: str, layer: int) -> Features:
  """The Features of `model` / `layer` in the store folder `store_path`.

  Raises DataError, naming the `jaxgeo embed` command that fills it, when the folder is not
  an embedding store.
  """
  path = pathlib.Path(store_path)
  if not EmbeddingStore.is_store(path):
    raise DataError(f"embedding store {path}: no such store; compute the {model} layer "
                    f"{layer} embeddings with `{embed_command(model, path, layer)}`")
  return Features(EmbeddingStore(path, create=False), str(model), int(layer))


def attach(graph, rows: np.ndarray | None):
  """`graph` (a jraph.GraphsTuple of one protein) with `nodes["lm"] = rows` (None: unchanged).

  rows: [L, D]; L must equal the graph's node count, or the number of residue nodes
  (`nodes["aatype"] < 21`) when the graph also holds ligand atoms, whose rows are then zeros.
  -> GraphsTuple with nodes["lm"] float32 [N, D].
  """
  if rows is None:
    return graph
  emb = np.asarray(rows, dtype=np.float32)
  if emb.ndim != 2:
    raise DataError(f"attach: embedding must be [L, D], got shape {list(emb.shape)}")
  nodes = dict(graph.nodes)
  n = int(np.sum(graph.n_node))
  if emb.shape[0] == n:
    nodes["lm"] = emb
  else:
    aatype = nodes.get("aatype")
    residues = None if aatype is None else np.asarray(aatype) < 21
    if residues is not None and int(residues.sum()) == emb.shape[0]:
      full = np.zeros((n, emb.shape[1]), np.float32)
      full[residues] = emb
      nodes["lm"] = full
    else:
      extra = "" if residues is None else f" ({int(residues.sum())} residue nodes)"
      raise DataError(f"attach: embedding has {emb.shape[0]} rows but the graph has {n} nodes"
                      f"{extra}; was it computed for a different sequence or chain selection?")
  return graph._replace(nodes=nodes)
