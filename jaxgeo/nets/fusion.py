"""Language-model fusion: residue identity and per-residue LM vectors -> node inputs.

One module shared by the three networks (see `FusionConfig` for the modes). Non-protein
nodes (aatype == `residues.LIGAND_ATOM`) take a learned element embedding (`nodes["element"]`)
where residues take their type embedding, and a zero LM vector whatever `nodes["lm"]`
holds there. The element embedding is an ordinary Haiku parameter (`fusion/element_embed`):
trained, saved and restored with every other parameter.
"""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from jaxgeo import residues
from jaxgeo.errors import DataError
from jaxgeo.nets import precision
from jaxgeo.nets.config import FusionConfig


class Fusion(hk.Module):
  """Node inputs [N, config.out_dim] from a graph's node dict."""

  def __init__(self, config: FusionConfig, name: str = "fusion"):
    super().__init__(name=name)
    self.config = config

  def _identity_embedding(self, aatype: jax.Array, element: jax.Array, is_ligand: jax.Array,
                          width: int, dtype, residues_too: bool = True) -> jax.Array:
    """Type embedding of residues (zeros when `residues_too` is False) and element
    embedding of ligand atoms: [N, width]."""
    c = self.config
    init = hk.initializers.TruncatedNormal(stddev=1.0)
    element_table = hk.get_parameter("element_embed", [c.num_elements, width], dtype=dtype,
                                     init=init)
    elem = precision.gather(element_table, jnp.clip(element, 0, c.num_elements - 1))
    if residues_too:
      residue_table = hk.get_parameter("residue_embed", [c.num_residue_types, width],
                                       dtype=dtype, init=init)
      res = precision.gather(residue_table, jnp.clip(aatype, 0, c.num_residue_types - 1))
    else:
      res = jnp.zeros_like(elem)
    return jnp.where(is_ligand[:, None], elem, res)

  def __call__(self, nodes: dict, dtype=jnp.float32) -> jax.Array:
    """Args:
      nodes: the graph's node dict: aatype [N] int, optional element [N] int, lm [N, D].
      dtype: float dtype of the outputs (and of new parameters).
    Returns:
      [N, config.out_dim] node inputs.
    """
    c = self.config
    aatype = nodes["aatype"]
    is_ligand = aatype == residues.LIGAND_ATOM
    element = nodes.get("element")
    if element is None:
      element = jnp.zeros_like(aatype)
    if c.mode == "none":
      return self._identity_embedding(aatype, element, is_ligand, c.embed_dim, dtype)
    lm = nodes.get("lm")
    if lm is None:
      raise DataError(f"model.fusion.mode={c.mode!r} needs nodes['lm'] (attach language-model "
                      "embeddings with jaxgeo.lm.attach), but the batch has none")
    if lm.shape[-1] != c.lm_dim:
      raise DataError(f"nodes['lm'] has width {lm.shape[-1]}, but model.fusion.lm_dim="
                      f"{c.lm_dim}")
    lm = jnp.where(is_ligand[:, None], 0.0, lm.astype(dtype))
    if c.mode == "replace":
      return lm + self._identity_embedding(aatype, element, is_ligand, c.lm_dim, dtype,
                                           residues_too=False)
    identity = self._identity_embedding(aatype, element, is_ligand, c.embed_dim, dtype)
    if c.mode == "concat":
      return jnp.concatenate([identity, lm], axis=-1)
    # project
    return identity + precision.Linear(c.embed_dim, name="lm_projection")(lm)
