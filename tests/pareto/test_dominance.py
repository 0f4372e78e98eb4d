from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pareto import nondominated_sort, pareto_mask
from tests.pareto.brute import brute_mask, brute_ranks


@st.composite
def tied_points(draw):
    """Small integer grids: full of ties and exact duplicates."""
    m = draw(st.integers(1, 5))
    n = draw(st.integers(0, 40))
    values = draw(st.lists(st.integers(0, 3), min_size=n * m, max_size=n * m))
    senses = draw(st.lists(st.sampled_from(["max", "min"]), min_size=m, max_size=m))
    return np.array(values, dtype=float).reshape(n, m), senses


@settings(max_examples=300, deadline=None)
@given(tied_points())
def test_pareto_mask_equals_brute_force(case):
    points, senses = case
    np.testing.assert_array_equal(pareto_mask(points, senses), brute_mask(points, senses))


@settings(max_examples=200, deadline=None)
@given(tied_points())
def test_nondominated_sort_equals_brute_force(case):
    points, senses = case
    np.testing.assert_array_equal(nondominated_sort(points, senses), brute_ranks(points, senses))


def test_duplicates_of_front_points_are_all_kept_and_share_a_rank():
    pts = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0], [3.0, 3.0]])
    assert pareto_mask(pts, "min").tolist() == [True, True, True, False, False]
    assert nondominated_sort(pts, "min").tolist() == [0, 0, 0, 1, 1]


def test_ties_in_one_objective():
    # equal first objective, better second: (1, 2) dominates (1, 3)
    pts = np.array([[1.0, 2.0], [1.0, 3.0], [2.0, 2.0]])
    assert pareto_mask(pts, "min").tolist() == [True, False, False]
    assert nondominated_sort(pts, ["min", "min"]).tolist() == [0, 1, 1]


def test_senses_flip_the_front():
    pts = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert pareto_mask(pts, "min").tolist() == [True, False]
    assert pareto_mask(pts, "max").tolist() == [False, True]
    assert pareto_mask(pts, ["max", "min"]).tolist() == [True, True]


def test_empty_input():
    assert pareto_mask(np.zeros((0, 3)), "min").shape == (0,)
    assert nondominated_sort(np.zeros((0, 3)), "min").shape == (0,)


@pytest.mark.parametrize(
    ("points", "senses", "match"),
    [
        ([[1.0, np.nan]], "min", "finite"),
        ([1.0, 2.0], "min", r"shape \(n, m\)"),
        ([[1.0, 2.0]], ["min"], "1 entries for 2 objectives"),
        ([[1.0, 2.0]], ["min", "maximise"], "expected 'max' or 'min'"),
    ],
)
def test_bad_input_is_named(points, senses, match):
    with pytest.raises(ValueError, match=match):
        pareto_mask(points, senses)
