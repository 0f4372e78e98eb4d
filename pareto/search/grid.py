"""The exhaustive grid: Das-Dennis points of the simplex (of each block's simplex), a box's
lattice; all in one batch. It is also the yardstick the other drivers are measured against."""

from __future__ import annotations

import numpy as np

from pareto.search.base import Driver, register
from pareto.spaces import SearchSpace

MAX_DIVISIONS = 64


def divisions_within(space: SearchSpace, budget: int) -> int:
    """The finest grid of ``space`` with at most ``budget`` points (at least 1 division)."""
    best = 1
    for d in range(1, MAX_DIVISIONS + 1):
        try:
            if len(space.grid(d)) > budget:
                break
        except ValueError:
            break
        best = d
    return best


@register("grid")
class GridDriver(Driver):
    """Every point of ``space.grid(divisions)``, the finest that fits the budget by default.

    When the grid has more points than the budget, the first ``budget`` are evaluated.
    """

    def __init__(
        self,
        space: SearchSpace,
        n_objectives: int,
        budget: int,
        seed: int = 0,
        divisions: int | None = None,
    ):
        super().__init__(space, n_objectives, budget, seed)
        self.divisions = int(divisions or divisions_within(space, self.budget))
        self._done = False

    def points(self) -> np.ndarray:
        """The grid's points ``x``, ``(k, *shape)``."""
        return self.space.grid(self.divisions)

    def ask(self) -> np.ndarray | None:
        if self._done:
            return None
        self._done = True
        return self.space.to_unit_cube(self.points())

    def tell(self, u: np.ndarray, f: np.ndarray) -> None:
        """Nothing to learn: the grid is fixed."""
