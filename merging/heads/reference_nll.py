"""``reference_nll``: how much of held-out reference text the policy still predicts, the
alignment tax as an objective (minimise it).

Reference items are answers people preferred (the ``chosen`` side of preference pairs, under
their own prompts). Item ``i`` is scored for the evaluation's prompt ``i``, the same item for
every policy, so that the per-prompt scores stay paired across trials. Its score is the mean
negative log-likelihood (nats per token) of the answer's tokens given the prompt, the prompt
written in the policy's chat template after the policy's own prompt transform (RiC's markers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from merging.data import PreferencePair, Prompt, read_pairs, select_split
from merging.heads.answer_log_probs import (
    MAX_ANSWER_TOKENS,
    MAX_PROMPT_TOKENS,
    answer_log_probs,
    by_length,
    encode,
    pad_id,
)
from merging.heads.base import PolicyHead, PolicyView, register
from merging.hh_rlhf import DATA_ENV, locate_hh_rlhf, subset_file
from merging.paths import fingerprint

DEFAULT_SUBSET = "helpful-base"


def reference_items(source: str | Path | None) -> tuple[Path, list[PreferencePair]]:
    """The reference file and its items: a pairs file as it is (HH-RLHF or TRL format), or an
    HH-RLHF folder's (``None``: ``$PARETOMERGE_DATA``'s, else the hub's) helpful-base test pairs
    in the evaluation split, the part of HH-RLHF that no expert of the zoo trained on."""
    if source is not None and not Path(source).expanduser().is_dir():
        path = Path(source).expanduser()
        return path, read_pairs(path)
    folder = locate_hh_rlhf(source or os.environ.get(DATA_ENV), (DEFAULT_SUBSET,))
    path = folder / subset_file(DEFAULT_SUBSET)
    return path, select_split(read_pairs(path), "evaluation")


@torch.inference_mode()
def answer_nll(
    model, tokenizer, rows: Sequence[tuple[Prompt, str]], system_prompt: str | None = None
) -> np.ndarray:
    """Mean negative log-likelihood per answer token (nats) of each ``(prompt, answer)`` row,
    the prompt in ``tokenizer``'s chat template."""
    encoded = [encode(tokenizer, p, a, system_prompt) for p, a in rows]
    for (_, answer), (_, ids) in zip(rows, encoded, strict=True):
        if not ids:
            raise ValueError(f"reference_nll: an answer has no tokens ({answer!r:.60})")

    def score(chunk: list[int]) -> np.ndarray:
        log_probs, target = answer_log_probs(model, [encoded[i] for i in chunk], pad_id(tokenizer))
        valid = target != -100
        lp = log_probs.gather(-1, target.clamp(min=0)[..., None])[..., 0]
        return (-(lp * valid).sum(-1) / valid.sum(-1)).cpu().numpy()

    return by_length(len(rows), [len(p) + len(a) for p, a in encoded], score)


@register("reference_nll")
class ReferenceNLL(PolicyHead):
    """The policy's mean negative log-likelihood per token of preferred answers it did not
    train on; it scores a policy, not a response (lower is closer to the reference text)."""

    spec_help = "reference_nll, reference_nll:PATH (a pairs file, or an HH-RLHF folder)"

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False) -> ReferenceNLL:
        """``reference_nll`` ($PARETOMERGE_DATA's HH-RLHF, else the hub's) or
        ``reference_nll:PATH``."""
        source = spec.partition(":")[2] or None
        try:
            path, items = reference_items(source)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"head {spec!r}: {err}") from None
        if not items:
            raise ValueError(f"head {spec!r}: {path} holds no preference pairs")
        return cls(path, items)

    @classmethod
    def complete_spec(cls, spec: str, *, data: str | None = None, base: str | None = None) -> str:
        """Bare ``reference_nll`` reads the study's HH-RLHF folder when it has one."""
        return f"reference_nll:{data}" if spec == "reference_nll" and data else spec

    def __init__(self, path: str | Path, items: Sequence[PreferencePair]):
        self.path = Path(path)
        self.items = list(items)

    def check_prompts(self, n: int) -> None:
        if n > len(self.items):
            raise ValueError(
                f"reference_nll: {self.path} has {len(self.items)} reference items; the "
                f"evaluation has {n} prompts (one item is scored per prompt)"
            )

    def score_policy(self, policy: PolicyView) -> np.ndarray:
        """The NLL of reference items ``span[0]..span[1]`` (those of the evaluation's prompts
        with the same indices), each prompt shown as the policy is shown its own."""
        lo, hi = policy.span
        self.check_prompts(hi)
        rows = [(policy.shown(i.prompt), i.chosen) for i in self.items[lo:hi]]
        return answer_nll(policy.model, policy.tokenizer, rows, policy.system_prompt)

    def identity(self) -> dict:
        return {
            "kind": self.kind,
            "reference": fingerprint(self.path),
            "items": len(self.items),
            "max_prompt_tokens": MAX_PROMPT_TOKENS,
            "max_answer_tokens": MAX_ANSWER_TOKENS,
        }
