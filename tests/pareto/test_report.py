"""study_report and hypervolume_history against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from pareto.report import hypervolume_history, study_report


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


def _results(label: str, values: list[list[float]]):
    from pareto.run_spec import RunSpec
    from pareto.spaces import Simplex, describe_space
    from pareto.trial_records import RunResults

    spec = RunSpec(
        study="s", label=label, family="interpolation", experts=("a", "b"), driver="random",
        budget=len(values), space=describe_space(Simplex(2)), objectives=("q", "cost"),
        senses=("max", "min"),
    )  # fmt: skip
    n = len(values)
    return RunResults(
        spec=spec,
        numbers=np.arange(n),
        values=np.asarray(values, dtype=float),
        stderrs=np.zeros((n, 2)),
        x=[np.array([0.5, 0.5])] * n,
        attrs=[{}] * n,
        completed_at=[None] * n,
    )


def test_study_report_hypervolumes_share_one_reference_and_normalisation():
    a = _results("a", [[1.0, 1.0], [0.0, 0.0]])
    b = _results("b", [[0.5, 0.5]])
    report = study_report([a, b])
    # observed range [0, 1] in both; reference = nadir + 10%: (-0.1, 1.1) in (q max, cost min)
    assert report.reference_point == pytest.approx((-0.1, 1.1))
    assert report.bounds == ((0.0, 0.0), (1.0, 1.0))
    hv = {r.label: r.hypervolume for r in report.runs}
    # normalised and turned into minimisation: a = {(0, 1), (1, 0)}, b = {(0.5, 0.5)}, the
    # reference (1.1, 1.1): a is two 1.1 x 0.1 rectangles overlapping in 0.1 x 0.1, b a square
    assert hv["a"] == pytest.approx(1.1 * 0.1 + 0.1 * 1.1 - 0.1 * 0.1)
    assert hv["b"] == pytest.approx(0.6 * 0.6)
    assert {(r.label, r.trial) for r in report.front} == {("a", 0), ("a", 1), ("b", 0)}
    assert sum(r.knee for r in report.front) == 1


def test_study_report_survives_an_objective_every_trial_scored_alike():
    report = study_report([_results("a", [[2.0, 5.0], [2.0, 5.0]])])
    low, high = report.bounds
    assert high[0] > low[0]
    assert high[1] > low[1]
    assert np.isfinite([r.hypervolume for r in report.runs]).all()


def test_trial_standing_ranks_knee_and_certainty():
    from pareto.report import trial_standing

    a = _results("a", [[1.0, 1.0], [0.0, 0.0]])
    b = _results("b", [[0.5, 0.5], [0.4, 0.6]])  # b#1 is dominated by b#0 (q max, cost min)
    report = study_report([a, b])
    standing = trial_standing([a, b], report)
    np.testing.assert_array_equal(standing.rank, [1, 1, 1, 2])
    knee = [(r.label, r.trial) for r in report.front if r.knee]
    expected = [(lab, n) in knee for lab, n in (("a", 0), ("a", 1), ("b", 0), ("b", 1))]
    np.testing.assert_array_equal(standing.knee, expected)
    # zero standard errors: the sorting is certain
    np.testing.assert_array_equal(standing.p_nondominated, [1.0, 1.0, 1.0, 0.0])
