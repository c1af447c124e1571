"""Helpers for tests and examples: generated proteins (`jaxgeo.datasets.synthetic`).

Library modules never import this module (tests/test_imports.py checks it).
"""
from jaxgeo.datasets.synthetic import ideal_backbone, make_protein, random_protein

__all__ = ["ideal_backbone", "make_protein", "random_protein"]
