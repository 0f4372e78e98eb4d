"""The zoo's training data: concise pairs and finding HH-RLHF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from merging.data import PreferencePair, Prompt
from merging.hh_rlhf import locate_hh_rlhf
from merging.zoo.datasets import agreeing_pairs, concise_pairs, pair_scores, short_pairs

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
