"""``kl_to_base``: the policy's per-token KL divergence from its base on its own responses,
cross-checked with a direct computation on unpadded rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merging.data import Prompt
from merging.evaluate import Evaluator, Objective
from merging.generation import GenerationSettings, render
from merging.heads import KLToBase, PolicyView, complete_spec, load_head
from merging.policy import load_tokenizer
from tests.merging.conftest import build_model


def prompt(words: str) -> Prompt:
    return Prompt(({"role": "user", "content": words},))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny Llama base, one expert near it and one farther away."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("kl")
    base = build_model("llama", root / "base", seed=0)
    near = build_model("llama", root / "near", seed=1, base=base, scale=0.02)
    far = build_model("llama", root / "far", seed=2, base=base, scale=0.2)
    load = lambda p: AutoModelForCausalLM.from_pretrained(p).eval()  # noqa: E731
    return base, load_tokenizer(base), load(base), load(near), load(far)


TEXTS = [("w7 w8", "w9 w10 w11"), ("w12", "w13 w14 w15 w16 w17"), ("w20 w21 w22", "w23")]
PROMPTS = [prompt(p) for p, _ in TEXTS]
RESPONSES = [r for _, r in TEXTS]
ROWS = [(prompt(p), r) for p, r in TEXTS]


def direct_kl(policy, base, tok, p: Prompt, response: str) -> float:
    """Mean over the response's tokens of KL(policy || base), one unpadded row at a time."""
    p_ids = tok(render(tok, p), add_special_tokens=False)["input_ids"]
    r_ids = tok(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + r_ids])
    at = slice(len(p_ids) - 1, len(p_ids) + len(r_ids) - 1)
    with torch.no_grad():
        logp = torch.log_softmax(policy(ids).logits[0, at].float(), -1)
        logq = torch.log_softmax(base(ids).logits[0, at].float(), -1)
    return float(torch.nn.functional.kl_div(logq, logp, log_target=True, reduction="sum")) / len(
        r_ids
    )


def test_kl_matches_a_direct_computation_and_is_zero_for_the_base(models):
    path, tok, base, near, far = models
    head = load_head(f"kl_to_base:{path}")
    assert isinstance(head, KLToBase)
    for policy in (near, far):
        got = head.score_policy(PolicyView(policy, tok, PROMPTS, RESPONSES, (0, 3)))
        expected = [direct_kl(policy, base, tok, p, r) for p, r in ROWS]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    same = head.score_policy(PolicyView(base, tok, PROMPTS, RESPONSES, (0, 3)))
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_a_policy_farther_from_the_base_scores_more_and_an_empty_answer_scores_zero(models):
    path, tok, _, near, far = models
    head = load_head(f"kl_to_base:{path}")
    kl_near = head.score_policy(PolicyView(near, tok, PROMPTS, RESPONSES, (0, 3)))
    kl_far = head.score_policy(PolicyView(far, tok, PROMPTS, RESPONSES, (0, 3)))
    assert (kl_near > 0).all()
    assert (kl_far > kl_near).all()
    empty = head.score_policy(PolicyView(far, tok, PROMPTS[:1], [""], (0, 1)))
    assert empty.tolist() == [0.0]


def test_the_policy_is_read_under_its_own_prompt_transform(models):
    path, tok, base, _, _ = models
    head = load_head(f"kl_to_base:{path}")

    def marked(p: Prompt) -> Prompt:  # as RiC writes its desired scores into a prompt
        return prompt(p.messages[-1]["content"] + " w40 w41")

    got = head.score_policy(PolicyView(base, tok, PROMPTS, RESPONSES, (0, 3), marked))
    assert (got > 0).all()  # the base under markers is not the base under the plain prompt


def test_an_evaluation_scores_its_own_responses_and_spans_agree(models, tmp_path):
    path, tok, base, near, _ = models
    ev = Evaluator(
        PROMPTS * 2,
        [
            Objective(name="kl", head=f"kl_to_base:{path}", sense="min"),
            Objective(name="verbosity", head="length_tokens", sense="min"),
        ],
        GenerationSettings(max_new_tokens=5),
        cache_dir=tmp_path,
        device="cpu",
    )
    whole = ev.evaluate(near, tok, {"policy": "near"})
    view = PolicyView(near, tok, PROMPTS * 2, whole.responses, (0, 6))
    np.testing.assert_allclose(whole.scores["kl"], ev.heads["kl"].score_policy(view), rtol=1e-6)
    part = ev.evaluate(near, tok, {"policy": "near"}, span=(2, 5))
    np.testing.assert_allclose(part.scores["kl"], whole.scores["kl"][2:5], rtol=1e-5)
    assert ev.evaluate(base, tok, {"policy": "base"}).objectives["kl"].mean == pytest.approx(
        0, abs=1e-6
    )


def test_a_study_fills_in_its_base_and_a_bare_spec_elsewhere_is_one_line(models):
    path, *_ = models
    assert complete_spec("kl_to_base", base=str(path)) == f"kl_to_base:{path}"
    assert complete_spec("kl_to_base:/x", base=str(path)) == "kl_to_base:/x"
    assert complete_spec("reference_nll", data="/d") == "reference_nll:/d"
    assert complete_spec("length_tokens", data="/d", base="/b") == "length_tokens"
    with pytest.raises(ValueError, match="write kl_to_base:BASE"):
        load_head("kl_to_base")
    with pytest.raises(ValueError, match="scores a policy, not responses"):
        load_head(f"kl_to_base:{path}").score(PROMPTS, RESPONSES)
