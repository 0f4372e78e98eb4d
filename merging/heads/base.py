"""The RewardHead contract and its registry.

Each kind says which specifications name it (:meth:`RewardHead.names`), how it is built from
one (:meth:`RewardHead.from_spec`) and what it takes in memory (:meth:`RewardHead.spec_bytes`);
:func:`merging.heads.load_head` asks every registered kind in turn.
"""

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
    scores_policy: ClassVar[bool] = False
    """A head that scores the policy itself (its likelihood of reference text) rather than its
    responses: the evaluator calls its ``score_policy(model, tokenizer, span, prompt_transform,
    system_prompt)`` with the policy, and never :meth:`score`."""
    spec_help: ClassVar[str]
    """How a specification names this kind, for errors: ``length_tokens``, ``a bt_head folder
    (head.json)``."""

    @classmethod
    @abstractmethod
    def names(cls, spec: str) -> bool:
        """Whether ``spec`` names a head of this kind (no two kinds claim one spec)."""

    @classmethod
    @abstractmethod
    def from_spec(
        cls,
        spec: str,
        *,
        device: str | None = "auto",
        trust_remote_code: bool = False,
        data: str | None = None,
    ) -> RewardHead:
        """The head ``spec`` names (``ValueError`` in one line when it is malformed); ``data``
        is the HH-RLHF folder the command was given, for kinds that read HH-RLHF."""

    @classmethod
    def spec_bytes(cls, spec: str, device_type: str = "cpu") -> int:
        """Memory the head takes on a ``device_type`` evaluation device, from its files'
        headers (nothing loaded); 0 for heads without weights."""
        return 0

    @abstractmethod
    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        """``(n,)`` float scores."""

    @abstractmethod
    def identity(self) -> dict:
        """What determines the scores (kind, parameters, file fingerprints): hashed into
        every evaluation so that a changed head never reuses a cached result."""

    def check_prompts(self, n: int) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` in one line when the head cannot score an evaluation of ``n``
        prompts (called when the evaluator is built, before anything is generated)."""

    def bind_policy(self, tokenizer) -> None:  # noqa: B027 - optional hook
        """Called with the evaluated policy's tokenizer before scoring (length heads use it)."""

    def _check(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> None:
        if len(prompts) != len(responses):
            raise ValueError(f"Got {len(responses)} responses for {len(prompts)} prompts")
