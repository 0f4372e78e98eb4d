"""Every registered head kind, built from a specification the way a study builds it, keeps the
RewardHead contract. A kind added to the registry without an example here fails the first test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from merging.data import Prompt
from merging.heads import HEAD_KINDS, PolicyHead, PolicyView, head_bytes, head_kind, load_head

PROMPTS = [Prompt(({"role": "user", "content": f"w1{i} w2{i}"},)) for i in range(4)]
RESPONSES = ["w7 w8 w9", "", "w3", "w4 w5 w6 w7 w8 w9"]


@pytest.fixture(scope="module")
def specs(tiny_zoo_cache, seq_cls, tmp_path_factory) -> dict[str, str]:
    """One specification per kind: real files where the kind reads files."""
    _, manifest = tiny_zoo_cache
    pairs = tmp_path_factory.mktemp("reference") / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": p.last_user, "chosen": f"w3{i} w4{i}", "rejected": "w5"}) + "\n"
            for i, p in enumerate(PROMPTS)
        )
    )
    return {
        "bt_head": manifest.heads["helpfulness"],
        "hf_reward_model": str(seq_cls),
        "kl_to_base": f"kl_to_base:{manifest.base}",
        "length_tokens": "length_tokens",
        "reference_nll": f"reference_nll:{pairs}",
        "target_length": "target_length:3",
    }


@pytest.fixture(scope="module")
def tiny_policy(tiny_zoo_cache):
    """The tiny zoo's base model and tokenizer: what a head that scores the policy scores."""
    from transformers import AutoModelForCausalLM

    from merging.policy import load_tokenizer

    _, manifest = tiny_zoo_cache
    model = AutoModelForCausalLM.from_pretrained(manifest.base).eval()
    return model, load_tokenizer(manifest.base)


def scores_of(head, tiny_policy) -> np.ndarray:
    """The head's scores for :data:`PROMPTS`: of :data:`RESPONSES`, or of the policy."""
    if isinstance(head, PolicyHead):
        return head.score_policy(PolicyView(*tiny_policy, PROMPTS, RESPONSES, (0, len(PROMPTS))))
    return head.score(PROMPTS, RESPONSES)


def test_every_registered_kind_has_an_example(specs):
    assert set(specs) == set(HEAD_KINDS)


@pytest.mark.parametrize("kind", list(HEAD_KINDS))
def test_a_spec_names_one_kind_and_loads_a_head_that_scores(kind, specs, tiny_policy):
    spec = specs[kind]
    claims = [k for k in HEAD_KINDS if HEAD_KINDS.get(k).names(spec)]
    assert claims == [kind]
    assert head_kind(spec) is HEAD_KINDS.get(kind)
    head = load_head(spec, device="cpu")
    assert head.kind == kind
    scores = scores_of(head, tiny_policy)
    assert scores.shape == (len(PROMPTS),)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores_of(load_head(spec, device="cpu"), tiny_policy), scores)
    head.check_prompts(len(PROMPTS))  # an evaluation of these prompts is accepted
    identity = head.identity()
    assert identity["kind"] == kind
    json.dumps(identity)  # hashed into every evaluation: plain data
    assert head_bytes(spec, "cpu") >= 0
    assert (head_bytes(spec, "cpu") > 0) == (kind in ("bt_head", "hf_reward_model", "kl_to_base"))


def test_an_unknown_spec_lists_every_kind(specs):
    with pytest.raises(ValueError, match="is not one of") as error:
        load_head("no_such_head")
    for kind in HEAD_KINDS:
        assert HEAD_KINDS.get(kind).spec_help in str(error.value)
    assert head_bytes("no_such_head") == 0
