"""``decoding``: the experts mixed at every decoding step, after MOD (Shi et al. 2024).

``x`` is a weight per expert on the simplex; the policy's next-token scores are
``sum_i w_i log p_i(token | context)`` (:class:`~merging.mixture.ExpertMixture`). No weights are
merged: every expert runs with its own weights, so they must all be resident on the device, and
an export writes the experts' references, the weights and a generation script, not a merged
checkpoint (none exists).
"""

from __future__ import annotations

from merging.families.base import Family, WeightMerger, register
from merging.recipe import MergeRecipe
from pareto.spaces import Simplex


@register("decoding")
class Decoding(Family):
    merged_checkpoint = False
    placement = "resident"
    x_caption = "the weight of each expert's log-probabilities in every next-token score"

    def __init__(self, experts):
        super().__init__(experts)
        self._space = Simplex(len(self.experts))

    @property
    def space(self) -> Simplex:
        return self._space

    def recipe(self, x: object) -> MergeRecipe:
        w = self._x(x)
        return MergeRecipe(family=self.name, experts=self.experts, weights=tuple(map(float, w)))

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        """Nothing to write: the mixture (:meth:`policy`) runs each expert's own weights."""
        if len(recipe.weights) != len(merger.expert_names):
            raise ValueError(
                f"got {len(recipe.weights)} weights for {len(merger.expert_names)} experts"
            )

    @staticmethod
    def policy(recipe: MergeRecipe, merger):
        from merging.mixture import ExpertMixture

        return ExpertMixture(merger, recipe.weights)

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        raise ValueError(
            "decoding mixes the experts' next-token scores at every step: no merged checkpoint "
            "exists, so no mergekit configuration reproduces it"
        )

    @staticmethod
    def export_notes(recipe: MergeRecipe) -> list[str]:
        return [
            "decoding mixes the experts at every decoding step: this export holds no merged "
            "weights; generate.py runs the mixture over the experts named in mixture.json"
        ]
