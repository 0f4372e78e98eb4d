from __future__ import annotations

import numpy as np
import pytest
from pymoo.indicators.igd_plus import IGDPlus

from pareto import igd_plus
from tests.pareto.brute import minimise


def test_published_example():
    # Ishibuchi et al. (2015), example 4, as in moocore's documentation
    dat = np.array([[3.5, 5.5], [3.6, 4.1], [4.1, 3.2], [5.5, 1.5]])
    ref = np.array([[1, 6], [2, 5], [3, 4], [4, 3], [5, 2], [6, 1]], dtype=float)
    assert igd_plus(dat, ref) == pytest.approx(0.9855036468106652)


def test_equals_pymoo_with_mixed_senses():
    rng = np.random.default_rng(3)
    for m in (2, 3, 4):
        senses = ["max", "min", "max", "min"][:m]
        points, front = rng.random((15, m)), rng.random((30, m))
        expected = IGDPlus(minimise(front, senses))(minimise(points, senses))
        assert igd_plus(points, front, senses) == pytest.approx(expected, rel=1e-9)


def test_zero_on_the_reference_front_and_worse_when_shifted():
    front = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    assert igd_plus(front, front) == pytest.approx(0.0)
    assert igd_plus(front + 0.1, front) > 0
    # better than the reference front in every objective: IGD+ counts no distance
    assert igd_plus(front - 0.1, front) == pytest.approx(0.0)


def test_bounds_normalise_both_sets():
    front = np.array([[0.0, 10.0], [1.0, 0.0]])
    pts = front + [0.1, 1.0]
    value = igd_plus(pts, front, "min", bounds=([0, 0], [1, 10]))
    assert value == pytest.approx(np.sqrt(0.1**2 + 0.1**2))


def test_mismatched_objectives_are_named():
    with pytest.raises(ValueError, match="reference_front has 3"):
        igd_plus(np.zeros((2, 2)), np.zeros((2, 3)), ["min", "max"])
