"""``task_arithmetic`` (Ilharco et al.): ``theta = base + lambda * sum_i w_i delta_i``.

Computed by mergekit."""

from __future__ import annotations

from merging.families._mergekit import BASE_ID, MergekitFamily, run_per_tensor
from merging.families.base import WeightMerger, register
from merging.recipe import MergeRecipe


@register("task_arithmetic")
class TaskArithmetic(MergekitFamily):
    PARAMETERS = ("lambda",)

    def __init__(self, experts, weight_range=(0.0, 1.0), scale=1.0):
        super().__init__(experts, weight_range, **{"lambda": scale})

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        run_per_tensor(
            merger,
            "task_arithmetic",
            (BASE_ID, *recipe.experts),
            {"weight": recipe.weight_map(), "lambda": recipe.parameters.get("lambda", 1.0)},
        )

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        return {
            "merge_method": "task_arithmetic",
            "base_model": base,
            "models": [
                {"model": experts[n], "parameters": {"weight": w}}
                for n, w in recipe.weight_map().items()
            ],
            "parameters": {"lambda": recipe.parameters.get("lambda", 1.0)},
            "dtype": "float32",
        }
