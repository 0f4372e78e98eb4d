"""Racing: dominated candidates stop early, candidates near the front get every prompt."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pareto.racing import (
    RacingSettings,
    dominance_draws,
    front_recovered,
    p_dominated_by,
    race,
    raced_estimate,
)

P, M = 64, 2


def scores_of(mean, prompt, rng, noise=0.3):
    return np.asarray(mean)[None, :] + prompt + noise * rng.standard_normal((P, M))


def batch_reader(scores, calls):
    def score_batch(lo, hi):
        calls.append((lo, hi))
        return scores[lo:hi]

    return score_batch


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    prompt = rng.standard_normal((P, M))  # shared by every candidate
    peers = [scores_of([0.0, 0.0], prompt, rng), scores_of([0.5, -0.5], prompt, rng)]
    return rng, prompt, peers


def test_a_clearly_dominated_candidate_stops_after_the_first_batches(world):
    rng, prompt, peers = world
    cand = scores_of([-0.6, -0.6], prompt, rng)
    calls = []
    out = race(batch_reader(cand, calls), P, peers, ["max", "max"], RacingSettings(batch=8))
    assert out.raced_out
    assert out.by == 0
    assert len(out.scores) < P
    assert calls[-1][1] == len(out.scores)
    assert calls == [(i, i + 8) for i in range(0, len(out.scores), 8)]
    assert out.p_dominated >= 0.95
    np.testing.assert_array_equal(out.scores, cand[: len(out.scores)])


def test_a_candidate_on_the_front_gets_every_prompt(world):
    rng, prompt, peers = world
    cand = scores_of([0.25, 0.3], prompt, rng)  # not dominated by either peer
    calls = []
    out = race(batch_reader(cand, calls), P, peers, ["max", "max"], RacingSettings(batch=8))
    assert not out.raced_out
    assert len(out.scores) == P
    assert out.decisions
    assert all(p < 0.95 for _, p in out.decisions)


def test_senses_and_peers_with_fewer_prompts(world):
    rng, prompt, peers = world
    cand = scores_of([-0.6, -0.6], prompt, rng)
    # minimising, the same candidate dominates the peers: never raced out
    out = race(batch_reader(cand, []), P, peers, ["min", "min"], RacingSettings(batch=8))
    assert not out.raced_out
    # a dominating peer scored on only 8 prompts cannot decide past them
    short = [peers[0][:8]]
    out = race(batch_reader(cand, []), P, short, ["max", "max"], RacingSettings(batch=8))
    assert out.raced_out == (out.decisions[0][1] >= 0.95)
    assert len(out.decisions) == 1  # after prompt 16 the short peer is no longer eligible


def test_p_dominated_by_is_paired(world):
    _rng, _prompt, peers = world
    cand = peers[0] - 0.1  # the first peer, 0.1 worse on every prompt
    p = p_dominated_by(cand, peers, ["max", "max"], draws=200)
    assert p[0] == 1.0  # every resample sees the same paired gap
    assert p[1] == 0.0


def test_dominated_by_some_peer_counts_every_peer_in_each_draw():
    """Two peers, each better on the second objective and a coin toss on the first: neither
    alone dominates the candidate with probability above 0.6, but some one of them does in
    most draws, and racing decides on that."""
    rng = np.random.default_rng(1)
    cand = rng.standard_normal((P, M))
    peers = []
    for _ in range(2):
        peer = cand + np.array([0.0, 0.5])
        noise = rng.standard_normal(P)
        peer[:, 0] += noise - noise.mean()  # no paired difference on the first objective
        peers.append(peer)
    hits = dominance_draws(cand, peers, ["max", "max"], draws=1000, seed=0)
    alone = hits.mean(axis=0)
    some = hits.any(axis=1).mean()
    assert alone.max() < 0.6
    assert some > alone.max() + 0.15
    np.testing.assert_array_equal(alone, p_dominated_by(cand, peers, ["max", "max"], draws=1000))


def test_raced_estimate_removes_the_prefix_prompt_effect(world):
    rng, prompt, _peers = world
    anchor = scores_of([0.0, 0.0], prompt, rng)
    cand = scores_of([0.2, 0.2], prompt, rng)[:16]
    means, errs = raced_estimate(cand, anchor)
    np.testing.assert_allclose(means, anchor.mean(0) + (cand - anchor[:16]).mean(0))
    plain, plain_err = raced_estimate(cand, None)
    np.testing.assert_allclose(plain, cand.mean(0))
    # the paired estimate is nearer the truth's offset from the anchor than the prefix mean
    assert np.abs(means - anchor.mean(0) - 0.2).max() < np.abs(plain - anchor.mean(0) - 0.2).max()
    assert (errs < plain_err).all()


def test_settings_are_checked():
    with pytest.raises(ValidationError):
        RacingSettings(epsilon=0.7)
    with pytest.raises(ValidationError):
        RacingSettings(batch=0)
    with pytest.raises(ValidationError):
        RacingSettings(bach=4)


def test_front_recovered_on_one_normalisation():
    """Both sets on the box spanned by both, the reference 10% beyond its worst corner: the
    staircase areas by hand; IGD+ is 0 exactly when the raced set covers the full front."""
    full = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    same = front_recovered(full, full.copy(), ["max", "max"])
    assert same[0] == pytest.approx(0.46)
    assert same[1] == pytest.approx(0.46)
    assert same[2] == 0
    worse = full.copy()
    worse[2] = [0.2, 0.2]  # the knee raced out and under-estimated
    hv_full, hv_raced, igd = front_recovered(full, worse, ["max", "max"])
    assert hv_full == pytest.approx(0.46)
    assert hv_raced == pytest.approx(0.25)
    assert igd > 0
