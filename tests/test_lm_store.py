"""The embedding store: round trip, memory-mapped reads, errors, concurrent writers, attach."""
import subprocess
import sys
import pathlib

import numpy as np
import pytest

from jaxgeo.errors import DataError
from jaxgeo.lm.features import attach
from jaxgeo.lm.store import EmbeddingStore, entry_key

REPO = pathlib.Path(__file__).resolve().parent.parent


def _emb(length, dim=8, seed=0):
  return np.random.default_rng(seed).normal(size=(length, dim)).astype(np.float32)


def test_round_trip_is_exact_and_memory_mapped(tmp_path):
  store = EmbeddingStore(tmp_path / "s")
  e = _emb(5)
  assert not store.has("m", 3, "MKTAY")
  store.put("m", 3, "MKTAY", e)
  assert store.has("m", 3, "MKTAY") and store.has("m", 3, "mktay")  # keyed in uppercase
  got = store.get("m", 3, "MKTAY")
  assert isinstance(got, np.memmap) and not got.flags.writeable
  np.testing.assert_array_equal(got, e)
  assert got.dtype == np.float32 and got.shape == (5, 8)
  # Another layer / model is another entry.
  assert not store.has("m", 2, "MKTAY") and not store.has("other", 3, "MKTAY")
  # A second EmbeddingStore on the same folder sees it.
  np.testing.assert_array_equal(EmbeddingStore(tmp_path / "s").get("m", 3, "MKTAY"), e)
  assert len(store) == 1 and store.entries() == [("m", 3, "MKTAY")]
  path = store.entry_path("m", 3, "MKTAY")
  assert path.name == entry_key("m", 3, "MKTAY") + ".npy" and path.is_file()
  assert store.verify() == []


def test_float16_round_trip_error(tmp_path):
  store = EmbeddingStore(tmp_path)
  e = _emb(50, 320) * 3
  store.put("m", 1, "A" * 50, e, dtype="float16")
  got = np.asarray(store.get("m", 1, "A" * 50), np.float32)
  rel = np.abs(got - e).max() / np.abs(e).max()
  assert store.get("m", 1, "A" * 50).dtype == np.float16
  assert rel < 1e-3  # float16 keeps 11 significant bits: max relative error 2^-11 = 4.9e-4


def test_rewrite_counts_writes(tmp_path):
  store = EmbeddingStore(tmp_path)
  assert store.writes("m", 1, "MK") == 0
  store.put("m", 1, "MK", _emb(2))
  store.put("m", 1, "MK", _emb(2, seed=1))
  assert store.writes("m", 1, "MK") == 2
  np.testing.assert_array_equal(store.get("m", 1, "MK"), _emb(2, seed=1))


def test_missing_entry_names_it_and_the_command(tmp_path):
  store = EmbeddingStore(tmp_path / "st")
  with pytest.raises(DataError) as e:
    store.get("esm2_t6_8M_UR50D", 6, "MKTAYIAK")
  msg = str(e.value)
  for part in ("esm2_t6_8M_UR50D", "layer 6", "MKTAYIAK", "jaxgeo embed --model",
               f"--store {tmp_path / 'st'}", "--layers 6"):
    assert part in msg
  store.register_model("esm2_t6_8M_UR50D", "/models/esm2_8m", 320)
  with pytest.raises(DataError, match="jaxgeo embed --model /models/esm2_8m"):
    store.get("esm2_t6_8M_UR50D", 6, "MKTAYIAK")


def test_wrong_length_put_is_refused(tmp_path):
  with pytest.raises(DataError, match=r"expected \[3, D\]"):
    EmbeddingStore(tmp_path).put("m", 1, "MKT", _emb(4))


def test_corrupt_truncated_and_wrong_shape_entries_are_detected(tmp_path):
  store = EmbeddingStore(tmp_path)
  for i, seq in enumerate(["MKTAY", "ACDEF", "GHIKL", "MNPQR", "STVWY"]):
    store.put("m", 1, seq, _emb(5, seed=i))
  store.entry_path("m", 1, "MKTAY").write_bytes(b"not a numpy file")
  with pytest.raises(DataError, match="corrupt"):
    store.get("m", 1, "MKTAY")
  p = store.entry_path("m", 1, "ACDEF")
  p.write_bytes(p.read_bytes()[:-17])
  with pytest.raises(DataError, match="ACDEF"):
    store.get("m", 1, "ACDEF")
  np.save(store.entry_path("m", 1, "GHIKL"), _emb(5, dim=7))
  with pytest.raises(DataError, match=r"index says float32 \[5, 8\]"):
    store.get("m", 1, "GHIKL")
  # Same header, changed bytes: only the checksum notices.
  p = store.entry_path("m", 1, "MNPQR")
  raw = bytearray(p.read_bytes())
  raw[-1] ^= 0xFF
  p.write_bytes(bytes(raw))
  store.get("m", 1, "MNPQR")
  with pytest.raises(DataError, match="checksum"):
    store.get("m", 1, "MNPQR", verify=True)
  store.entry_path("m", 1, "STVWY").unlink()
  assert not store.has("m", 1, "STVWY")
  with pytest.raises(DataError, match="file is missing"):
    store.get("m", 1, "STVWY")
  problems = store.verify()
  assert len(problems) == 5


_WRITER = """
import sys, numpy as np
from jaxgeo.lm.store import EmbeddingStore
store = EmbeddingStore(sys.argv[1])
w = int(sys.argv[2])
for i in range(25):
  seq = "ACDEFGHIKLMNPQRSTVWY"[i % 20] * (i + 1)
  store.put("m", w, seq, np.full((i + 1, 4), w * 100 + i, np.float32))
  store.put("shared", 1, seq, np.full((i + 1, 4), i, np.float32))
"""


def test_concurrent_writers(tmp_path):
  procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(w)], cwd=REPO)
           for w in (1, 2, 3)]
  assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
  store = EmbeddingStore(tmp_path)
  assert len(store) == 3 * 25 + 25
  for w in (1, 2, 3):
    for i in range(25):
      seq = "ACDEFGHIKLMNPQRSTVWY"[i % 20] * (i + 1)
      assert (store.get("m", w, seq) == w * 100 + i).all()
      assert (store.get("shared", 1, seq) == i).all()
  assert sum(store.writes("shared", 1, "ACDEFGHIKLMNPQRSTVWY"[i % 20] * (i + 1))
             for i in range(25)) == 75
  assert store.verify() == []
  assert not list(tmp_path.rglob("*.tmp"))


def test_attach():
  jraph = pytest.importorskip("jraph")
  g = jraph.GraphsTuple(nodes={"aatype": np.array([0, 1, 2, 21, 21], np.int32)}, edges={},
                        senders=np.zeros(0, np.int32), receivers=np.zeros(0, np.int32),
                        n_node=np.array([5]), n_edge=np.array([0]), globals={})
  e = _emb(5)
  out = attach(g, e)
  assert out.nodes["lm"].dtype == np.float32 and out.nodes["lm"].shape == (5, 8)
  assert "aatype" in out.nodes and "lm" not in g.nodes
  # Residues only (ligand atoms get zeros).
  out = attach(g, _emb(3).astype(np.float16))
  np.testing.assert_allclose(out.nodes["lm"][:3], _emb(3).astype(np.float16).astype(np.float32))
  assert (out.nodes["lm"][3:] == 0).all()
  with pytest.raises(DataError, match="4 rows but the graph has 5 nodes"):
    attach(g, _emb(4))
