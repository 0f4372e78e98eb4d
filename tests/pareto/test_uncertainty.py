from __future__ import annotations

import math

import numpy as np
import pytest

from pareto import dominance_probability, pareto_mask


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0, 2.0])
def test_two_points_closed_form(delta):
    # minimise: A = (0, 0), B = (delta, 0), every standard error s.
    # B is dominated only when A is better in both: P = 1 - Phi(delta / (s sqrt 2)) * 1/2.
    s, n = 1.0, 20000
    means = np.array([[0.0, 0.0], [delta, 0.0]])
    p = dominance_probability(means, np.full_like(means, s), "min", n_samples=n, seed=1)
    expected_b = 1 - normal_cdf(delta / (s * math.sqrt(2))) * 0.5
    expected_a = 1 - (1 - normal_cdf(delta / (s * math.sqrt(2)))) * 0.5
    tol = 4 * 0.5 / math.sqrt(n)
    assert p[1] == pytest.approx(expected_b, abs=tol)
    assert p[0] == pytest.approx(expected_a, abs=tol)


def test_zero_errors_give_the_front():
    rng = np.random.default_rng(0)
    means = rng.integers(0, 4, (30, 3)).astype(float)
    p = dominance_probability(means, np.zeros_like(means), ["max", "min", "max"])
    np.testing.assert_array_equal(p, pareto_mask(means, ["max", "min", "max"]).astype(float))


def test_senses_matter_and_seed_reproduces():
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    se = np.full_like(means, 0.05)
    assert dominance_probability(means, se, "max", n_samples=500).tolist() == [0.0, 1.0]
    assert dominance_probability(means, se, "min", n_samples=500).tolist() == [1.0, 0.0]
    a = dominance_probability(means, se * 20, "min", n_samples=300, seed=7)
    b = dominance_probability(means, se * 20, "min", n_samples=300, seed=7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("stderrs", "match"),
    [(np.ones((2, 3)), "shape"), (-np.ones((2, 2)), ">= 0"), ([[np.nan, 1], [1, 1]], "finite")],
)
def test_bad_errors(stderrs, match):
    with pytest.raises(ValueError, match=match):
        dominance_probability(np.zeros((2, 2)), stderrs)
