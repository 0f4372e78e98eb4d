"""The RiC model's training data and loop: answers, centring, counterfactuals, and a model that
learns to read its marker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merging.checkpoints import ExpertSet
from merging.data import PreferencePair, Prompt
from merging.generation import (
    GenerationSettings,
    end_of_turn_id,
    generate,
    generate_finished,
    render,
)
from merging.policy import load_tokenizer
from merging.resident import ResidentMerger
from merging.ric import condition
from merging.zoo.base import build_tiny, tiny_text
from merging.zoo.ric_data import (
    RiCExample,
    answer_prompts,
    counterfactual_scores,
    one_marker_rows,
    rank_per_prompt,
)
from merging.zoo.training import response_token_ids, train_ric_lora


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny_base"))


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
    from merging.zoo.training import _contrast_heads

    assert _contrast_heads(8, [0, None, 2], 3) == [8, 8, 8]
    assert _contrast_heads((8, 32, 4), [0, 1, None, 2, 1], 3) == [8, 32, 4, 4, 32]
    with pytest.raises(ValueError, match="one positive count per reward"):
        _contrast_heads((8, 32), [0, 1], 3)
    with pytest.raises(ValueError, match="one positive count per reward"):
        _contrast_heads((8, 0, 8), [0], 3)


def test_response_log_probs_are_each_rows_own(tiny_base):
    """Rows of different prompt and answer lengths, left-padded into one batch and projected at
    their answer tokens only, score each answer token as the row's own forward pass does."""
    from peft import get_peft_model

    from merging.zoo.training import _load, _lora, _response_log_probs

    model, tok = _load(tiny_base, "cpu")
    torch.manual_seed(0)
    model = get_peft_model(model, _lora(4, ["q_proj", "v_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    rows = [
        ([5, 6, 7, 8], [9, 10, 11]),
        ([12, 13], [14, 15, 16, 17, 18]),
        ([19, 20, 21, 22, 23, 24], [25]),
        ([26, 27], []),
    ]
    off = {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": False}
    lp, valid = _response_log_probs(model, rows, tok.pad_token_id, "cpu", off)
    assert lp.shape == (4, 5)
    assert valid.sum(-1).tolist() == [3, 5, 1, 0]
    assert (lp[~valid] == 0).all()
    for row, (prompt, answer) in enumerate(rows[:3]):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
        alone = logits[len(prompt) - 1 : -1].log_softmax(-1)
        own = alone.gather(-1, torch.tensor(answer)[:, None])[:, 0]
        torch.testing.assert_close(lp[row][valid[row]].detach(), own, rtol=1e-5, atol=1e-5)
    lp.sum().backward()
    grads = [p.grad for name, p in model.named_parameters() if "lora_B" in name]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    ("arch", "attention"), [("llama", "sdpa"), ("llama", "eager"), ("qwen2", "sdpa")]
)
def test_one_paired_pass_equals_the_own_and_counterfactual_passes(arch, attention):
    """The RiC loss's one pass per row (own prompt and response, then the counterfactual's
    departure from that prompt and its response head) gives the log-probabilities and LoRA
    gradients of the two passes it replaces, including rows whose counterfactual changes nothing,
    departs at the first token or covers the whole response."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from merging.zoo.shared_prefix import masks_per_position
    from merging.zoo.training import _lora, _paired_log_probs, _response_log_probs
    from tests.merging.conftest import tiny_config

    torch.manual_seed(0)
    config = tiny_config(arch)
    config._attn_implementation = attention
    model = get_peft_model(AutoModelForCausalLM.from_config(config), _lora(4, ["q_proj", "v_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    assert masks_per_position(model)
    rows = [  # (own prompt, counterfactual prompt, response, head)
        ([5, 6, 7, 8, 9], [5, 6, 7, 40, 41, 9], [10, 11, 12, 13], 2),
        ([14, 15], [14, 15], [16, 17, 18], 2),  # the counterfactual changes no marker
        ([19, 20, 21], [42, 20, 21], [22], 4),  # departs at once; the head covers it all
        ([23, 24, 25, 26, 27, 28, 29], [23, 24, 25, 26, 43], [30, 31, 32, 33, 34, 35], 3),
        ([36, 37], [36, 38], [], 2),  # nothing to score
    ]
    off = {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": False}
    paired = _paired_log_probs(model, rows, 0, "cpu", off)
    grads = _lora_grads(model, paired)
    own = _response_log_probs(model, [(o, r) for o, _, r, _ in rows], 0, "cpu", off)
    cf = _response_log_probs(model, [(c, r[:h]) for _, c, r, h in rows], 0, "cpu", off)
    apart = (*own, *cf)
    assert [t.shape for t in paired] == [t.shape for t in apart] == [(5, 6)] * 2 + [(5, 3)] * 2
    assert paired[1].sum(-1).tolist() == [4, 3, 1, 6, 0]
    assert paired[3].sum(-1).tolist() == [2, 2, 1, 3, 0]
    for mine, theirs in zip(paired, apart, strict=True):
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(grads, _lora_grads(model, apart), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def _lora_grads(model, outputs) -> list[torch.Tensor]:
    """The LoRA gradients of a loss that weighs own and counterfactual log-probabilities
    differently (so that a swap of the two would show)."""
    own_lp, _, cf_lp, _ = outputs
    model.zero_grad()
    (own_lp.sum() - 3 * cf_lp.sum()).backward()
    grads = [p.grad.clone() for name, p in model.named_parameters() if "lora_" in name]
    assert any(g.abs().sum() > 0 for g in grads)
    return grads
