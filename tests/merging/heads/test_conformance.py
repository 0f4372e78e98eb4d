"""Every registered head kind, built from a specification the way a study builds it, keeps the
RewardHead contract. A kind added to the registry without an example here fails the first test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from merging.data import Prompt
from merging.heads import HEAD_KINDS, head_bytes, head_kind, load_head

PROMPTS = [Prompt(({"role": "user", "content": f"w1{i} w2{i}"},)) for i in range(4)]
RESPONSES = ["w7 w8 w9", "", "w3", "w4 w5 w6 w7 w8 w9"]


@pytest.fixture(scope="module")
def specs(tiny_zoo_cache, seq_cls) -> dict[str, str]:
    """One specification per kind: real files where the kind reads files."""
    _, manifest = tiny_zoo_cache
    return {
        "bt_head": manifest.heads["helpfulness"],
        "hf_reward_model": str(seq_cls),
        "length_tokens": "length_tokens",
        "target_length": "target_length:3",
    }


def test_every_registered_kind_has_an_example(specs):
    assert set(specs) == set(HEAD_KINDS)


@pytest.mark.parametrize("kind", list(HEAD_KINDS))
def test_a_spec_names_one_kind_and_loads_a_head_that_scores(kind, specs):
    spec = specs[kind]
    claims = [k for k in HEAD_KINDS if HEAD_KINDS.get(k).names(spec)]
    assert claims == [kind]
    assert head_kind(spec) is HEAD_KINDS.get(kind)
    head = load_head(spec, device="cpu")
    assert head.kind == kind
    scores = head.score(PROMPTS, RESPONSES)
    assert scores.shape == (len(RESPONSES),)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(load_head(spec, device="cpu").score(PROMPTS, RESPONSES), scores)
    identity = head.identity()
    assert identity["kind"] == kind
    json.dumps(identity)  # hashed into every evaluation: plain data
    assert head_bytes(spec, "cpu") >= 0
    assert (head_bytes(spec, "cpu") > 0) == (kind in ("bt_head", "hf_reward_model"))


def test_an_unknown_spec_lists_every_kind(specs):
    with pytest.raises(ValueError, match="is not one of") as error:
        load_head("no_such_head")
    for kind in HEAD_KINDS:
        assert HEAD_KINDS.get(kind).spec_help in str(error.value)
    assert head_bytes("no_such_head") == 0
