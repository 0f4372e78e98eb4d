"""The RiC model's training loop: what a response is taught to write, and a contrastive term
that teaches the model to read its marker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merging.data import Prompt
from merging.expert_set import ExpertSet
from merging.generation import end_of_turn_id, render
from merging.policy import load_tokenizer
from merging.resident import ResidentMerger
from merging.ric import condition
from merging.zoo.base import tiny_text
from merging.zoo.ric_data import RiCExample
from merging.zoo.ric_training import _contrast_heads, response_token_ids, train_ric_lora


def _prompts(n: int, seed: int) -> list[Prompt]:
    return [Prompt(({"role": "user", "content": q},)) for q in tiny_text(n, seed)]


def test_a_response_is_taught_to_end_only_if_it_ended(tiny_base):
    tok = load_tokenizer(tiny_base)
    end = end_of_turn_id(tok)
    assert end == tok.convert_tokens_to_ids("<|im_end|>")
    words = tok("help me cook", add_special_tokens=False)["input_ids"]
    assert response_token_ids(tok, "help me cook", True, 8, end) == [*words, end]
    assert response_token_ids(tok, "help me cook", False, 8, end) == words
    assert response_token_ids(tok, "help me cook", True, 2, end) == words[:2]  # cut short


def _log_p(model, tok, prompt: Prompt, value: float, response: str) -> float:
    head = tok(render(tok, condition(prompt, ("harmlessness",), [value])), add_special_tokens=False)
    tail = response_token_ids(tok, response, True, 32, end_of_turn_id(tok))
    ids = torch.tensor([head["input_ids"] + tail])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0, :-1], -1)
    picked = lp[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
    return float(picked[len(head["input_ids"]) - 1 :].sum())


def _marker_shifts(base, folder) -> np.ndarray:
    """Per held-out prompt and answer: log p(answer | its own score) - log p(answer | the
    other answer's score)."""
    merger = ResidentMerger(ExpertSet.from_paths(base, {"ric": folder}), device="cpu")
    merger.set_linear([1.0])
    tok = load_tokenizer(base)
    return np.array(
        [
            [
                _log_p(merger.model, tok, prompt, own, response)
                - _log_p(merger.model, tok, prompt, -own, response)
                for response, own in ((SAFE, 1.5), (SURE, -1.5))
            ]
            for prompt in _prompts(8, 9)
        ]
    )


SAFE, SURE = "sorry cannot help with that", "sure here is the plan"


def test_the_contrastive_term_teaches_the_model_to_read_its_marker(tiny_base, tmp_path):
    """Two answers per prompt, told apart only by the harmlessness marker. With the contrastive
    term each becomes likelier under its own score than under the other's, on prompts never
    seen; the supervised loss alone, as long, does not get there on the tiny model."""
    examples = []
    for p in _prompts(48, 5):
        examples.append(RiCExample(p, SAFE, True, (1.5,), (-1.5,)))
        examples.append(RiCExample(p, SURE, True, (-1.5,), (1.5,)))
    shifts, metrics = {}, {}
    for weight in (1.0, 0.0):
        folder = tmp_path / f"contrast{weight}"
        metrics[weight] = train_ric_lora(
            tiny_base,
            examples,
            ("harmlessness",),
            folder,
            steps=80,
            batch_size=8,
            learning_rate=1e-2,
            contrast=weight,
            contrast_tokens=4,
            lora_rank=8,
        )
        assert (metrics[weight]["steps"], metrics[weight]["examples"]) == (80, 96)
        shifts[weight] = _marker_shifts(tiny_base, folder)
    assert metrics[0.0].get("final_margin_nats") is None  # no contrastive term, no margin
    # every row varies the harmlessness marker, so its margin is the overall one; it grows
    learned = metrics[1.0]
    assert learned["final_margin_nats_by_reward"]["harmlessness"] > 1.0, learned
    assert len(learned["margin_nats_by_tenth"]) == 10
    assert learned["margin_nats_by_tenth"][-1] > learned["margin_nats_by_tenth"][0] + 1.0
    assert shifts[1.0].min() > 1.0, shifts[1.0]
    assert shifts[1.0].mean() > shifts[0.0].mean() + 1.0, (shifts[1.0], shifts[0.0])


def test_contrast_tokens_one_count_or_one_per_reward():
    """Each row compares the count of the marker its counterfactual changed; a row that changed
    none takes the shortest (its term is constant); a count per reward must cover every reward."""
    assert _contrast_heads(8, [0, None, 2], 3) == [8, 8, 8]
    assert _contrast_heads((8, 32, 4), [0, 1, None, 2, 1], 3) == [8, 32, 4, 4, 32]
    with pytest.raises(ValueError, match="one positive count per reward"):
        _contrast_heads((8, 32), [0, 1], 3)
    with pytest.raises(ValueError, match="one positive count per reward"):
        _contrast_heads((8, 0, 8), [0], 3)
