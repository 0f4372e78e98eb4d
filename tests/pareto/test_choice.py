from __future__ import annotations

import numpy as np
import pytest

from pareto import best_for_preference, knee_point


def quarter_circle(n=91):
    t = np.linspace(0, np.pi / 2, n)
    return np.column_stack([np.cos(t), np.sin(t)])  # maximise both: bulges toward (1, 1)


def test_knee_of_a_quarter_circle_is_at_45_degrees():
    pts = quarter_circle()
    assert knee_point(pts, "max") == 45
    assert knee_point(1.0 - pts, "min") == 45
    assert knee_point(pts * [1.0, -1.0] + [0.0, 5.0], ["max", "min"]) == 45


def test_knee_ignores_dominated_points_and_units():
    pts = quarter_circle(11)
    clutter = np.array([[0.1, 0.1], [0.5, 0.2]])
    scaled = np.vstack([pts, clutter]) * [1000.0, 0.01]
    assert knee_point(scaled, "max") == 5


def test_knee_of_a_sphere_octant_is_the_centre():
    # points on the positive octant of the unit sphere, maximised: the knee is (1,1,1)/sqrt(3)
    g = np.linspace(0, 1, 21)
    a, b = np.meshgrid(g, g)
    raw = np.column_stack([a.ravel(), b.ravel(), np.clip(1 - a.ravel() - b.ravel(), 0, None)])
    raw = raw[raw[:, 2] > 0]
    raw = np.vstack([raw, [[1.0, 0, 0], [0, 1.0, 0]], [[1 / 3, 1 / 3, 1 / 3]]])
    pts = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(pts[knee_point(pts, "max")], np.full(3, 3**-0.5))


def test_knee_of_a_single_or_linear_front():
    assert knee_point([[1.0, 2.0]], "min") == 0
    line = np.column_stack([np.linspace(0, 1, 5), 1 - np.linspace(0, 1, 5)])
    assert knee_point(line, "min") == 0  # every point ties; lowest index wins


def test_best_for_preference_extremes_and_middle():
    pts = quarter_circle()
    assert best_for_preference(pts, "max", [1.0, 0.0]) == 0
    assert best_for_preference(pts, "max", [0.0, 1.0]) == 90
    assert best_for_preference(pts, "max", [1.0, 1.0]) == 45
    # only ratios matter
    assert best_for_preference(pts, "max", [3.0, 1.0]) == best_for_preference(
        pts, "max", [0.3, 0.1]
    )


def test_best_for_preference_returns_a_pareto_optimal_point():
    # with weight only on objective 0, (1, 0) and (1, 0.5) tie on it; the augmentation
    # term picks the non-dominated one
    pts = np.array([[1.0, 0.0], [1.0, 0.5], [0.0, 1.0]])
    assert best_for_preference(pts, "max", [1.0, 0.0]) == 1


def test_chebyshev_reaches_non_convex_parts_of_a_front():
    t = np.linspace(0, np.pi / 2, 91)
    concave = np.column_stack([1 - np.cos(t), 1 - np.sin(t)])  # maximise: a non-convex front
    chosen = best_for_preference(concave, "max", [1.0, 1.0])
    np.testing.assert_allclose(concave[chosen], [1 - np.cos(np.pi / 4)] * 2, atol=1e-9)


@pytest.mark.parametrize(
    ("weights", "match"),
    [([1.0], "2 values"), ([-1.0, 2.0], "non-negative"), ([0.0, 0.0], "not all zero")],
)
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        best_for_preference(quarter_circle(), "max", weights)
