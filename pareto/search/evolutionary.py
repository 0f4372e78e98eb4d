"""pymoo's evolutionary algorithms as batched drivers: NSGA-II, NSGA-III, MOEA/D, SMS-EMOA.

Each searches the unit cube of the family's space with pymoo's own operators (random initial
population, SBX crossover, polynomial mutation) through pymoo's ask/tell interface; one
generation is one batch. MOEA/D is pymoo's ``ParallelMOEAD``, which mates a whole generation
at once (the plain ``MOEAD`` asks for one offspring at a time). NSGA-III and MOEA/D use
Riesz s-energy reference directions (Das-Dennis would force population sizes such as 10, 15,
21 on three objectives).
"""

from __future__ import annotations

import numpy as np

from pareto.search.base import Driver, register
from pareto.spaces import SearchSpace

MIN_POPULATION, MAX_POPULATION = 4, 16


def default_population(budget: int) -> int:
    """About four generations within the budget, between 4 and 16 points each."""
    return int(np.clip(budget // 4, MIN_POPULATION, MAX_POPULATION))


class _Pymoo(Driver):
    """A pymoo algorithm driven through ask/tell on ``[0, 1]^dim``."""

    def __init__(
        self,
        space: SearchSpace,
        n_objectives: int,
        budget: int,
        seed: int = 0,
        population: int | None = None,
    ):
        super().__init__(space, n_objectives, budget, seed)
        self.population = int(population or default_population(self.budget))
        if self.population < 2:
            raise ValueError(f"population must be at least 2; got {self.population}")
        from pymoo.core.problem import Problem

        problem = Problem(n_var=space.dim, n_obj=self.n_objectives, xl=0.0, xu=1.0)
        self.algorithm = self._algorithm()
        self.algorithm.setup(problem, termination=("n_eval", 10**12), seed=self.seed, verbose=False)
        self._pending = None

    def _algorithm(self):
        raise NotImplementedError

    def _reference_directions(self) -> np.ndarray:
        from pymoo.util.ref_dirs import get_reference_directions

        if self.n_objectives == 2:
            return get_reference_directions("uniform", 2, n_points=self.population)
        return get_reference_directions(
            "energy", self.n_objectives, self.population, seed=self.seed
        )

    def ask(self) -> np.ndarray:
        self._pending = self.algorithm.ask()
        return np.clip(np.atleast_2d(self._pending.get("X")).astype(float), 0.0, 1.0)

    def tell(self, u: np.ndarray, f: np.ndarray) -> None:
        if self._pending is None:
            raise RuntimeError("tell() without a pending ask()")
        u, f = np.asarray(u, dtype=float), np.asarray(f, dtype=float)
        if u.shape != (len(self._pending), self.space.dim) or f.shape != (
            len(self._pending),
            self.n_objectives,
        ):
            raise ValueError(
                f"tell needs {len(self._pending)} points and values; got {u.shape}, {f.shape}"
            )
        self._pending.set("X", u)
        self._pending.set("F", f)
        self.algorithm.tell(infills=self._pending)
        self._pending = None


@register("nsga2")
class NSGA2Driver(_Pymoo):
    """NSGA-II (Deb et al. 2002): non-dominated sorting and crowding distance."""

    def _algorithm(self):
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(pop_size=self.population)


@register("nsga3")
class NSGA3Driver(_Pymoo):
    """NSGA-III (Deb and Jain 2014): niching around reference directions."""

    def _algorithm(self):
        from pymoo.algorithms.moo.nsga3 import NSGA3

        return NSGA3(ref_dirs=self._reference_directions(), pop_size=self.population)


@register("moead")
class MOEADDriver(_Pymoo):
    """MOEA/D (Zhang and Li 2007): one scalarised subproblem per reference direction."""

    def _algorithm(self):
        from pymoo.algorithms.moo.moead import ParallelMOEAD

        dirs = self._reference_directions()
        return ParallelMOEAD(ref_dirs=dirs, n_neighbors=max(2, min(len(dirs), 5)))


@register("smsemoa")
class SMSEMOADriver(_Pymoo):
    """SMS-EMOA (Beume et al. 2007): survival by hypervolume contribution."""

    def _algorithm(self):
        from pymoo.algorithms.moo.sms import SMSEMOA

        return SMSEMOA(pop_size=self.population)
