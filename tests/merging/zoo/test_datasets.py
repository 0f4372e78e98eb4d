"""The zoo's training data: agreeing, widest-margin and concise pairs, and finding HH-RLHF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from merging.data import PreferencePair, Prompt
from merging.hh_rlhf import locate_hh_rlhf
from merging.zoo.datasets import (
    agreeing_pairs,
    concise_pairs,
    pair_scores,
    short_pairs,
    widest_margin_pairs,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "hh-rlhf"
P = Prompt(({"role": "user", "content": "q"},))


class WordsHead:
    """Scores a response by how many times it says 'good'."""

    def score(self, prompts, responses):
        return np.array([r.split().count("good") for r in responses], dtype=float)


def test_concise_pairs_keep_two_good_responses_and_prefer_the_shorter():
    pairs = [
        PreferencePair(P, "good good answer with many extra words here", "good good"),  # both good
        PreferencePair(P, "good good short", "bad bad bad bad bad bad bad bad bad"),  # one bad
        PreferencePair(P, "good good one two", "good good one two three"),  # too close in length
        PreferencePair(P, "bad", "bad bad"),
        PreferencePair(P, "meh", "bad meh"),
        PreferencePair(P, "nope", "bad nope"),
    ]
    out = concise_pairs(pairs, pair_scores(pairs, WordsHead()))
    assert [(p.chosen, p.rejected) for p in out] == [
        ("good good", "good good answer with many extra words here")
    ]


def test_agreeing_pairs_are_those_the_head_ranks_like_the_label():
    pairs = [
        PreferencePair(P, "good", "bad"),
        PreferencePair(P, "bad", "good good"),
        PreferencePair(P, "good", "good"),
    ]
    assert agreeing_pairs(pairs, pair_scores(pairs, WordsHead())) == [pairs[0]]


def test_widest_margin_pairs_are_the_clearest_agreements_widest_first():
    pairs = [PreferencePair(P, f"c{i}", f"r{i}") for i in range(6)]
    chosen = np.array([0.5, 2.0, -1.0, 0.1, 2.0, 0.0])
    rejected = np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0])  # margins .5 1.5 -1 .1 2 0
    assert widest_margin_pairs(pairs, (chosen, rejected), 3) == [pairs[4], pairs[1], pairs[0]]
    # fewer than asked when fewer agree: no tie or disagreement is ever taken
    assert widest_margin_pairs(pairs, (chosen, rejected), 10) == [pairs[i] for i in (4, 1, 0, 3)]


def test_the_preset_picks_which_experts_train_on_the_widest_margins():
    from dataclasses import replace

    from merging.zoo.presets import PRESETS
    from merging.zoo.steps import ZooBuild

    pairs = [PreferencePair(P, "good " * k, "bad") for k in range(1, 40)]
    scores = pair_scores(pairs, WordsHead())
    preset = replace(PRESETS["tiny"], dpo_steps=2, dpo_batch=3)
    plain = ZooBuild(preset, "cpu", pairs, pairs, scores={"helpfulness": scores})
    assert plain.expert_pairs("helpfulness") == agreeing_pairs(pairs, scores)  # all 39
    widest = replace(preset, widest_margin=("helpfulness",))
    build = ZooBuild(widest, "cpu", pairs, pairs, scores={"helpfulness": scores})
    assert build.expert_pairs("helpfulness") == pairs[-1:-7:-1]  # the 6 its steps take


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"lacks helpful-base/test\.jsonl\.gz"):
        locate_hh_rlhf(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"pass --data DIR with helpful-base"):
        locate_hh_rlhf(None)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside this checkout")
def test_short_pairs_from_the_real_data():
    folder = locate_hh_rlhf(SHARED)
    pairs = short_pairs(folder / "helpful-base" / "test.jsonl.gz")
    assert len(pairs) > 500
    assert all(len(p.prompt.messages) == 1 and len(p.chosen) <= 500 for p in pairs)
