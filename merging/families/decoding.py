"""``decoding``: the experts mixed at every decoding step, after MOD (Shi et al. 2024).

``x`` is a weight per expert on the simplex; the policy's next-token scores are
``sum_i w_i log p_i(token | context)`` (:class:`~merging.mixture.ExpertMixture`). No weights are
merged: every expert runs with its own weights, so they must all be resident on the device, and
an export writes the experts' references, the weights and a generation script, not a merged
checkpoint (none exists).
"""

from __future__ import annotations

from merging.families.base import WeightMerger, register
from merging.families.interpolation import Interpolation
from merging.recipe import MergeRecipe


@register("decoding")
class Decoding(Interpolation):
    """``x`` and its recipe are :class:`Interpolation`'s (weights on the simplex); what the
    weights do differs: they mix the experts' next-token scores, not their parameters."""

    merged_checkpoint = False
    placement = "resident"
    x_caption = "the weight of each expert's log-probabilities in every next-token score"

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
