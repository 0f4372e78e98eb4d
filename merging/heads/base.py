"""The RewardHead contract and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from merging.data import Prompt
from pareto.registry import Registry

HEAD_KINDS: Registry[RewardHead] = Registry("reward head", attribute="kind")
register = HEAD_KINDS.register


class RewardHead(ABC):
    """Maps (prompt, response) pairs to one score each; higher means more of the quality.

    Whether more is better is the objective's sense, not the head's business.
    """

    kind: ClassVar[str]

    @abstractmethod
    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        """``(n,)`` float scores."""

    @abstractmethod
    def identity(self) -> dict:
        """What determines the scores (kind, parameters, file fingerprints): hashed into
        every evaluation so that a changed head never reuses a cached result."""

    def bind_policy(self, tokenizer) -> None:  # noqa: B027 - optional hook
        """Called with the evaluated policy's tokenizer before scoring (length heads use it)."""

    def _check(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> None:
        if len(prompts) != len(responses):
            raise ValueError(f"Got {len(responses)} responses for {len(prompts)} prompts")
