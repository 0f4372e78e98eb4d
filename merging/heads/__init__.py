"""Reward heads: registered scorers of (prompt, response) pairs.

``length_tokens`` and ``target_length`` (verbosity), ``bt_head`` (a Bradley-Terry head on a
frozen encoder, trained by ``paretomerge heads train``) and ``hf_reward_model`` (any Hugging
Face sequence-classification reward model). :func:`load_head` resolves a user's head spec.
"""

from __future__ import annotations

import json
from pathlib import Path

from merging.heads.base import HEAD_KINDS, RewardHead, register
from merging.heads.bt_head import BTHead
from merging.heads.hf_reward import HFRewardModel
from merging.heads.length import LengthTokens, TargetLength

__all__ = [
    "HEAD_KINDS",
    "BTHead",
    "HFRewardModel",
    "LengthTokens",
    "RewardHead",
    "TargetLength",
    "load_head",
    "register",
]


def load_head(
    spec: str, *, device: str | None = "auto", trust_remote_code: bool = False
) -> RewardHead:
    """A head from ``length_tokens``, ``target_length`` or ``target_length:N``, a ``bt_head``
    folder (``head.json``) or a sequence-classification model folder (``config.json``)."""
    name, _, arg = spec.partition(":")
    if name == "length_tokens" and not arg:
        return LengthTokens()
    if name == "target_length":
        try:
            return TargetLength(float(arg)) if arg else TargetLength()
        except ValueError:
            raise ValueError(
                f"head {spec!r}: write target_length:N with N a number of tokens"
            ) from None
    path = Path(spec).expanduser()
    if (path / "head.json").is_file():
        return BTHead.load(path, device=device)
    if (path / "config.json").is_file():
        archs = json.loads((path / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ValueError(f"head {spec!r}: {path} is a {archs} model, not a sequence classifier")
        return HFRewardModel(path, device=device, trust_remote_code=trust_remote_code)
    known = ", ".join(sorted(k for k in HEAD_KINDS if k not in {"bt_head", "hf_reward_model"}))
    raise ValueError(
        f"head {spec!r} is not one of {known}, target_length:N, a bt_head folder (head.json) "
        "or a reward model folder (config.json)"
    )
