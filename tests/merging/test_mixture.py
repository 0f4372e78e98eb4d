"""Decoding-time mixing (MOD): one-hot weights are the expert itself, token for token; the
mixture's log-probabilities are the normalised weighted sum of the experts'."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from merging.data import Prompt
from merging.expert_set import ExpertSet
from merging.generation import GenerationSettings, generate
from merging.heads.answer_log_probs import answer_log_probs, encode
from merging.mixture import ExpertMixture
from merging.resident import ResidentMerger

PROMPTS = [
    Prompt(({"role": "user", "content": " ".join(f"w{7 + (i * j) % 80}" for j in range(n))},))
    for i, n in enumerate([3, 9, 5, 14, 2, 7])
]
SETTINGS = GenerationSettings(max_new_tokens=10, batch_size=3)


def _merger(base, experts) -> ResidentMerger:
    return ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu", dtype="float32")


def _plain(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # rotary and learned positions
def test_one_hot_weights_give_the_experts_own_greedy_text(model_zoo, arch):
    base, experts = model_zoo(arch, 2)
    tok = AutoTokenizer.from_pretrained(base)
    merger = _merger(base, experts)
    own = [generate(_plain(path), tok, PROMPTS, SETTINGS) for path in experts.values()]
    assert own[0] != own[1], "the two experts write the same text: the test would show nothing"
    for i, expected in enumerate(own):
        weights = [1.0 if j == i else 0.0 for j in range(len(experts))]
        mixture = ExpertMixture(merger, weights)
        assert len(mixture) == 1
        assert generate(mixture, tok, PROMPTS, SETTINGS) == expected


def test_identical_experts_mix_to_any_one_of_them(model_zoo, tmp_path):
    base, experts = model_zoo("llama", 2)
    first = next(iter(experts.values()))
    twin = shutil.copytree(first, tmp_path / "twin")
    tok = AutoTokenizer.from_pretrained(base)
    mixture = ExpertMixture(_merger(base, {"a": first, "b": twin}), [0.3, 0.7])
    assert len(mixture) == 2
    assert generate(mixture, tok, PROMPTS, SETTINGS) == generate(
        _plain(first), tok, PROMPTS, SETTINGS
    )


def test_the_mixture_is_the_normalised_weighted_sum_of_log_probs(model_zoo):
    base, experts = model_zoo("gpt2", 2)
    tok = AutoTokenizer.from_pretrained(base)
    rows = [
        encode(tok, p, " ".join(f"w{10 + i + k}" for k in range(4 + i)))
        for i, p in enumerate(PROMPTS[:4])
    ]
    pad = tok.pad_token_id or 0
    w = [0.25, 0.75]
    mixed, target = answer_log_probs(ExpertMixture(_merger(base, experts), w), rows, pad)
    parts = [answer_log_probs(_plain(path), rows, pad)[0] for path in experts.values()]
    expected = torch.log_softmax(w[0] * parts[0] + w[1] * parts[1], -1)
    torch.testing.assert_close(mixed, expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(mixed.exp().sum(-1), torch.ones(mixed.shape[:2]), atol=1e-5)
    assert (target != -100).sum() == sum(len(a) for _, a in rows)


def test_a_mixture_needs_resident_experts_and_a_positive_weight(model_zoo):
    base, experts = model_zoo("llama", 2)
    merger = _merger(base, experts)
    with pytest.raises(ValueError, match="non-negative, one positive"):
        ExpertMixture(merger, [0.0, 0.0])
    with pytest.raises(ValueError, match="1 weights for 2 experts"):
        ExpertMixture(merger, [1.0])

    class Streamed:  # a merger without the experts' own weights at hand
        expert_names = ("a", "b")

    with pytest.raises(ValueError, match="resident"):
        ExpertMixture(Streamed(), [0.5, 0.5])
