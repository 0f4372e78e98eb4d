"""Reward heads: registered scorers of (prompt, response) pairs.

``length_tokens`` and ``target_length`` (verbosity), ``bt_head`` (a Bradley-Terry head on a
frozen encoder, trained by ``paretomerge heads train``), ``hf_reward_model`` (any Hugging
Face sequence-classification reward model), and ``reference_nll`` and ``kl_to_base``, which
score the policy itself (the alignment tax: its likelihood of held-out reference answers, its
divergence from the base on its own answers). :func:`load_head` asks every registered kind
whether a user's head spec names it, and builds the head with that kind.
"""

from __future__ import annotations

from merging.heads.base import HEAD_KINDS, PolicyHead, PolicyView, RewardHead, register
from merging.heads.bt_head import BTHead
from merging.heads.hf_reward import HFRewardModel
from merging.heads.kl_to_base import KLToBase
from merging.heads.length import LengthTokens, TargetLength
from merging.heads.reference_nll import ReferenceNLL

__all__ = [
    "HEAD_KINDS",
    "BTHead",
    "HFRewardModel",
    "KLToBase",
    "LengthTokens",
    "PolicyHead",
    "PolicyView",
    "ReferenceNLL",
    "RewardHead",
    "TargetLength",
    "complete_spec",
    "head_bytes",
    "head_kind",
    "load_head",
    "register",
]


def head_kind(spec: str) -> type[RewardHead]:
    """The registered kind that ``spec`` names; ``ValueError`` listing every kind's form."""
    for kind in HEAD_KINDS:
        cls = HEAD_KINDS.get(kind)
        if cls.names(spec):
            return cls
    forms = "; ".join(HEAD_KINDS.get(k).spec_help for k in HEAD_KINDS)
    raise ValueError(f"head {spec!r} is not one of: {forms}")


def load_head(
    spec: str, *, device: str | None = "auto", trust_remote_code: bool = False
) -> RewardHead:
    """The head ``spec`` names, built by its kind (:meth:`RewardHead.from_spec`)."""
    return head_kind(spec).from_spec(spec, device=device, trust_remote_code=trust_remote_code)


def complete_spec(spec: str, *, data: str | None = None, base: str | None = None) -> str:
    """``spec`` with a study's HH-RLHF folder and base model filled in where its kind reads
    them (:meth:`RewardHead.complete_spec`); a spec no kind claims is returned as it is (it
    fails where it is loaded)."""
    try:
        kind = head_kind(spec)
    except ValueError:
        return spec
    return kind.complete_spec(spec, data=data, base=base)


def head_bytes(spec: str, device_type: str = "cpu") -> int:
    """Memory the head ``spec`` takes on a ``device_type`` evaluation device, from its files'
    headers (nothing loaded); 0 for a spec no kind claims (it fails where it is loaded)."""
    try:
        kind = head_kind(spec)
    except ValueError:
        return 0
    return kind.spec_bytes(spec, device_type)
