"""The joint (paired) bootstrap against simulations with a known truth.

Candidates have known means; every prompt adds an effect shared by all candidates (most of
the variance, as with real reward heads) plus independent noise. The paired bootstrap must
cover true differences at its nominal rate, and the independent-normal method, given the same
data, must not.
"""

from __future__ import annotations

import numpy as np
import pytest

from pareto import dominance_probability
from pareto.prompt_scores import PromptScores, decode_scores, encode_scores
from pareto.uncertainty import joint_bootstrap, prompt_weights

SHARED, NOISE = 1.0, 0.35  # prompt effect and per-candidate noise (88% of variance shared)


def simulate(means: np.ndarray, n_prompts: int, rng) -> np.ndarray:
    """(n, P, m) scores: means + a prompt effect shared by every candidate + noise."""
    n, m = means.shape
    prompt = SHARED * rng.standard_normal((1, n_prompts, m))
    return means[:, None, :] + prompt + NOISE * rng.standard_normal((n, n_prompts, m))


def test_paired_intervals_cover_the_true_difference_at_their_level():
    truth = np.array([[0.0, 0.0], [0.15, -0.1], [0.05, 0.3]])
    covered, naive_covered, total = 0, 0, 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        s = simulate(truth, 100, rng)
        jb = joint_bootstrap(PromptScores(s, np.full(3, 100)), "max", n_draws=400, seed=seed)
        for i, j in [(1, 0), (2, 0), (2, 1)]:
            _, low, high = jb.difference(i, j)
            true = truth[i] - truth[j]
            covered += int(((low <= true) & (true <= high)).sum())
            # the independent-normal interval of the same difference
            se = s.std(axis=1, ddof=1) / np.sqrt(100)
            half = 1.96 * np.hypot(se[i], se[j])
            diff = s[i].mean(axis=0) - s[j].mean(axis=0)
            naive_covered += int((np.abs(diff - true) <= half).sum())
            total += 2
    coverage, naive = covered / total, naive_covered / total
    assert 0.93 <= coverage <= 0.97, coverage
    # ignoring the shared prompt effect makes the intervals several times too wide
    assert naive > 0.995, naive


def test_a_dominated_point_is_recognised_as_prompts_grow():
    truth = np.array([[0.0, 0.0], [-0.1, -0.1], [0.3, -0.4], [-0.4, 0.3]])
    joint, independent = {}, {}
    for n_prompts in (10, 40, 160, 640):
        pj, pi = [], []
        for seed in range(30):
            rng = np.random.default_rng(1000 + seed)
            s = simulate(truth, n_prompts, rng)
            ps = PromptScores(s, np.full(len(truth), n_prompts))
            pj.append(joint_bootstrap(ps, "max", n_draws=300, seed=seed).p_nondominated()[1])
            means = s.mean(axis=1)
            se = s.std(axis=1, ddof=1) / np.sqrt(n_prompts)
            pi.append(dominance_probability(means, se, "max", n_samples=300, seed=seed)[1])
        joint[n_prompts], independent[n_prompts] = np.mean(pj), np.mean(pi)
    values = [joint[k] for k in (10, 40, 160, 640)]
    assert values == sorted(values, reverse=True), joint
    assert joint[640] < 0.02, joint
    assert joint[160] < 0.15, joint
    # the independent method is far less sure of the same difference on the same data
    assert independent[160] > joint[160] + 0.3, (independent, joint)
    assert independent[640] > 0.05, independent


def test_identical_trials_share_one_probability_and_are_one_point():
    rng = np.random.default_rng(3)
    s = simulate(rng.normal(size=(12, 3)) * 0.2, 30, rng)
    copies = np.concatenate([np.repeat(s[:1], 3, axis=0), s[1:]])
    p = joint_bootstrap(PromptScores(copies, np.full(len(copies), 30)), "max", n_draws=300)
    assert p.p_nondominated()[0] == p.p_nondominated()[1] == p.p_nondominated()[2]
    # twelve copies of one random trial: one point, certainly non-dominated
    twelve = np.repeat(s[5:6], 12, axis=0)
    p12 = joint_bootstrap(PromptScores(twelve, np.full(12, 30)), "max", n_draws=200)
    np.testing.assert_array_equal(p12.p_nondominated(), np.ones(12))
    assert len(set(p12.groups.tolist())) == 1


def test_anchor_estimates_a_prefix_through_its_paired_difference():
    rng = np.random.default_rng(4)
    s = simulate(np.array([[0.0, 0.0], [0.2, 0.1], [0.2, 0.1]]), 40, rng)
    anchor = s[0]
    used = np.array([40, 40, 16])
    ps = PromptScores(s, used, anchor=anchor)
    means = ps.means()
    np.testing.assert_allclose(means[1], s[1].mean(axis=0))
    expected = anchor.mean(axis=0) + (s[2, :16] - anchor[:16]).mean(axis=0)
    np.testing.assert_allclose(means[2], expected)
    assert ps.strata() == [(0, 16), (16, 40)]
    jb = joint_bootstrap(ps, ["max", "max"], n_draws=200, seed=1)
    diff, low, high = jb.anchor_differences()
    np.testing.assert_allclose(diff[0], 0.0)
    np.testing.assert_allclose(low[0], 0.0, atol=1e-12)  # the anchor against itself
    assert (low[1] < diff[1]).all()
    assert (diff[1] < high[1]).all()
    # a prefix estimate is noisier than the full one
    assert ((high - low)[2] > (high - low)[1]).all()


def test_weights_keep_every_stratum_whole_and_seed_reproduces():
    w = prompt_weights([(0, 8), (8, 24), (24, 30)], 50, seed=2)
    np.testing.assert_array_equal(w[:, :8].sum(axis=1), 8)
    np.testing.assert_array_equal(w[:, 8:24].sum(axis=1), 16)
    np.testing.assert_array_equal(w[:, 24:].sum(axis=1), 6)
    np.testing.assert_array_equal(w, prompt_weights([(0, 8), (8, 24), (24, 30)], 50, seed=2))
    assert not np.array_equal(w, prompt_weights([(0, 8), (8, 24), (24, 30)], 50, seed=3))


def test_p_dominates_matches_the_draws():
    rng = np.random.default_rng(5)
    s = simulate(np.array([[0.0, 0.0], [0.5, 0.5]]), 60, rng)
    jb = joint_bootstrap(PromptScores(s, np.full(2, 60)), "max", n_draws=300)
    assert jb.p_dominates(1, 0) > 0.99
    assert jb.p_dominates(0, 1) == 0.0
    jb_min = joint_bootstrap(PromptScores(s, np.full(2, 60)), "min", n_draws=300)
    assert jb_min.p_dominates(0, 1) > 0.99


def test_scores_round_trip_compactly():
    exact = np.array([[1.0, 12.0], [0.5, 3.0]], dtype=np.float32).astype(float)
    record = encode_scores(exact, ["a", "b"])
    assert record["dtype"] == "<f4"
    np.testing.assert_array_equal(decode_scores(record), exact)
    np.testing.assert_array_equal(decode_scores(record, ["b", "a"]), exact[:, ::-1])
    fine = np.array([[0.1, 1 / 3]])
    record = encode_scores(fine, ["a", "b"])
    assert record["dtype"] == "<f8"
    np.testing.assert_array_equal(decode_scores(record), fine)
    with pytest.raises(ValueError, match="no objective"):
        decode_scores(record, ["c"])
    with pytest.raises(ValueError, match="finite"):
        encode_scores([[np.nan, 1.0]], ["a", "b"])


def test_scores_are_stored_in_short_lines_and_old_single_strings_still_read():
    """200 prompts x 4 objectives: the base64 data in lines of 76 characters (one unbroken
    string widened optuna-dashboard's trial page), which join to the old single string."""
    import json

    scores = np.random.default_rng(0).normal(size=(200, 4))
    record = encode_scores(scores, ["a", "b", "c", "d"])
    assert max(len(word) for word in json.dumps(record).split()) <= 76 + 4  # quotes, comma
    assert all(len(line) == 76 for line in record["data"][:-1])
    np.testing.assert_array_equal(decode_scores(record), scores)
    old = {**record, "data": "".join(record["data"])}  # as studies before lines stored it
    np.testing.assert_array_equal(decode_scores(old), scores)


def test_bad_inputs():
    with pytest.raises(ValueError, match="used"):
        PromptScores(np.zeros((2, 5, 1)), np.array([5, 6]))
    with pytest.raises(ValueError, match="finite"):
        PromptScores(np.full((1, 5, 1), np.nan), np.array([5]))
    with pytest.raises(ValueError, match="anchor"):
        PromptScores(np.zeros((1, 5, 1)), np.array([5]), anchor=np.zeros((4, 1)))
    with pytest.raises(ValueError, match="n_draws"):
        joint_bootstrap(PromptScores(np.zeros((1, 5, 1)), np.array([5])), n_draws=0)


def test_hypervolume_draws_are_paired_between_runs():
    """Run b is run a shifted better on every prompt: its hypervolume is larger in every
    draw, however much the prompts move both; with no spread over prompts every draw is the
    point value."""
    from pareto.hypervolume import hypervolume
    from pareto.uncertainty import hypervolume_draws, percentile_interval

    rng = np.random.default_rng(0)
    a = simulate(np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]), 40, rng)
    b = a + 0.2  # both objectives maximised: better everywhere
    boot = joint_bootstrap(PromptScores.from_rows([*a, *b]), "max", n_draws=300, seed=1)
    ref, bounds = np.array([-3.0, -3.0]), (np.array([-3.0, -3.0]), np.array([4.0, 4.0]))
    hv = hypervolume_draws(boot, [range(3), range(3, 6)], ref, bounds)
    assert hv.shape == (300, 2)
    assert (hv[:, 1] > hv[:, 0]).all()
    assert hv[:, 0].std() > 0.01  # the prompts do move each run's hypervolume
    low, high = percentile_interval(hv[:, 1] - hv[:, 0], 0.95)
    assert 0 < low < high
    flat = np.broadcast_to(np.array([[0.2, 0.7]]), (10, 2)).copy()
    still = joint_bootstrap(PromptScores.from_rows([flat]), "max", n_draws=20, seed=1)
    one = hypervolume_draws(still, [[0]], ref, bounds)
    np.testing.assert_allclose(one[:, 0], hypervolume(flat[:1], ref, "max", bounds=bounds))
