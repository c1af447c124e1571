"""jaxgeo's ESM alphabet vs transformers.EsmTokenizer."""
import os
import pathlib

import numpy as np
import pytest

from jaxgeo.errors import DataError
from jaxgeo.lm import tokenizer

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_ESM2 = pathlib.Path(os.environ.get("JAXGEO_SHARED_DATA", REPO.parent / "shared" / "data")) / "esm2"

SEQUENCES = [
    "M", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "ACDEFGHIKLMNPQRSTVWY",
    "XXXX", "MUZBOX", "BZUOX" * 7, "M.-K", "MKT<mask>L", "<unk>AC", "<mask><mask>",
    "LAGVSERTIDPKQNFYMHWCXBUZO" * 41,  # 1025 residues
]


@pytest.fixture(scope="module")
def hf():
  transformers = pytest.importorskip("transformers")
  folder = SHARED_ESM2 / "esm2_t6_8M_UR50D"
  if (folder / "vocab.txt").is_file():
    return transformers.EsmTokenizer.from_pretrained(str(folder))
  vocab = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"jaxgeo_esm_vocab_{os.getpid()}.txt"
  vocab.write_text("\n".join(tokenizer.ALPHABET))
  return transformers.EsmTokenizer(vocab_file=str(vocab))


def test_alphabet_matches_vocab(hf):
  assert len(tokenizer.ALPHABET) == 33 == hf.vocab_size
  assert hf.get_vocab() == {t: i for i, t in enumerate(tokenizer.ALPHABET)}
  assert (tokenizer.CLS_ID, tokenizer.PAD_ID, tokenizer.EOS_ID, tokenizer.UNK_ID,
          tokenizer.MASK_ID) == (hf.cls_token_id, hf.pad_token_id, hf.eos_token_id,
                                 hf.unk_token_id, hf.mask_token_id)


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_encode_equals_hf(hf, sequence):
  assert tokenizer.encode(sequence).tolist() == hf(sequence)["input_ids"]


@pytest.mark.parametrize("sequence", ["mktayiak", "acdefghiklmnpqrstvwyxbzuo", "MkTaY", "m.-k"])
def test_lowercase_reads_as_uppercase(hf, sequence):
  # EsmTokenizer turns a run of lowercase letters into a single <unk>; we read each letter.
  assert tokenizer.encode(sequence).tolist() == hf(sequence.upper())["input_ids"]
  assert len(tokenizer.encode(sequence)) == len(sequence) + 2
  assert tokenizer.normalize_sequence(sequence) == sequence.upper()


def test_batch_encode_equals_hf_padding(hf):
  batch = ["MKTAYIAK", "MK", "ACDEXBZUO"]
  tokens, mask = tokenizer.batch_encode(batch)
  ref = hf(batch, padding=True)
  assert tokens.tolist() == ref["input_ids"]
  assert mask.astype(int).tolist() == ref["attention_mask"]
  tokens, mask = tokenizer.batch_encode(batch, length=16)
  assert tokens.shape == (3, 16) and (tokens[:, 11:] == tokenizer.PAD_ID).all()
  with pytest.raises(DataError, match="shorter"):
    tokenizer.batch_encode(batch, length=4)


@pytest.mark.parametrize("bad, char", [("MKJL", "'J'"), ("MK*", "'*'"), ("MK1", "'1'"),
                                       ("MK L", "' '"), ("MKé", "'é'"), ("MK<foo>", "'<'")])
def test_invalid_characters_name_the_sequence(bad, char):
  with pytest.raises(DataError, match=char) as e:
    tokenizer.encode(bad, name="chainA")
  assert "chainA" in str(e.value)
  with pytest.raises(DataError, match="MK"):
    tokenizer.normalize_sequence(bad)


def test_normalize_rejects_special_tokens_and_empty():
  with pytest.raises(DataError, match="'<'"):
    tokenizer.normalize_sequence("MK<mask>")
  with pytest.raises(DataError, match="empty"):
    tokenizer.normalize_sequence("", name="empty_one")


def test_decode_roundtrip():
  ids = tokenizer.encode("MKT<mask>X")
  assert tokenizer.decode(ids) == "<cls>MKT<mask>X<eos>"
  assert ids.dtype == np.int32
