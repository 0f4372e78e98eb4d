"""``kl_to_base``: how far the policy has moved from its base, on its own generations (the
alignment tax seen from the policy's side; minimise it).

For each prompt, the mean over the response's tokens of ``KL(policy || base)`` between the two
next-token distributions: the policy's given the prompt as it was shown it (RiC's markers
included), the base's given the plain prompt. The response is re-tokenised from its text (its
first 128 tokens); an empty response scores 0. The base is loaded once, beside the policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from merging.device import resolve_device
from merging.heads.answer_log_probs import (
    MAX_ANSWER_TOKENS,
    MAX_PROMPT_TOKENS,
    answer_log_probs,
    by_length,
    encode,
    pad_id,
)
from merging.heads.base import PolicyHead, PolicyView, register
from merging.paths import fingerprint


@torch.inference_mode()
def kl_per_token(policy: PolicyView, base) -> np.ndarray:
    """Mean ``KL(policy || base)`` over each response's tokens (0 for an empty response)."""
    tok = policy.tokenizer
    pairs = list(zip(policy.prompts, policy.responses, strict=True))
    mine = [encode(tok, policy.shown(p), r, policy.system_prompt) for p, r in pairs]
    plain = (  # the base reads the plain prompt: the same rows unless the policy saw others
        [encode(tok, p, r, policy.system_prompt) for p, r in pairs]
        if policy.prompt_transform
        else mine
    )

    def score(chunk: list[int]) -> np.ndarray:
        logp, target = answer_log_probs(policy.model, [mine[i] for i in chunk], pad_id(tok))
        logq, _ = answer_log_probs(base, [plain[i] for i in chunk], pad_id(tok))
        logq = logq.to(logp.device)
        kl = (logp.exp() * (logp - logq)).sum(-1)  # (rows, answer positions)
        valid = target != -100
        n = valid.sum(-1)
        return ((kl * valid).sum(-1) / n.clamp(min=1)).cpu().numpy()

    return by_length(len(mine), [len(p) + len(a) for p, a in mine], score)


@register("kl_to_base")
class KLToBase(PolicyHead):
    """Mean per-token KL divergence of the policy from the base on the policy's responses;
    it scores a policy, not a response (lower is closer to the base)."""

    spec_help = "kl_to_base, kl_to_base:BASE (a causal language model folder)"

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False) -> KLToBase:
        """``kl_to_base:BASE``; bare ``kl_to_base`` only in a study, which names its base."""
        path = spec.partition(":")[2]
        if not path:
            raise ValueError(
                f"head {spec!r}: write kl_to_base:BASE with BASE the base model's folder (a "
                "study fills in its own base)"
            )
        return cls(path, device=device, trust_remote_code=trust_remote_code)

    @classmethod
    def complete_spec(cls, spec: str, *, data: str | None = None, base: str | None = None) -> str:
        """Bare ``kl_to_base`` compares with the study's base."""
        return f"kl_to_base:{base}" if spec == "kl_to_base" and base else spec

    @classmethod
    def spec_bytes(cls, spec: str, device_type: str = "cpu") -> int:
        from merging.tensor_files import float32_bytes

        path = spec.partition(":")[2]
        return float32_bytes(Path(path).expanduser()) if path else 0

    def __init__(self, base: str | Path, *, device="auto", trust_remote_code: bool = False):
        from transformers import AutoModelForCausalLM

        from merging.checkpoints import load_pretrained

        self.path = Path(base).expanduser()
        self.model = (
            load_pretrained(
                AutoModelForCausalLM,
                self.path,
                who="kl_to_base",
                dtype=torch.float32,
                trust_remote_code=trust_remote_code,
            )
            .to(resolve_device(device))
            .eval()
        )

    def score_policy(self, policy: PolicyView) -> np.ndarray:
        return kl_per_token(policy, self.model)

    def identity(self) -> dict:
        return {
            "kind": self.kind,
            "base": fingerprint(self.path),
            "max_prompt_tokens": MAX_PROMPT_TOKENS,
            "max_answer_tokens": MAX_ANSWER_TOKENS,
        }
