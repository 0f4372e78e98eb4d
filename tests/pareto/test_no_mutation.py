"""Every public function of pareto leaves its input arrays untouched."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest

import pareto

RNG = np.random.default_rng(0)
POINTS = RNG.random((25, 3))
SENSES = ["max", "min", "max"]
BOUNDS = (np.zeros(3), np.ones(3))


def calls(f) -> dict[str, Callable[[], object]]:
    """One call per public function, every array argument frozen by ``f``."""
    return {
        "pareto_mask": lambda: pareto.pareto_mask(f(POINTS), SENSES),
        "nondominated_sort": lambda: pareto.nondominated_sort(f(POINTS), SENSES),
        "hypervolume": lambda: (
            pareto.hypervolume(f(POINTS), f([-0.1, 1.1, -0.1]), SENSES),
            pareto.hypervolume(f(POINTS), None, SENSES, bounds=(f(BOUNDS[0]), f(BOUNDS[1]))),
        ),
        "hypervolume_contributions": lambda: pareto.hypervolume_contributions(
            f(POINTS), f([-0.1, 1.1, -0.1]), SENSES
        ),
        "reference_point": lambda: (
            pareto.reference_point(f(POINTS), SENSES),
            pareto.reference_point(f(POINTS), SENSES, bounds=(f(BOUNDS[0]), f(BOUNDS[1]))),
        ),
        "ideal_nadir": lambda: pareto.ideal_nadir(f(POINTS), SENSES),
        "normalise": lambda: pareto.normalise(f(POINTS), SENSES, (f(BOUNDS[0]), f(BOUNDS[1]))),
        "igd_plus": lambda: pareto.igd_plus(f(POINTS), f(POINTS[:5]), SENSES),
        "knee_point": lambda: pareto.knee_point(f(POINTS), SENSES),
        "best_for_preference": lambda: pareto.best_for_preference(
            f(POINTS), SENSES, f([0.2, 0.3, 0.5])
        ),
        "dominance_probability": lambda: pareto.dominance_probability(
            f(POINTS), f(np.full_like(POINTS, 0.05)), SENSES, n_samples=50
        ),
        "summarize_front": lambda: pareto.summarize_front(
            f(POINTS), SENSES, ref=f([-0.1, 1.1, -0.1])
        ),
        "Simplex": lambda: (
            pareto.Simplex(3).from_unit_cube(f(RNG.random((4, 2)))),
            pareto.Simplex(3).to_unit_cube(f([[0.2, 0.3, 0.5]])),
            pareto.Simplex(3).validate(f([0.2, 0.3, 0.5])),
        ),
        "BlockSimplex": lambda: (
            pareto.BlockSimplex(2, 3).from_unit_cube(f(RNG.random((4, 4)))),
            pareto.BlockSimplex(2, 3).to_unit_cube(f([[0.2, 0.3, 0.5], [1, 0, 0]])),
            pareto.BlockSimplex(2, 3).validate(f([[0.2, 0.3, 0.5], [1, 0, 0]])),
        ),
        "Box": lambda: (
            pareto.Box(f([0, 0]), f([1, 2])).from_unit_cube(f([[0.5, 0.5]])),
            pareto.Box(f([0, 0]), f([1, 2])).to_unit_cube(f([[0.5, 0.5]])),
            pareto.Box(f([0, 0]), f([1, 2])).validate(f([0.5, 0.5])),
        ),
    }


NOT_ON_ARRAYS = {"parse_objectives", "read_results", "SearchSpace", "Registry"}


def test_every_public_function_is_covered():
    public = {
        name
        for name in pareto.__all__
        if inspect.isfunction(getattr(pareto, name)) or inspect.isclass(getattr(pareto, name))
    }
    data_classes = {"Bounds", "FrontSummary", "ObjectiveSpec", "ResultsTable"}
    assert public - data_classes - NOT_ON_ARRAYS == set(calls(lambda a: a))


@pytest.mark.parametrize("name", sorted(calls(lambda a: a)))
def test_inputs_are_not_modified(name, frozen):
    calls(frozen)[name]()
