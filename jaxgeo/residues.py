"""Residue, atom and element vocabularies.

The residue order and the atom37 layout are AlphaFold's (`residue_constants.py`), so that
arrays built here line up with the wider JAX protein ecosystem.
"""
from __future__ import annotations

import numpy as np

# The 20 standard residues, in AlphaFold's order; index 20 is "unknown".
RESTYPES = "ARNDCQEGHILKMFPSTWYV"
UNKNOWN = 20
NUM_AATYPE = 21
# aatype of a node that is not a residue (a ligand atom); its element is in nodes["element"].
LIGAND_ATOM = 21

RESTYPE_1TO3 = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
RESTYPE_3TO1 = {three: one for one, three in RESTYPE_1TO3.items()}

# Modified and non-canonical residues mapped to their parent standard residue: the
# common post-translational modifications, selenium variants, D-amino acids and the
# protonation-state names of MD force fields. Anything else is "unknown" (X).
MODIFIED_TO_PARENT = {
    # selenium / sulfur chemistry
    "MSE": "MET", "SEC": "CYS", "CSO": "CYS", "CSD": "CYS", "CME": "CYS", "CSX": "CYS",
    "OCS": "CYS", "CAS": "CYS", "SMC": "CYS", "CSS": "CYS", "CYX": "CYS", "CYM": "CYS",
    "CCS": "CYS",
    # phosphorylation, sulfation, acetylation, methylation, carboxylation
    "SEP": "SER", "TPO": "THR", "PTR": "TYR", "TYS": "TYR", "SAC": "SER",
    "MLY": "LYS", "MLZ": "LYS", "M3L": "LYS", "KCX": "LYS", "ALY": "LYS", "LLP": "LYS",
    "PYL": "LYS", "LYN": "LYS",
    "HYP": "PRO", "PCA": "GLU", "FME": "MET", "MEN": "ASN", "NLE": "LEU", "MVA": "VAL",
    "HIC": "HIS", "NEP": "HIS",
    # force-field protonation states
    "HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS",
    "ASH": "ASP", "GLH": "GLU",
    # D-amino acids
    "DAL": "ALA", "DAR": "ARG", "DSG": "ASN", "DAS": "ASP", "DCY": "CYS", "DGN": "GLN",
    "DGL": "GLU", "DHI": "HIS", "DIL": "ILE", "DLE": "LEU", "DLY": "LYS", "MED": "MET",
    "DPN": "PHE", "DPR": "PRO", "DSN": "SER", "DTH": "THR", "DTR": "TRP", "DTY": "TYR",
    "DVA": "VAL",
}

WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O", "TIP", "TIP3", "SOL"})
NUCLEIC_NAMES = frozenset({"A", "C", "G", "U", "T", "I", "DA", "DC", "DG", "DT", "DU", "DI"})

# AlphaFold's atom37: every heavy atom name of the standard residues, one slot each.
ATOM_TYPES = (
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2",
    "ND1", "ND2", "OD1", "OD2", "SD", "CE", "CE1", "CE2", "CE3", "NE", "NE1", "NE2", "OE1",
    "OE2", "CH2", "NH1", "NH2", "OH", "CZ", "CZ2", "CZ3", "NZ", "OXT",
)
ATOM_ORDER = {name: i for i, name in enumerate(ATOM_TYPES)}
NUM_ATOM_TYPES = len(ATOM_TYPES)
BACKBONE_ATOMS = ("N", "CA", "C", "O")
BACKBONE_INDICES = np.array([ATOM_ORDER[a] for a in BACKBONE_ATOMS])
# Atom names of modified residues that sit in another slot of their parent.
ATOM_NAME_ALIASES = {"SE": "SD", "OT1": "O", "OT2": "OXT", "O1": "O"}

# Elements of ligand atoms; index 0 is reserved for "not a ligand atom" (residue nodes),
# the last index for any element not listed.
ELEMENTS = ("", "C", "N", "O", "S", "P", "F", "Cl", "Br", "I", "B", "Si", "Se", "Fe", "Zn",
            "Mg", "Ca", "Na", "K", "Mn", "Cu", "Co", "Ni", "H", "other")
ELEMENT_ORDER = {name.upper(): i for i, name in enumerate(ELEMENTS)}
NUM_ELEMENTS = len(ELEMENTS)


def residue_to_aatype(name: str) -> tuple[int, str]:
  """Maps a three-letter residue name to (aatype index, one-letter code).

  Standard residues map to themselves, known modified residues to their parent, and
  anything else to (UNKNOWN, "X").
  """
  name = name.strip().upper()
  name = MODIFIED_TO_PARENT.get(name, name)
  one = RESTYPE_3TO1.get(name)
  if one is None:
    return UNKNOWN, "X"
  return RESTYPES.index(one), one


def is_known_residue(name: str) -> bool:
  """True for the 20 standard residues and the modified residues of MODIFIED_TO_PARENT."""
  name = name.strip().upper()
  return name in RESTYPE_3TO1 or name in MODIFIED_TO_PARENT


def element_index(symbol: str) -> int:
  """Index of an element symbol in ELEMENTS (case-insensitive); unknown -> 'other'."""
  return ELEMENT_ORDER.get(symbol.strip().upper(), NUM_ELEMENTS - 1)


def sequence_to_aatype(sequence: str) -> np.ndarray:
  """One-letter sequence -> aatype [L] int32 (anything not standard is UNKNOWN)."""
  lookup = {c: i for i, c in enumerate(RESTYPES)}
  return np.array([lookup.get(c, UNKNOWN) for c in sequence.upper()], dtype=np.int32)
