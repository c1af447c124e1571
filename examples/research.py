"""Research code with jaxgeo's pure functions: interface prediction on two DB5.5 complexes,
written out by hand (no config, no trainer).

  python examples/research.py [--network gvp|egnn] [--complexes 1AY7,1CGI] [--steps 1]

Loads the bound receptor and ligand of each complex (examples/db5_backbone), labels the
interface residues (CA within 8 A of a partner CA, the paper's definition), builds the
paper's residue graphs, batches them into padded buckets, builds a network with `init` /
`apply`, and takes optax Adam steps on a masked binary cross-entropy with `jax.grad`.
Prints the loss before and after, and how far the parameters moved.
"""
from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgeo import batching, graph, nets
from jaxgeo.datasets import db5
from jaxgeo.tasks.contacts import interface_labels

DB5 = pathlib.Path(__file__).resolve().parent / "db5_backbone"


def labelled_graphs(db5_dir: pathlib.Path, pdb_id: str) -> list:
  """The receptor and ligand graphs of a complex, interface labels in nodes["label"]."""
  receptor, ligand = db5.load_complex(db5_dir, pdb_id)
  labels = interface_labels(receptor, ligand, "ca", 8.0)
  out = []
  for protein, label in zip((receptor, ligand), labels):
    g = graph.residue_graph(protein, edges="radius", radius=8.0, max_neighbors=32,
                            features="paper")
    out.append(graph.with_nodes(g, label=label.astype(np.float32)))
  return out


def loss_fn(params, model, rng, batch, is_training=True):
  """Mean binary cross-entropy over the real (unpadded) residues of a batch (padding
  nodes, masked out, never count)."""
  logits = model.apply(params, rng, batch, is_training=is_training)["node"][:, 0]
  node_mask = batching.masks(batch)[0]
  per_node = optax.sigmoid_binary_cross_entropy(logits, batch.nodes["label"])
  return jnp.sum(jnp.where(node_mask, per_node, 0.0)) / jnp.maximum(node_mask.sum(), 1)


def param_distance(a, b) -> float:
  """Euclidean distance between two parameter pytrees."""
  leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.sum((x - y) ** 2),
                                                            a, b))
  return float(jnp.sqrt(sum(leaves)))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--network", default="gvp", choices=("gvp", "egnn"))
  parser.add_argument("--complexes", default="1AY7,1CGI", help="complex ids, comma-separated")
  parser.add_argument("--db5", default=str(DB5), help="a DB5.5 folder (structures/)")
  parser.add_argument("--steps", type=int, default=1, help="optimizer steps")
  parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (the paper's)")
  args = parser.parse_args(argv)

  graphs = [g for pdb_id in args.complexes.split(",")
            for g in labelled_graphs(pathlib.Path(args.db5), pdb_id.strip())]
  buckets = batching.choose_buckets(graphs, batch_graphs=len(graphs), max_buckets=1)
  batch = next(batching.batches(graphs, buckets, batch_graphs=len(graphs)))
  batch = jax.tree_util.tree_map(jnp.asarray, batch)

  model = nets.make_model(nets.paper_config(args.network, fusion="none", head="node"))
  params = model.init(jax.random.key(0), batch)
  optimizer = optax.adam(args.lr)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, rng):
    grads = jax.grad(loss_fn)(params, model, rng, batch)     # dropout on (training)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  # The loss without dropout, before and after the steps.
  eval_loss = jax.jit(lambda p: loss_fn(p, model, jax.random.key(1), batch, False))
  before = float(eval_loss(params))
  new_params = params
  for i in range(args.steps):
    new_params, opt_state = step(new_params, opt_state, jax.random.fold_in(jax.random.key(2), i))
  after = float(eval_loss(new_params))
  residues = int(batching.masks(batch)[0].sum())
  print(f"{args.network}: {len(graphs)} graphs, {residues} residues, "
        f"{sum(x.size for x in jax.tree_util.tree_leaves(params)):,} parameters")
  print(f"loss before: {before:.6f}")
  print(f"loss after {args.steps} step(s): {after:.6f}")
  print(f"parameter change: {param_distance(params, new_params):.6f}")


if __name__ == "__main__":
  main()
