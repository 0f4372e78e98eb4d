"""``rewards_in_context``: one RiC model, steered by the desired rewards written in its prompt.

No weights change: the policy is the RiC model, and :meth:`prompt_transform` writes the desired
scores into every prompt. ``x`` is either the desired scores themselves (``mapping="rewards"``,
a box over each reward's training range) or a preference on the simplex mapped to desired
scores as the RiC paper does (``l2``, ``linf``, ``linear``; see :mod:`merging.ric`). A RiC model
with level words gets them written after its scores, as it was trained.
"""

from __future__ import annotations

from merging.families.base import Family, register
from merging.recipe import MergeRecipe
from merging.ric import MAPPINGS, RiCSpec, condition, preference_to_rewards
from pareto.spaces import Box, Simplex


@register("rewards_in_context")
class RewardsInContext(Family):
    """``experts`` are the names of the conditioned rewards, in the RiC model's order."""

    def __init__(
        self, experts, ric: str | None = None, mapping: str = "rewards", low=None, high=None
    ):
        super().__init__(experts)
        self.words = None
        """The RiC model's level words (:class:`~merging.ric.RiCSpec`), if it has them."""
        if ric is not None:
            spec = RiCSpec.load(ric)
            if tuple(spec.rewards) != self.experts:
                raise ValueError(
                    f"the RiC model at {ric} conditions on {spec.rewards}; got {self.experts}"
                )
            low, high, self.words = spec.low, spec.high, spec.words
        if low is None or high is None:
            raise ValueError("rewards_in_context needs ric=FOLDER, or low and high per reward")
        if mapping not in ("rewards", *MAPPINGS):
            raise ValueError(f"mapping {mapping!r} is not rewards, {', '.join(MAPPINGS)}")
        self.low, self.high, self.mapping = tuple(low), tuple(high), mapping
        self._space = (
            Box(self.low, self.high) if mapping == "rewards" else Simplex(len(self.experts))
        )

    @property
    def space(self):
        return self._space

    def recipe(self, x: object) -> MergeRecipe:
        v = self._x(x)
        desired = (
            v
            if self.mapping == "rewards"
            else preference_to_rewards(v, self.low, self.high, self.mapping)
        )
        params = {f"desired.{n}": float(d) for n, d in zip(self.experts, desired, strict=True)}
        weights = None if self.mapping == "rewards" else tuple(map(float, v))
        return MergeRecipe(
            family=self.name, experts=self.experts, weights=weights, parameters=params
        )

    @staticmethod
    def desired(recipe: MergeRecipe) -> list[float]:
        return [recipe.parameters[f"desired.{n}"] for n in recipe.experts]

    @staticmethod
    def apply(recipe: MergeRecipe, merger) -> None:
        """The RiC model's weights: the merger holds the RiC adapter as its only expert."""
        if len(merger.expert_names) != 1:
            raise ValueError(
                "a rewards_in_context merger holds one expert, the RiC model; "
                f"got {len(merger.expert_names)}"
            )
        merger.set_linear([1.0])

    def prompt_transform(self, recipe: MergeRecipe):
        values, words = self.desired(recipe), self.words
        return lambda prompt: condition(prompt, recipe.experts, values, words)

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        raise ValueError(
            "rewards_in_context changes the prompt, not the weights: there is no mergekit "
            "configuration; export the RiC model with the conditioning in its chat template"
        )
