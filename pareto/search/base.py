"""The search-driver contract: batches of unit-cube points asked for, objective values told.

A driver searches ``[0, 1]^dim``, the cube that a :class:`~pareto.spaces.SearchSpace` maps onto
its points (the simplex, one simplex per block, a box), so a simplex-valued ``x`` is always
proposed on the simplex: it is mapped from the cube, never rejected or renormalised.

Batched drivers (pymoo's algorithms, the grid, MAP) are told every value of a batch before
they are asked for the next one; the study loop stores each batch as one *generation* of
waiting trials, which any worker may evaluate. Values are told in minimisation form (each
maximised objective negated), as pymoo expects.

A driver is deterministic given its seed and the values told, which is how a study resumes:
the loop replays the stored generations through a fresh driver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from pareto.registry import Registry
from pareto.settings import declared_settings, reject_unknown_settings
from pareto.spaces import SearchSpace

DRIVERS: Registry[Driver] = Registry("search driver")
register = DRIVERS.register


class Driver(ABC):
    """Proposes batches of points of the unit cube of ``space`` and learns from their values."""

    name: ClassVar[str]
    learns: ClassVar[bool] = False
    """Whether its points are learned on the models themselves (:mod:`pareto.search.learned`):
    the driving process then hands it a learner (:meth:`use_learner`)."""

    def __init__(self, space: SearchSpace, n_objectives: int, budget: int, seed: int = 0):
        if space.dim < 1:
            raise ValueError(f"{space!r} has nothing to search (its cube has dimension 0)")
        if int(budget) != budget or budget < 1:
            raise ValueError(f"budget must be a positive whole number; got {budget}")
        if n_objectives < 2:
            raise ValueError(
                f"a multi-objective search needs 2 or more objectives; got {n_objectives}"
            )
        self.space, self.n_objectives = space, int(n_objectives)
        self.budget, self.seed = int(budget), int(seed)

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """Names of the keyword settings the driver accepts."""
        return declared_settings(cls.__init__, skip=("space", "n_objectives", "budget", "seed"))

    @abstractmethod
    def ask(self) -> np.ndarray | None:
        """The next batch, ``(k, dim)`` points of ``[0, 1]^dim``; None when it has no more."""

    @abstractmethod
    def tell(self, u: np.ndarray, f: np.ndarray) -> None:
        """Values ``f`` (``(k, n_objectives)``, minimisation form) of the last batch ``u``."""

    def use_learner(self, learner) -> None:
        """Take the function that learns a point from a preference vector (drivers that
        :attr:`learn`)."""
        raise TypeError(f"driver {self.name!r} learns nothing")

    def annotations(self) -> list[dict]:
        """Extra facts about each point of the last batch, recorded with its trial."""
        return []


def make_driver(
    name: str, space: SearchSpace, n_objectives: int, budget: int, seed: int = 0, **settings
) -> Driver:
    """Build driver ``name``; an unknown setting is an error naming the allowed ones."""
    cls = DRIVERS.get(name)
    reject_unknown_settings(f"driver {name!r}", settings, cls.settings())
    return cls(space, n_objectives, budget, seed, **settings)
