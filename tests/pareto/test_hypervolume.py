from __future__ import annotations

import moocore
import numpy as np
import pytest
from pymoo.indicators.hv import HV

from pareto import hypervolume, hypervolume_contributions, reference_point
from tests.pareto.brute import minimise

STAIRCASE = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])


def random_case(rng, m):
    n = int(rng.integers(1, 40))
    senses = list(rng.choice(["max", "min"], size=m))
    # points on a noisy sphere-like front plus dominated clutter
    raw = rng.random((n, m))
    raw /= np.linalg.norm(raw, axis=1, keepdims=True) + 1e-12
    raw += 0.2 * rng.random((n, m))
    points = raw * np.where(np.array(senses) == "max", -1.0, 1.0) * rng.uniform(0.5, 50, m)
    z = minimise(points, senses)
    ref_z = z.max(axis=0) + rng.uniform(-0.2, 0.5, m) * (np.ptp(z, axis=0) + 1e-9)
    ref = ref_z * np.where(np.array(senses) == "max", -1.0, 1.0)
    return points, senses, ref


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_hypervolume_equals_moocore_on_random_fronts(m):
    rng = np.random.default_rng(1000 + m)
    for _ in range(60):  # 240 fronts in all, some points beyond the reference
        points, senses, ref = random_case(rng, m)
        expected = moocore.hypervolume(points, ref=ref, maximise=[s == "max" for s in senses])
        assert hypervolume(points, ref, senses) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_equals_pymoo(m):
    rng = np.random.default_rng(m)
    for _ in range(10):
        points, senses, ref = random_case(rng, m)
        z = minimise(points, senses)
        ref_z = minimise(ref[None, :], senses)[0]
        inside = z[(z < ref_z).all(axis=1)]
        expected = HV(ref_point=ref_z)(inside) if len(inside) else 0.0
        assert hypervolume(points, ref, senses) == pytest.approx(expected, rel=1e-9)


def test_staircase_closed_form_both_senses():
    assert hypervolume(STAIRCASE, [4.0, 4.0], "min") == pytest.approx(6.0)
    assert hypervolume(-STAIRCASE, [-4.0, -4.0], "max") == pytest.approx(6.0)
    mixed = STAIRCASE * [1.0, -1.0]
    assert hypervolume(mixed, [4.0, -4.0], ["min", "max"]) == pytest.approx(6.0)


def test_contributions_closed_form_and_against_moocore():
    np.testing.assert_allclose(hypervolume_contributions(STAIRCASE, [4.0, 4.0]), [1.0, 1.0, 1.0])
    rng = np.random.default_rng(5)
    for m in (2, 3, 4):
        points, senses, ref = random_case(rng, m)
        expected = moocore.hv_contributions(points, ref=ref, maximise=[s == "max" for s in senses])
        np.testing.assert_allclose(hypervolume_contributions(points, ref, senses), expected)


def test_contributions_of_duplicates_and_dominated_points_are_zero():
    pts = np.vstack([STAIRCASE, STAIRCASE[1], [[3.5, 3.5]]])
    np.testing.assert_allclose(hypervolume_contributions(pts, [4.0, 4.0]), [1, 0, 1, 0, 0])


def test_default_reference_is_nadir_plus_ten_percent_of_range():
    pts = np.array([[0.0, 10.0], [1.0, 30.0]])  # max, min
    ref = reference_point(pts, ["max", "min"])
    np.testing.assert_allclose(ref, [0.0 - 0.1 * 1.0, 30.0 + 0.1 * 20.0])
    # every point lies strictly inside, so each non-dominated point contributes
    assert (hypervolume_contributions(pts, None, ["max", "min"]) > 0).all()
    assert hypervolume(pts, None, ["max", "min"]) == pytest.approx(
        hypervolume(pts, ref, ["max", "min"])
    )


def test_default_reference_with_a_constant_objective():
    ref = reference_point([[5.0, 1.0], [5.0, 2.0]], "min", margin=0.1)
    np.testing.assert_allclose(ref, [5.0 + 0.1 * 5.0, 2.0 + 0.1 * 1.0])
    ref = reference_point([[0.0, 1.0]], "max", margin=0.5)
    np.testing.assert_allclose(ref, [-0.5, 0.5])


def test_bounds_normalise_and_make_units_irrelevant():
    rng = np.random.default_rng(0)
    pts = rng.random((20, 3))
    senses = ["max", "min", "max"]
    bounds = ([0, 0, 0], [1, 1, 1])
    scale, shift = np.array([10.0, 200.0, 0.5]), np.array([-3.0, 40.0, 1.0])
    scaled_bounds = (shift, shift + scale)
    a = hypervolume(pts, None, senses, bounds=bounds)
    b = hypervolume(pts * scale + shift, None, senses, bounds=scaled_bounds)
    assert a == pytest.approx(b, rel=1e-12)
    # the ideal point of the bounds dominates the whole box up to 1 + margin
    ideal = np.array([[1.0, 0.0, 1.0]])
    assert hypervolume(ideal, None, senses, bounds=bounds, margin=0.1) == pytest.approx(1.1**3)
    # an explicit reference in original units is normalised too
    assert hypervolume(ideal, [0.0, 1.0, 0.0], senses, bounds=bounds) == pytest.approx(1.0)


def test_empty_set_has_zero_hypervolume_given_a_reference():
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="empty"):
        hypervolume(np.zeros((0, 2)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ref": [1.0]}, r"ref must have 2 values"),
        ({"ref": [1.0, np.inf]}, "ref must be finite"),
        ({"bounds": ([0, 0], [1, 0])}, "low < high"),
        ({"margin": -1.0}, "margin"),
    ],
)
def test_bad_reference_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hypervolume(STAIRCASE, **kwargs)
