"""hypervolume_history: the hypervolume of each prefix of a run, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from pareto.report import hypervolume_history


def test_history_of_a_two_objective_run_matches_rectangles():
    # minimise both, reference (4, 4): boxes of (1,3) -> 3, add (3,1) -> 3+3-1 = 5,
    # add (2,2) -> 5 + 1 = 6, add a dominated point -> 6
    values = [[1, 3], [3, 1], [2, 2], [3, 3]]
    counts, hv = hypervolume_history(values, [4, 4], "min")
    np.testing.assert_array_equal(counts, [1, 2, 3, 4])
    np.testing.assert_allclose(hv, [3, 5, 6, 6])


def test_history_is_thinned_but_keeps_the_end_and_never_decreases():
    rng = np.random.default_rng(0)
    values = rng.random((1000, 3))
    counts, hv = hypervolume_history(values, [1.1] * 3, ["max", "min", "min"], points=50)
    assert len(counts) == 50
    assert (counts[0], counts[-1]) == (1, 1000)
    assert (np.diff(hv) >= -1e-12).all()
    assert hypervolume_history([], [1, 1], "min")[0].size == 0
    with pytest.raises(ValueError, match="points"):
        hypervolume_history(values, [1.1] * 3, "min", points=0)


def test_history_with_one_point_is_the_whole_run():
    counts, hv = hypervolume_history([[1, 3], [3, 1]], [4, 4], "min", points=1)
    np.testing.assert_array_equal(counts, [2])
    np.testing.assert_allclose(hv, [5])
