"""The RiC model's training data: answers, centring, counterfactuals, and generation that says
which answers ended their turn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from merging.data import PreferencePair, Prompt
from merging.generation import GenerationSettings, generate, generate_finished
from merging.policy import load_tokenizer
from merging.zoo.base import tiny_text
from merging.zoo.ric_data import (
    answer_prompts,
    answer_sources,
    counterfactual_scores,
    one_marker_rows,
    policy_answers,
    policy_blend,
    rank_per_prompt,
)


def _prompts(n: int, seed: int) -> list[Prompt]:
    return [Prompt(({"role": "user", "content": q},)) for q in tiny_text(n, seed)]


def test_scores_become_ranks_among_the_answers_to_the_same_prompt():
    raw = np.array([[5.0, 1.0], [9.0, 1.0], [7.0, 3.0], [0.5, 2.0], [0.1, 2.0], [4.0, 4.0]])
    group = np.array([0, 0, 0, 1, 1, 2])
    out = rank_per_prompt(raw, group, [0, 1])
    np.testing.assert_allclose(
        out,
        [[-1, -0.5], [1, -0.5], [0, 1], [1, 0], [-1, 0], [0, 0]],  # ties share their rank
    )
    assert raw[0, 0] == 5.0
    np.testing.assert_array_equal(rank_per_prompt(raw, group, [1])[:, 0], raw[:, 0])


def test_policy_blend_moves_each_rank_towards_its_policys_mean_on_its_source():
    # two policies (0, 1) answering four prompts of two sources; columns: two heads' ranks
    ranked = np.array(
        [[1.0, 1.0], [-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0],  # source 0: prompts a, b
         [1.0, 0.0], [-1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]]  # source 1: prompts c, d
    )  # fmt: skip
    policy = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    source = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    full = policy_blend(ranked, policy, source, [0, 1], 1.0)
    # each entry is the mean of its policy's ranks on its source's prompts
    np.testing.assert_allclose(full[:, 0], [0, 0, 0, 0, 1, -1, 1, -1])
    np.testing.assert_allclose(full[:, 1], [1, -1, 1, -1, 0.5, -0.5, 0.5, -0.5])
    half_of_one = policy_blend(ranked, policy, source, [0, 1], (0.0, 0.5))
    np.testing.assert_array_equal(half_of_one[:, 0], ranked[:, 0])
    np.testing.assert_allclose(half_of_one[:, 1], (ranked[:, 1] + full[:, 1]) / 2)
    np.testing.assert_array_equal(policy_blend(ranked, policy, source, [0, 1], 0.0), ranked)
    assert answer_sources(5) == [0, 1, 0, 1, 0]


def test_one_marker_rows_write_the_others_as_their_mean():
    z = np.arange(1, 3001, dtype=float).reshape(1000, 3)
    shown, varied = one_marker_rows(z, 0.5, np.random.default_rng(0))
    alone = (shown == 0).sum(1) == 2
    assert 0.45 < alone.mean() < 0.55
    assert (shown[~alone] == z[~alone]).all()
    kept = shown[alone][np.arange(alone.sum()), varied[alone]]
    np.testing.assert_array_equal(kept, z[alone][np.arange(alone.sum()), varied[alone]])
    assert set(varied) == {0, 1, 2}
    assert one_marker_rows(z, 0.0, np.random.default_rng(0))[0].tolist() == z.tolist()


def test_marker_weights_set_how_often_each_marker_is_shown_alone_or_varied():
    z = np.arange(1, 6001, dtype=float).reshape(2000, 3)
    _, varied = one_marker_rows(z, 0.5, np.random.default_rng(0), (0.25, 1.0, 1.0))
    share = np.bincount(varied, minlength=3) / len(varied)
    np.testing.assert_allclose(share, [0.25 / 2.25, 1 / 2.25, 1 / 2.25], atol=0.03)
    _, never_first = one_marker_rows(z, 0.5, np.random.default_rng(0), (0.0, 1.0, 1.0))
    assert set(never_first) == {1, 2}


def test_a_counterfactual_sets_one_marker_to_a_rival_answers_value():
    z = np.array([[0.5, -1.0, 2.0], [-0.5, 1.0, 2.0], [0.0, 0.3, -1.0], [1.2, 0.3, -1.0]])
    shown = z * np.array([[1, 1, 1], [0, 1, 0], [1, 1, 1], [1, 0, 0]])  # rows 1, 3: one marker
    group = np.array([0, 0, 1, 1])
    varied = np.array([0, 1, 2, 0])
    out = counterfactual_scores(shown, z, group, varied, np.random.default_rng(0))
    np.testing.assert_array_equal(out, [[-0.5, -1, 2], [0, -1, 0], [0, 0.3, 1], [0, 0, 0]])
    rows, groups = np.repeat(z, 50, 0), np.repeat(group, 50)
    varied = np.random.default_rng(1).integers(3, size=len(rows))
    many = counterfactual_scores(rows, rows, groups, varied, np.random.default_rng(1))
    changed = many != rows
    assert (changed.sum(1) == 1).all()
    np.testing.assert_array_equal(np.argmax(changed, axis=1), varied)


def test_answer_prompts_alternate_between_the_data_sets_without_repeats():
    a = [PreferencePair(p, "x", "y") for p in _prompts(6, 1)] * 2  # every prompt twice
    b = [PreferencePair(p, "x", "y") for p in _prompts(6, 2)]
    out = answer_prompts(a, b, 6)
    assert len(out) == len({p.text for p in out}) == 6
    assert [p.text in {q.prompt.text for q in a} for p in out] == [True, False] * 3


def test_generation_says_which_responses_ended_their_turn(tiny_base):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    tok = load_tokenizer(tiny_base)
    prompts = _prompts(12, 3)
    for limit in (6, 12):  # sampled hot: the tiny base alone would end its turn at once
        settings = GenerationSettings(
            max_new_tokens=limit, batch_size=4, do_sample=True, temperature=1.5, top_p=1.0
        )
        texts, finished = generate_finished(model, tok, prompts, settings)
        assert texts == generate(model, tok, prompts, settings)
        lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        for n, ended in zip(lengths, finished, strict=True):
            assert n < limit if ended else n == limit
    assert any(finished)  # some end their turn,
    assert not all(finished)  # some run out of tokens


def test_policy_answers_are_each_experts_alone_unless_mixes_are_given(tiny_zoo_cache):
    _, zoo = tiny_zoo_cache
    experts = {name: Path(path) for name, path in zoo.experts.items()}
    prompts = _prompts(5, 4)
    alone, ended = policy_answers(Path(zoo.base), experts, prompts, max_new_tokens=6)
    assert len(alone) == len(ended) == len(experts)
    one_hot = [[0.0] * len(experts) for _ in range(2)]
    one_hot[0][1] = one_hot[1][0] = 1.0
    picked, picked_ended = policy_answers(
        Path(zoo.base), experts, prompts, max_new_tokens=6, mixes=one_hot
    )
    assert alone[0] != alone[1]  # the experts differ, so the order is checked
    assert picked == [alone[1], alone[0]]
    assert picked_ended == [ended[1], ended[0]]
    half = [[0.5, 0.5] + [0.0] * (len(experts) - 2)]
    mixed, _ = policy_answers(Path(zoo.base), experts, prompts, max_new_tokens=6, mixes=half)
    assert [len(m) for m in mixed] == [len(prompts)]
