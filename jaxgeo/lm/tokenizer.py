"""The ESM alphabet (33 tokens), implemented here so that embedding needs no transformers.

Token ids are those of `transformers.EsmTokenizer` / fair-esm's `Alphabet("ESM-1b")`:

  0 <cls>  1 <pad>  2 <eos>  3 <unk>  4..28 LAGVSERTIDPKQNFYMHWCXBUZO  29 .  30 -
  31 <null_1>  32 <mask>

`encode("MKT")` is `[<cls>, M, K, T, <eos>]`, as `EsmTokenizer("MKT")["input_ids"]`.

Where we differ from `EsmTokenizer`, on purpose:
- Lowercase letters are read as their uppercase residue. `EsmTokenizer` maps a whole run of
  lowercase letters to a single `<unk>` (so "acdK" gives 2 tokens, not 4), which breaks the
  one-token-per-residue alignment that per-residue embeddings need. Our ids for a sequence with
  lowercase letters equal `EsmTokenizer(sequence.upper())`.
- A character outside the alphabet (J, *, digits, whitespace...) is an error (`DataError`
  naming the sequence) instead of a silent `<unk>`.
Special tokens written out in angle brackets (`<mask>`, `<unk>`, ...) are read as one token
each, as `EsmTokenizer` does; `normalize_sequence` (used by the embedding pipeline) rejects them.
The gap characters '.' and '-' are tokens here (as in `EsmTokenizer`), but `jaxgeo embed`
refuses sequences holding them, for ESM-2 and UniRep alike (`jaxgeo.lm.embed.refuse_gaps`).
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from jaxgeo.errors import DataError

ALPHABET: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M",
    "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-",
    "<null_1>", "<mask>",
)
TOKEN_TO_ID: dict[str, int] = {t: i for i, t in enumerate(ALPHABET)}
CLS_ID = TOKEN_TO_ID["<cls>"]
PAD_ID = TOKEN_TO_ID["<pad>"]
EOS_ID = TOKEN_TO_ID["<eos>"]
UNK_ID = TOKEN_TO_ID["<unk>"]
MASK_ID = TOKEN_TO_ID["<mask>"]
VOCAB_SIZE = len(ALPHABET)

# One-letter residue characters (and the two gap characters) the alphabet holds.
RESIDUE_CHARS = "LAGVSERTIDPKQNFYMHWCXBUZO.-"
_SPECIAL = tuple(t for t in ALPHABET if t.startswith("<"))
_TOKEN_RE = re.compile("|".join(re.escape(t) for t in _SPECIAL) + "|.", re.DOTALL)

# Lookup table for the fast path: byte value -> id, or -1 for characters outside the alphabet.
_BYTE_TO_ID = np.full(256, -1, dtype=np.int32)
for _c in RESIDUE_CHARS:
  _BYTE_TO_ID[ord(_c)] = TOKEN_TO_ID[_c]
  _BYTE_TO_ID[ord(_c.lower())] = TOKEN_TO_ID[_c]


def _describe(sequence: str, name: str | None) -> str:
  if name:
    return f"sequence {name!r}"
  shown = sequence if len(sequence) <= 40 else sequence[:37] + "..."
  return f"sequence {shown!r} (length {len(sequence)})"


def _invalid(sequence: str, bad: Sequence[str], name: str | None) -> DataError:
  chars = ", ".join(repr(c) for c in sorted(set(bad)))
  return DataError(
      f"{_describe(sequence, name)}: character(s) {chars} are not in the ESM alphabet "
      f"(allowed: the letters {RESIDUE_CHARS[:-2]}, '.', '-', lower or upper case)")


def normalize_sequence(sequence: str, name: str | None = None) -> str:
  """Uppercases `sequence` and checks that every character is a residue of the alphabet.

  This is the form sequences are keyed by in the embedding store. Raises `DataError` naming
  the sequence (`name`, e.g. the FASTA header, when given) for any other character, including
  special tokens such as `<mask>`.
  """
  codes = np.frombuffer(sequence.encode("utf-8", errors="replace"), dtype=np.uint8)
  ids = _BYTE_TO_ID[codes]
  if len(codes) != len(sequence) or (ids < 0).any():
    bad = [c for c in sequence if c.upper() not in RESIDUE_CHARS or len(c.encode()) != 1]
    raise _invalid(sequence, bad, name)
  if not sequence:
    raise DataError(f"{_describe(sequence, name)} is empty")
  return sequence.upper()


def residue_ids(sequence: str, name: str | None = None) -> np.ndarray:
  """Token ids of the residues of `sequence`, without BOS/EOS. -> int32 [L].

  Special tokens in angle brackets count as one position each.
  """
  codes = np.frombuffer(sequence.encode("utf-8", errors="replace"), dtype=np.uint8)
  if len(codes) == len(sequence) and "<" not in sequence:
    ids = _BYTE_TO_ID[codes]
    if not (ids < 0).any():
      return ids.astype(np.int32)
  out, bad = [], []
  for tok in _TOKEN_RE.findall(sequence):
    if tok in TOKEN_TO_ID and tok.startswith("<"):
      out.append(TOKEN_TO_ID[tok])
    elif tok.upper() in RESIDUE_CHARS and tok.upper() in TOKEN_TO_ID:
      out.append(TOKEN_TO_ID[tok.upper()])
    else:
      bad.append(tok)
  if bad:
    raise _invalid(sequence, bad, name)
  return np.asarray(out, dtype=np.int32)


def encode(sequence: str, name: str | None = None) -> np.ndarray:
  """`[<cls>] + residues + [<eos>]` ids. -> int32 [L + 2]."""
  ids = residue_ids(sequence, name)
  return np.concatenate([[CLS_ID], ids, [EOS_ID]]).astype(np.int32)


def batch_encode(sequences: Sequence[str], length: int | None = None,
                 names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Encodes and right-pads with `<pad>`.

  Args:
    sequences: B sequences.
    length: padded token length T (at least the longest L + 2); default the longest L + 2.
    names: optional names used in error messages.
  Returns:
    tokens int32 [B, T] and attention mask bool [B, T] (True on <cls>, residues and <eos>).
  """
  encoded = [encode(s, None if names is None else names[i]) for i, s in enumerate(sequences)]
  longest = max((len(e) for e in encoded), default=2)
  if length is None:
    length = longest
  if length < longest:
    raise DataError(f"padded length {length} is shorter than the longest sequence "
                    f"({longest - 2} residues + 2 special tokens)")
  tokens = np.full((len(encoded), length), PAD_ID, dtype=np.int32)
  for i, e in enumerate(encoded):
    tokens[i, :len(e)] = e
  return tokens, tokens != PAD_ID


def decode(ids: Sequence[int]) -> str:
  """Concatenated tokens of `ids` (special tokens written out)."""
  return "".join(ALPHABET[int(i)] for i in ids)
