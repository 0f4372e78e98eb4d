"""Reward heads: registered scorers of (prompt, response) pairs.

``length_tokens`` and ``target_length`` (verbosity), ``bt_head`` (a Bradley-Terry head on a
frozen encoder, trained by ``paretomerge heads train``), ``hf_reward_model`` (any Hugging
Face sequence-classification reward model) and ``reference_nll`` (the policy's likelihood of
held-out reference answers: the alignment tax). :func:`load_head` asks every registered kind
whether a user's head spec names it, and builds the head with that kind.
"""

from __future__ import annotations

from merging.heads.base import HEAD_KINDS, RewardHead, register
from merging.heads.bt_head import BTHead
from merging.heads.hf_reward import HFRewardModel
from merging.heads.length import LengthTokens, TargetLength
from merging.heads.reference_nll import ReferenceNLL

__all__ = [
    "HEAD_KINDS",
    "BTHead",
    "HFRewardModel",
    "LengthTokens",
    "ReferenceNLL",
    "RewardHead",
    "TargetLength",
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
    spec: str,
    *,
    device: str | None = "auto",
    trust_remote_code: bool = False,
    data: str | None = None,
) -> RewardHead:
    """The head ``spec`` names, built by its kind (:meth:`RewardHead.from_spec`); ``data``: the
    HH-RLHF folder, for kinds that read it."""
    kind = head_kind(spec)
    return kind.from_spec(spec, device=device, trust_remote_code=trust_remote_code, data=data)


def head_bytes(spec: str, device_type: str = "cpu") -> int:
    """Memory the head ``spec`` takes on a ``device_type`` evaluation device, from its files'
    headers (nothing loaded); 0 for a spec no kind claims (it fails where it is loaded)."""
    try:
        kind = head_kind(spec)
    except ValueError:
        return 0
    return kind.spec_bytes(spec, device_type)
