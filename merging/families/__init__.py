"""Merge families: registered ways to turn a vector ``x`` into a policy.

``interpolation`` and ``layerwise`` are computed here as one matrix-vector product into the
resident model; ``task_arithmetic``, ``ties``, ``dare_ties`` and ``slerp`` by mergekit's code.
A new family is one new module here: it registers itself, and every module is imported.
"""

from merging.families.base import (
    FAMILIES,
    Family,
    WeightMerger,
    describe_rows,
    family_for_checkpoints,
    get_family,
    make_family,
    register,
    x_rows,
)
from pareto.registry import import_modules

import_modules(__name__, __path__)  # every module here registers its family

__all__ = [
    "FAMILIES",
    "Family",
    "WeightMerger",
    "describe_rows",
    "family_for_checkpoints",
    "get_family",
    "make_family",
    "register",
    "x_rows",
]
