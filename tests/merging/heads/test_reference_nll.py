"""``reference_nll``: the policy's negative log-likelihood of held-out reference answers (the
alignment tax as an objective), cross-checked with transformers' own loss on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from merging.data import Prompt
from merging.evaluate import Evaluator, Objective
from merging.generation import GenerationSettings
from merging.heads import PolicyHead, PolicyView, load_head
from merging.heads.reference_nll import ReferenceNLL, answer_nll
from merging.policy import load_tokenizer

SPECIAL_IDS = 6  # <pad> <s> </s> <unk> <|im_start|> <|im_end|>: the test tokenizer's first ids


def prompt(words: str) -> Prompt:
    return Prompt(({"role": "user", "content": words},))


def words(rng: np.random.Generator, n: int) -> str:
    return " ".join(f"w{i}" for i in rng.integers(SPECIAL_IDS, 90, n))


def write_pairs(path, rows) -> str:
    with path.open("w") as f:
        for p, chosen in rows:
            f.write(json.dumps({"prompt": p, "chosen": chosen, "rejected": "w7"}) + "\n")
    return str(path)


def policy(model_zoo, arch: str):
    from transformers import AutoModelForCausalLM

    base, _ = model_zoo(arch, 2)
    return AutoModelForCausalLM.from_pretrained(base).eval(), load_tokenizer(base)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_answer_nll_is_transformers_own_loss_over_the_answer_tokens(model_zoo, arch):
    from merging.generation import render

    model, tok = policy(model_zoo, arch)
    rng = np.random.default_rng(0)
    rows = [(prompt(words(rng, 2 + i % 4)), words(rng, 3 + i % 5)) for i in range(11)]
    got = answer_nll(model, tok, rows)  # two batches, rows of different lengths
    for (p, answer), nll in zip(rows, got, strict=True):
        p_ids = tok(render(tok, p), add_special_tokens=False)["input_ids"]
        a_ids = tok(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + a_ids])
        labels = torch.tensor([[-100] * len(p_ids) + a_ids])
        with torch.no_grad():
            expected = model(input_ids=ids, labels=labels).loss.item()
        assert nll == pytest.approx(expected, rel=1e-4, abs=1e-5)


def greedy_words(model, tok, p: Prompt, n: int) -> str:
    """The model's own greedy continuation of ``p``, ``n`` words (special tokens never drawn)."""
    from merging.generation import render

    ids = tok(render(tok, p), add_special_tokens=False)["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            logits[:SPECIAL_IDS] = -float("inf")
            out.append(int(logits.argmax()))
    return tok.decode(out)


def test_the_base_predicts_its_own_greedy_text_better_than_the_same_words_shuffled(
    model_zoo, tmp_path
):
    model, tok = policy(model_zoo, "llama")
    rng = np.random.default_rng(1)
    prompts = [prompt(words(rng, 3)) for _ in range(8)]
    own = [greedy_words(model, tok, p, 12) for p in prompts]
    shuffled = [" ".join(rng.permutation(a.split())) for a in own]
    assert all(len(set(a.split())) > 1 for a in own)  # shuffling changes the text
    rows = lambda answers: [(p.messages, a) for p, a in zip(prompts, answers, strict=True)]  # noqa: E731
    head_own = load_head(f"reference_nll:{write_pairs(tmp_path / 'own.jsonl', rows(own))}")
    head_shuffled = load_head(
        f"reference_nll:{write_pairs(tmp_path / 'shuffled.jsonl', rows(shuffled))}"
    )
    view = PolicyView(model, tok, prompts, own, (0, 8))  # the prompts and responses go unread
    nll_own = head_own.score_policy(view)
    nll_shuffled = head_shuffled.score_policy(view)
    assert (nll_own < nll_shuffled).all(), (nll_own, nll_shuffled)
    assert nll_own.mean() < nll_shuffled.mean() - 0.05  # a near-uniform random model: ln 96 = 4.56


@pytest.fixture
def reference(tmp_path):
    rng = np.random.default_rng(2)
    rows = [([{"role": "user", "content": words(rng, 3)}], words(rng, 5)) for _ in range(10)]
    return write_pairs(tmp_path / "reference.jsonl", rows)


def evaluator(reference: str, n: int, tmp_path) -> Evaluator:
    rng = np.random.default_rng(3)
    return Evaluator(
        [prompt(words(rng, 3)) for _ in range(n)],
        [
            Objective(name="tax", head=f"reference_nll:{reference}", sense="min"),
            Objective(name="verbosity", head="length_tokens", sense="min"),
        ],
        GenerationSettings(max_new_tokens=4),
        cache_dir=tmp_path / "cache",
        device="cpu",
    )


def test_an_evaluation_scores_reference_item_i_for_prompt_i_and_spans_agree(
    model_zoo, reference, tmp_path
):
    model, tok = policy(model_zoo, "llama")
    ev = evaluator(reference, 6, tmp_path)
    head = ev.heads["tax"]
    whole = ev.evaluate(model, tok, {"policy": "base"})
    expected = answer_nll(model, tok, [(i.prompt, i.chosen) for i in head.items[:6]])
    np.testing.assert_allclose(whole.scores["tax"], expected, rtol=1e-6)
    assert whole.objectives["tax"].mean == pytest.approx(expected.mean())
    assert whole.objectives["tax"].n == 6
    part = ev.evaluate(model, tok, {"policy": "base"}, span=(2, 5))  # as racing asks
    np.testing.assert_allclose(part.scores["tax"], expected[2:5], rtol=1e-6)
    assert ev.evaluate(model, tok, {"policy": "base"}).cached


def test_the_prompt_transform_rewrites_the_reference_prompts_too(model_zoo, reference, tmp_path):
    model, tok = policy(model_zoo, "llama")
    ev = evaluator(reference, 4, tmp_path)

    def marked(p: Prompt) -> Prompt:  # as RiC writes its desired scores into a prompt
        return Prompt(({"role": "user", "content": p.messages[-1]["content"] + " w40 w41"},))

    plain = ev.evaluate(model, tok, {"policy": "plain"}).scores["tax"]
    got = ev.evaluate(model, tok, {"policy": "marked"}, prompt_transform=marked).scores["tax"]
    items = ev.heads["tax"].items[:4]
    expected = answer_nll(model, tok, [(marked(i.prompt), i.chosen) for i in items])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not np.allclose(got, plain)


def test_fewer_reference_items_than_prompts_is_refused_before_anything_runs(reference, tmp_path):
    with pytest.raises(ValueError, match="has 10 reference items; the evaluation has 12 prompts"):
        evaluator(reference, 12, tmp_path)
    assert not (tmp_path / "cache").exists()


def test_the_head_scores_policies_not_responses(reference):
    head = load_head(f"reference_nll:{reference}")
    assert isinstance(head, ReferenceNLL)
    assert isinstance(head, PolicyHead)
    with pytest.raises(ValueError, match="scores a policy, not responses"):
        head.score([prompt("w7")], ["w8"])
    identity = head.identity()
    assert identity["kind"] == "reference_nll"
    assert identity["items"] == 10


def test_a_bad_reference_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="no such pairs file"):
        load_head(f"reference_nll:{tmp_path / 'absent.jsonl'}")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no usable preference pairs"):
        load_head(f"reference_nll:{tmp_path / 'empty.jsonl'}")


def test_the_default_reads_held_out_helpful_base_pairs(monkeypatch):
    from tests.conftest import HH_RLHF

    monkeypatch.setenv("PARETOMERGE_DATA", str(HH_RLHF))
    head = load_head("reference_nll")
    assert head.path.name == "test.jsonl.gz"
    assert head.path.parent.name == "helpful-base"
    assert len(head.items) > 100
    from merging.data import split_of

    assert {split_of(i.prompt) for i in head.items} == {"evaluation"}
