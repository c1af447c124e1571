"""Language-model fusion: the four modes, ligand atoms, parameter counts."""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgeo import nets, residues
from jaxgeo.nets import fusion
from jaxgeo.commands.params import markdown_table
from jaxgeo.nets import params as params_lib

LM, EMBED = 5, 3


def _nodes():
  """Two residues and two ligand atoms; `lm` is deliberately non-zero on the atoms."""
  rng = np.random.default_rng(0)
  return {
      "aatype": np.array([0, 7, residues.LIGAND_ATOM, residues.LIGAND_ATOM], np.int32),
      "element": np.array([0, 0, residues.element_index("C"), residues.element_index("Zn")],
                          np.int32),
      "lm": rng.normal(size=(4, LM)).astype(np.float32),
  }


def _fused(mode: str):
  config = nets.FusionConfig(mode=mode, lm_dim=LM, embed_dim=EMBED)
  fn = hk.without_apply_rng(hk.transform(lambda nodes: fusion.Fusion(config)(nodes)))
  nodes = _nodes()
  params = fn.init(jax.random.PRNGKey(0), nodes)
  return config, params, np.asarray(fn.apply(params, nodes)), nodes


@pytest.mark.parametrize("mode", ["none", "replace", "concat", "project"])
def test_fusion_modes(mode):
  config, params, out, nodes = _fused(mode)
  assert out.shape == (4, config.out_dim)
  p = {k: np.asarray(v) for k, v in params["fusion"].items()}
  elements = p["element_embed"][nodes["element"][2:]]
  if mode == "none":
    np.testing.assert_allclose(out[:2], p["residue_embed"][[0, 7]])
    np.testing.assert_allclose(out[2:], elements)
  elif mode == "replace":
    assert "residue_embed" not in p
    np.testing.assert_allclose(out[:2], nodes["lm"][:2])             # the LM vector itself
    np.testing.assert_allclose(out[2:], elements)                    # atoms: no LM vector
  elif mode == "concat":
    np.testing.assert_allclose(out[:2, :EMBED], p["residue_embed"][[0, 7]])
    np.testing.assert_allclose(out[:2, EMBED:], nodes["lm"][:2])
    np.testing.assert_allclose(out[2:, :EMBED], elements)
    np.testing.assert_allclose(out[2:, EMBED:], 0.0)
  else:
    w = {k: np.asarray(v) for k, v in params["fusion/lm_projection"].items()}
    projected = nodes["lm"][:2] @ w["w"] + w["b"]
    np.testing.assert_allclose(out[:2], p["residue_embed"][[0, 7]] + projected, rtol=1e-5)
    np.testing.assert_allclose(out[2:], elements + w["b"], rtol=1e-5)  # LM vector zeroed


def test_ligand_element_embedding_is_a_trained_parameter():
  """Gradients reach the rows of the elements present, and the parameter round-trips
  through a plain numpy save/restore like every other one."""
  config = nets.FusionConfig(mode="replace", lm_dim=LM)
  fn = hk.without_apply_rng(hk.transform(lambda nodes: fusion.Fusion(config)(nodes)))
  nodes = _nodes()
  params = fn.init(jax.random.PRNGKey(0), nodes)
  grads = jax.grad(lambda p: jnp.sum(fn.apply(p, nodes) ** 2))(params)
  row_norms = np.abs(grads["fusion"]["element_embed"]).sum(axis=1)
  present = sorted(set(nodes["element"][2:].tolist()))
  assert np.all(row_norms[present] > 0)
  assert np.all(np.delete(row_norms, present) == 0)
  flat = {f"{m}/{k}": np.asarray(v) for m, d in params.items() for k, v in d.items()}
  restored = {}
  for key, value in flat.items():
    module, name = key.rsplit("/", 1)
    restored.setdefault(module, {})[name] = value
  np.testing.assert_array_equal(fn.apply(restored, nodes), fn.apply(params, nodes))


def test_parameter_counts():
  """"project" keeps each network near its own size; "replace" with the paper's widening
  multiplies EGNN by ~1000."""
  counts = nets.paper_counts(1280)
  for network in ("gvp", "egnn", "molformer"):
    base = counts[(network, "none")]
    assert counts[(network, "project")] - base == 1280 * (32) + 32  # the projection only
  assert counts[("egnn", "replace")] > 1000 * counts[("egnn", "none")]
  assert counts[("molformer", "replace")] > 1000 * counts[("molformer", "none")]
  # GVP: the LM vector only widens its first layer.
  assert counts[("gvp", "replace")] < 1.3 * counts[("gvp", "none")]
  table = markdown_table(counts, 1280)
  assert f"{counts[('egnn', 'none')]:,}" in table


def test_models_md_is_current():
  """docs/models.md holds the table `jaxgeo params --markdown` prints."""
  import pathlib
  path = pathlib.Path(__file__).resolve().parent.parent / "docs" / "models.md"
  text = path.read_text()
  assert markdown_table(nets.paper_counts(1280), 1280) in text, (
      "docs/models.md is stale: regenerate its table with `jaxgeo params --markdown`")


@pytest.mark.parametrize("features", ["paper", "rich"])
def test_count_params_matches_init(features):
  """`nets.count_params` (shapes only) equals the size of the parameters `init` makes."""
  config = nets.paper_config("egnn", fusion="project", lm_dim=LM)
  params = jax.jit(nets.make_model(config).init)(
      jax.random.key(0, impl="rbg"), params_lib.example_graph(config, features))
  assert nets.param_count(params) == nets.count_params(config, features)


def test_count_params_checks_the_featurisation():
  from jaxgeo.errors import ConfigError
  config = nets.paper_config("gvp").replace(node_features=True)
  with pytest.raises(ConfigError, match="node_features"):
    nets.count_params(config, "paper")
  with pytest.raises(ConfigError, match="features='knn'"):
    nets.count_params(nets.paper_config("gvp"), "knn")
  # GVP-GNN reads the dihedral scalars and the 3 node vectors of "rich" graphs.
  assert nets.count_params(config, "rich") > nets.count_params(nets.paper_config("gvp"),
                                                               "rich")
