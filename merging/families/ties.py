"""``ties`` (Yadav et al.): trim each task vector to its largest ``density`` fraction, elect a
sign per entry, average the agreeing entries; computed by mergekit."""

from __future__ import annotations

from merging.families._mergekit import BASE_ID, MergekitFamily, run_per_tensor
from merging.families.base import WeightMerger, register
from merging.recipe import MergeRecipe


def sparse_config(method: str, recipe: MergeRecipe, base: str, experts: dict[str, str]) -> dict:
    density = recipe.parameters.get("density", 1.0)
    return {
        "merge_method": method,
        "base_model": base,
        "models": [
            {"model": experts[n], "parameters": {"weight": w, "density": density}}
            for n, w in recipe.weight_map().items()
        ],
        "parameters": {"lambda": recipe.parameters.get("lambda", 1.0)},
        "dtype": "float32",
    }


def sparse_parameters(recipe: MergeRecipe) -> dict:
    density = recipe.parameters.get("density", 1.0)
    return {
        "weight": recipe.weight_map(),
        "density": dict.fromkeys(recipe.experts, density),
        "lambda": recipe.parameters.get("lambda", 1.0),
    }


@register("ties")
class Ties(MergekitFamily):
    PARAMETERS = ("density", "lambda")

    def __init__(self, experts, weight_range=(0.0, 1.0), density=0.5, scale=1.0):
        super().__init__(experts, weight_range, density=density, **{"lambda": scale})

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        run_per_tensor(merger, "ties", (BASE_ID, *recipe.experts), sparse_parameters(recipe))

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        return sparse_config("ties", recipe, base, experts)
