"""``dare_ties`` (Yu et al.): drop task-vector entries at random with probability
``1 - density`` and rescale the rest, then TIES sign election; computed by mergekit.

The random masks come from torch's generator seeded with the recipe's ``seed``, so the same
recipe gives the same weights; ``mergekit-yaml --random-seed`` draws its own masks.
"""

from __future__ import annotations

from merging.families._mergekit import BASE_ID, MergekitFamily, run_per_tensor
from merging.families.base import WeightMerger, register
from merging.families.ties import sparse_config, sparse_parameters
from merging.recipe import MergeRecipe


@register("dare_ties")
class DareTies(MergekitFamily):
    PARAMETERS = ("density", "lambda")

    def __init__(self, experts, weight_range=(0.0, 1.0), density=0.5, scale=1.0):
        super().__init__(experts, weight_range, density=density, **{"lambda": scale})

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        run_per_tensor(
            merger,
            "dare_ties",
            (BASE_ID, *recipe.experts),
            sparse_parameters(recipe),
            seed=recipe.seed,
        )

    @staticmethod
    def mergekit_reproduces(recipe: MergeRecipe) -> bool:
        """Only at density 1: below it mergekit draws its own masks."""
        return recipe.parameters.get("density", 1.0) >= 1.0

    @staticmethod
    def export_notes(recipe: MergeRecipe) -> list[str]:
        if DareTies.mergekit_reproduces(recipe):
            return []
        return [
            "dare_ties drops parameters at random: mergekit draws its own masks, so its weights "
            "differ from this export's (whose masks paretomerge seeded); at density 1 they agree"
        ]

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        return sparse_config("dare_ties", recipe, base, experts)
