"""MAP (Li et al. 2024, "Model merging with amortized Pareto fronts via quadratic approximation").

Evaluate a first batch of points, then repeat: fit a quadratic model of each objective in the
merge vector ``x`` to every evaluation so far, search the models' predicted front with pymoo's
NSGA-II, and evaluate the predicted points that add the most hypervolume to the measured front.
Unlike the paper, every predicted point is measured: each one's prediction is recorded with
its trial (see :meth:`MAPDriver.annotations`), so the gap between the surrogate and the
measurement can be reported.
"""

from __future__ import annotations

import numpy as np

from pareto.dominance import pareto_mask
from pareto.hypervolume import hypervolume
from pareto.search.base import Driver, register
from pareto.spaces import SearchSpace

SURROGATE_POPULATION, SURROGATE_GENERATIONS = 48, 40
RIDGE = 1e-3
DUPLICATE_DISTANCE = 1e-3


class QuadraticModel:
    """Per-objective quadratic regression (all products of pairs of ``x`` entries, ridge)."""

    def __init__(self, x: np.ndarray, f: np.ndarray, ridge: float = RIDGE):
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        self.model = make_pipeline(
            PolynomialFeatures(degree=2), StandardScaler(), Ridge(alpha=ridge)
        )
        self.mean, self.scale = f.mean(0), np.where(f.std(0) > 0, f.std(0), 1.0)
        self.model.fit(x, (f - self.mean) / self.scale)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x) * self.scale + self.mean


@register("map")
class MAPDriver(Driver):
    """Quadratic surrogates searched with NSGA-II; batches picked by hypervolume gain.

    Settings: ``initial`` points drawn uniformly from the space first (default: enough to fit
    the quadratic, at most half the budget), then batches of ``batch`` predicted points.
    """

    def __init__(
        self,
        space: SearchSpace,
        n_objectives: int,
        budget: int,
        seed: int = 0,
        initial: int | None = None,
        batch: int = 4,
    ):
        super().__init__(space, n_objectives, budget, seed)
        n_x = int(np.prod(space.shape))
        coefficients = (n_x + 1) * (n_x + 2) // 2
        self.initial = int(initial or max(4, min(coefficients, self.budget // 2)))
        self.batch = int(batch)
        if self.initial < 2 or self.batch < 1:
            raise ValueError("MAP needs initial >= 2 and batch >= 1")
        self.u = np.zeros((0, space.dim))
        self.f = np.zeros((0, n_objectives))
        self._predicted: np.ndarray | None = None
        self._round = 0

    def _x(self, u: np.ndarray) -> np.ndarray:
        return self.space.from_unit_cube(u).reshape(len(u), -1)

    def ask(self) -> np.ndarray:
        self._round += 1
        if len(self.u) == 0:
            self._predicted = None
            return np.random.default_rng(self.seed).random((self.initial, self.space.dim))
        model = QuadraticModel(self._x(self.u), self.f)
        candidates = self._surrogate_front(model)
        predicted = model.predict(self._x(candidates))
        chosen = self._by_hypervolume_gain(candidates, predicted)
        self._predicted = predicted[chosen]
        return candidates[chosen]

    def _surrogate_front(self, model: QuadraticModel) -> np.ndarray:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.optimize import minimize

        space = self.space

        class Surrogate(Problem):
            def __init__(self):
                super().__init__(n_var=space.dim, n_obj=model.mean.size, xl=0.0, xu=1.0)

            def _evaluate(self, u, out, *args, **kwargs):
                out["F"] = model.predict(space.from_unit_cube(u).reshape(len(u), -1))

        result = minimize(
            Surrogate(),
            NSGA2(pop_size=SURROGATE_POPULATION),
            ("n_gen", SURROGATE_GENERATIONS),
            seed=self.seed + self._round,
            verbose=False,
        )
        u = np.atleast_2d(result.X) if result.X is not None else np.zeros((0, space.dim))
        extra = np.random.default_rng(self.seed + self._round).random((64, space.dim))
        return np.clip(np.vstack([u, extra]), 0.0, 1.0)

    def _by_hypervolume_gain(self, candidates: np.ndarray, predicted: np.ndarray) -> list[int]:
        """Greedily the candidates whose predicted values add most hypervolume to the front
        measured so far (in the measured range's units), skipping near-duplicates."""
        lo, hi = self.f.min(0), self.f.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        ref = np.full(self.n_objectives, 1.1)
        current = (self.f[pareto_mask(self.f)] - lo) / span
        scaled = (predicted - lo) / span
        taken: list[int] = []
        seen = self.u.copy()
        base = hypervolume(current, ref)
        for _ in range(min(self.batch, len(candidates))):
            best, best_gain = -1, -np.inf
            for i in range(len(candidates)):
                if i in taken or (
                    len(seen) and np.min(np.abs(seen - candidates[i]).max(1)) < DUPLICATE_DISTANCE
                ):
                    continue
                gain = hypervolume(np.vstack([current, scaled[i]]), ref) - base
                if gain > best_gain:
                    best, best_gain = i, gain
            if best < 0:
                break
            taken.append(best)
            seen = np.vstack([seen, candidates[best]])
            current = np.vstack([current, scaled[best]])
            base = hypervolume(current, ref)
        return taken

    def tell(self, u: np.ndarray, f: np.ndarray) -> None:
        self.u = np.vstack([self.u, np.asarray(u, dtype=float)])
        self.f = np.vstack([self.f, np.asarray(f, dtype=float)])

    def annotations(self) -> list[dict]:
        """``{"predicted": [...]}`` (minimisation form) for each point of the last batch that
        the surrogate chose; nothing for the initial random batch."""
        if self._predicted is None:
            return []
        return [{"predicted": [float(v) for v in row]} for row in self._predicted]
