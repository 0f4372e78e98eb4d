"""``interpolation`` (rewarded soups): ``theta = sum_i w_i theta_i`` with ``w`` on the simplex."""

from __future__ import annotations

from merging.families.base import Family, WeightMerger, register
from merging.recipe import MergeRecipe
from pareto.spaces import Simplex


@register("interpolation")
class Interpolation(Family):
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
        merger.set_linear(recipe.weights)

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        return {
            "merge_method": "linear",
            "models": [
                {"model": experts[name], "parameters": {"weight": w}}
                for name, w in recipe.weight_map().items()
            ],
            "parameters": {"normalize": False},
            "dtype": "float32",
        }
