"""The RewardHead contract and its registry.

Each kind says which specifications name it (:meth:`RewardHead.names`), how it is built from
one (:meth:`RewardHead.from_spec`) and what it takes in memory (:meth:`RewardHead.spec_bytes`);
:func:`merging.heads.load_head` asks every registered kind in turn.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from merging.data import Prompt
from pareto.registry import Registry

HEAD_KINDS: Registry[RewardHead] = Registry("reward head", attribute="kind")
register = HEAD_KINDS.register


@dataclass(frozen=True)
class PolicyView:
    """What a head that scores the policy itself sees of one evaluation: the policy, the
    prompts ``span[0]..span[1]`` of the evaluation (as the heads see them), the responses, and
    how the policy was shown each prompt (``prompt_transform``, the system prompt)."""

    model: Any
    tokenizer: Any
    prompts: Sequence[Prompt]
    responses: Sequence[str]
    span: tuple[int, int]
    prompt_transform: Callable[[Prompt], Prompt] | None = None
    system_prompt: str | None = None

    def shown(self, prompt: Prompt) -> Prompt:
        """``prompt`` as the policy is shown it (RiC writes its desired scores into it)."""
        return self.prompt_transform(prompt) if self.prompt_transform else prompt


class RewardHead(ABC):
    """Maps (prompt, response) pairs to one score each; higher means more of the quality.

    Whether more is better is the objective's sense, not the head's business.
    """

    kind: ClassVar[str]
    spec_help: ClassVar[str]
    """How a specification names this kind, for errors: ``length_tokens``, ``a bt_head folder
    (head.json)``."""

    @classmethod
    def names(cls, spec: str) -> bool:
        """Whether ``spec`` names a head of this kind (no two kinds claim one spec): by default
        ``KIND`` or ``KIND:ARGUMENT``."""
        return spec.partition(":")[0] == cls.kind

    @classmethod
    @abstractmethod
    def from_spec(
        cls, spec: str, *, device: str | None = "auto", trust_remote_code: bool = False
    ) -> RewardHead:
        """The head ``spec`` names (``ValueError`` in one line when it is malformed)."""

    @classmethod
    def complete_spec(cls, spec: str, *, data: str | None = None, base: str | None = None) -> str:
        """``spec`` with what a study supplies filled in: ``data``, the HH-RLHF folder it was
        given, and ``base``, its base model (``reference_nll`` becomes
        ``reference_nll:DATA``); most kinds need neither and return ``spec``."""
        return spec

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


class PolicyHead(RewardHead):
    """A head that scores the policy itself (its likelihood of reference text, its distance
    from the base) rather than its responses alone: the evaluator hands it a
    :class:`PolicyView` of the evaluation and calls :meth:`score_policy`, never :meth:`score`."""

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        raise ValueError(
            f"{self.kind} scores a policy, not responses: use it as an objective of "
            "'paretomerge evaluate' or of a study"
        )

    @abstractmethod
    def score_policy(self, policy: PolicyView) -> np.ndarray:
        """``(n,)`` float scores of the policy for the ``n`` prompts of ``policy.span``."""
