"""``slerp``: spherical interpolation between two experts, computed by mergekit.

``x`` is a weight vector on the 2-simplex ``(w_a, w_b)``, like ``interpolation``; the SLERP
parameter is ``t = w_b`` (``t = 0`` gives the first expert, ``t = 1`` the second).
"""

from __future__ import annotations

from merging.families._mergekit import run_per_tensor
from merging.families.base import Family, WeightMerger, register
from merging.recipe import MergeRecipe
from pareto.spaces import Simplex


@register("slerp")
class Slerp(Family):
    min_experts = max_experts = 2

    def __init__(self, experts):
        super().__init__(experts)
        self._space = Simplex(2)

    @property
    def space(self) -> Simplex:
        return self._space

    def recipe(self, x: object) -> MergeRecipe:
        w = self._x(x)
        return MergeRecipe(
            family=self.name,
            experts=self.experts,
            weights=tuple(map(float, w)),
            parameters={"t": float(w[1])},
        )

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        run_per_tensor(
            merger, "slerp", recipe.experts, {"t": recipe.parameters["t"]}, include_base=False
        )

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        a, b = (experts[n] for n in recipe.experts)
        return {
            "merge_method": "slerp",
            "base_model": a,
            "models": [{"model": a}, {"model": b}],
            "parameters": {"t": recipe.parameters["t"]},
            "dtype": "float32",
        }
