"""Shared glue for the families computed by mergekit's own merge code.

Each tensor is merged by calling the registered mergekit method on in-memory tensors (the
same code ``mergekit-yaml`` runs), so results match mergekit's; the search space is the
experts' weights plus whichever method parameters the user chose to search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from merging.families.base import Family
from merging.recipe import MergeRecipe
from pareto.spaces import Box

Setting = float | tuple[float, float] | Sequence[float]
BASE_ID = "__base__"
PARAMETER_DOMAINS = {
    "density": (lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "lambda": (math.isfinite, "a finite number"),
}
"""What each method parameter may be (a fixed value, or both ends of a searched range)."""


def check_parameter(family: str, key: str, value: float) -> float:
    """``value`` as a float if parameter ``key`` may take it, else ``ValueError`` naming both."""
    ok, what = PARAMETER_DOMAINS.get(key, (math.isfinite, "a finite number"))
    value = float(value)
    if not (math.isfinite(value) and ok(value)):
        shown = "scale" if key == "lambda" else key
        raise ValueError(f"{family}: {shown} {value!r} is not {what}")
    return value


def mergekit_method(name: str):
    from mergekit.merge_methods import registry

    return registry.get(name)


def run_per_tensor(
    merger,
    method_name: str,
    ids: Sequence[str],
    parameters: dict,
    *,
    base_index: int | None = 0,
    include_base: bool = True,
    seed: int | None = None,
) -> None:
    """Merge every parameter of ``merger`` with mergekit's ``method_name``, in place."""
    method = mergekit_method(method_name)
    if seed is not None:
        torch.manual_seed(seed)

    def merge(name: str, base: torch.Tensor, thetas: list[torch.Tensor]) -> torch.Tensor:
        tensors = [base, *thetas] if include_base else thetas
        from mergekit.merge_methods.base import TensorGroup

        group = TensorGroup.from_tensors(tensors, ids=ids, base_index=base_index, name=name)
        return method([group], parameters=parameters, dtype=torch.float32)[0]

    merger.set_per_tensor(merge)


class MergekitFamily(Family):
    """Weights per expert in a box, plus method parameters that are fixed or searched.

    A parameter given as a number is fixed; given as ``(low, high)`` it is searched, and its
    value follows the weights in ``x`` in the order of ``PARAMETERS``.
    """

    PARAMETERS: tuple[str, ...] = ()
    whole_tensors = True

    def __init__(self, experts, weight_range: Sequence[float] = (0.0, 1.0), **params: Setting):
        super().__init__(experts)
        lo, hi = (check_parameter(self.name, "weight_range", v) for v in weight_range)
        if lo > hi:
            raise ValueError(f"{self.name}: weight_range {weight_range} runs from high to low")
        self.fixed: dict[str, float] = {}
        self.searched: dict[str, tuple[float, float]] = {}
        for key in self.PARAMETERS:
            value = params[key]
            if isinstance(value, int | float):
                self.fixed[key] = check_parameter(self.name, key, value)
            else:
                low, high = (check_parameter(self.name, key, v) for v in value)
                if low > high:
                    raise ValueError(f"{self.name}: {key} range {value} runs from high to low")
                self.searched[key] = (low, high)
        lows = [lo] * len(self.experts) + [r[0] for r in self.searched.values()]
        highs = [hi] * len(self.experts) + [r[1] for r in self.searched.values()]
        self._space = Box(lows, highs)

    @property
    def space(self) -> Box:
        return self._space

    def recipe(self, x: object) -> MergeRecipe:
        v = self._x(x)
        n = len(self.experts)
        params = dict(self.fixed)
        params.update(zip(self.searched, map(float, v[n:]), strict=True))
        return MergeRecipe(
            family=self.name,
            experts=self.experts,
            weights=tuple(float(w) for w in np.asarray(v[:n])),
            parameters=params,
        )
