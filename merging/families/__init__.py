"""Merge families: registered ways to turn a vector ``x`` into a policy.

``interpolation`` and ``layerwise`` are computed here as one matrix-vector product into the
resident model; ``task_arithmetic``, ``ties``, ``dare_ties`` and ``slerp`` by mergekit's code.
"""

from merging.families import (  # noqa: F401 - importing registers the families
    dare_ties,
    interpolation,
    layerwise,
    rewards_in_context,
    slerp,
    task_arithmetic,
    ties,
)
from merging.families.base import FAMILIES, Family, get_family, make_family, register

__all__ = ["FAMILIES", "Family", "get_family", "make_family", "register"]
