"""Verbosity heads: response length in tokens, and distance to a target length."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from merging.data import Prompt
from merging.heads.base import RewardHead, register


def count_tokens(tokenizer, responses: Sequence[str]) -> np.ndarray:
    """Tokens per response with ``tokenizer`` (whitespace-separated words when None)."""
    if tokenizer is None:
        return np.array([len(r.split()) for r in responses], dtype=float)
    ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"] if responses else []
    return np.array([len(i) for i in ids], dtype=float)


@register("length_tokens")
class LengthTokens(RewardHead):
    """Length of the response in the policy's tokens (words until a policy is bound)."""

    spec_help = "length_tokens"

    @classmethod
    def names(cls, spec: str) -> bool:
        return spec == "length_tokens"

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False) -> LengthTokens:
        return cls()

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer

    def bind_policy(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        self._check(prompts, responses)
        return count_tokens(self.tokenizer, responses)

    def identity(self) -> dict:
        name = getattr(self.tokenizer, "name_or_path", None) if self.tokenizer else "words"
        return {"kind": self.kind, "tokenizer": str(name)}


@register("target_length")
class TargetLength(LengthTokens):
    """``|tokens - target|``: how far a response is from a wanted length (minimise it)."""

    spec_help = "target_length, target_length:N"

    @classmethod
    def names(cls, spec: str) -> bool:
        return super(LengthTokens, cls).names(spec)  # target_length[:N]: the default rule

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False) -> TargetLength:
        """``target_length`` (100 tokens) or ``target_length:N``."""
        arg = spec.partition(":")[2]
        try:
            return cls(float(arg)) if arg else cls()
        except ValueError:
            raise ValueError(
                f"head {spec!r}: write target_length:N with N a number of tokens"
            ) from None

    def __init__(self, target: float = 100, tokenizer=None):
        if not target > 0:
            raise ValueError(f"target_length needs a positive target; got {target}")
        super().__init__(tokenizer)
        self.target = float(target)

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        return np.abs(super().score(prompts, responses) - self.target)

    def identity(self) -> dict:
        return {**super().identity(), "target": self.target}
