"""``reference_nll``: how much of held-out reference text the policy still predicts, the
alignment tax as an objective (minimise it).

Reference items are answers people preferred (the ``chosen`` side of preference pairs, under
their own prompts). Item ``i`` is scored for the evaluation's prompt ``i``, the same item for
every policy, so that the per-prompt scores stay paired across trials. Its score is the mean
negative log-likelihood (nats per token) of the answer's tokens given the prompt, the prompt
written in the policy's chat template after the policy's own prompt transform (RiC's markers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from merging.data import PreferencePair, Prompt, read_pairs, select_split
from merging.generation import render
from merging.heads.base import RewardHead, register
from merging.hh_rlhf import DATA_ENV, locate_hh_rlhf, subset_file
from merging.paths import fingerprint

DEFAULT_SUBSET = "helpful-base"
MAX_PROMPT_TOKENS = 256
MAX_ANSWER_TOKENS = 128
BATCH_SIZE = 8


def reference_items(source: str | Path | None) -> tuple[Path, list[PreferencePair]]:
    """The reference file and its items: a pairs file as it is (HH-RLHF or TRL format), or an
    HH-RLHF folder's (``None``: ``$PARETOMERGE_DATA``'s, else the hub's) helpful-base test pairs
    in the evaluation split, the part of HH-RLHF that no expert of the zoo trained on."""
    import os

    if source is not None and not Path(source).expanduser().is_dir():
        path = Path(source).expanduser()
        return path, read_pairs(path)
    folder = locate_hh_rlhf(source or os.environ.get(DATA_ENV), (DEFAULT_SUBSET,))
    path = folder / subset_file(DEFAULT_SUBSET)
    return path, select_split(read_pairs(path), "evaluation")


def encode_rows(
    tokenizer, rows: Sequence[tuple[Prompt, str]], system_prompt: str | None = None
) -> list[tuple[list[int], list[int]]]:
    """``(prompt ids, answer ids)`` of each row: the prompt as generation writes it (its end
    kept), the answer's first :data:`MAX_ANSWER_TOKENS` tokens."""
    out = []
    for prompt, answer in rows:
        text = render(tokenizer, prompt, system_prompt)
        p = tokenizer(text, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"][:MAX_ANSWER_TOKENS]
        if not a:
            raise ValueError(f"reference_nll: an answer has no tokens ({answer!r:.60})")
        out.append((p[-MAX_PROMPT_TOKENS:], a))
    return out


def _batch_nll(causal, batch: list[tuple[list[int], list[int]]], pad: int) -> np.ndarray:
    """Mean answer-token NLL of each row of ``batch``, left-padded so that the answers end
    together; only the positions that predict an answer token meet the vocabulary."""
    device = next(causal.parameters()).device
    width = max(len(p) + len(a) for p, a in batch)
    keep = max(len(a) for _, a in batch)
    ids = torch.full((len(batch), width), pad)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    target = torch.full((len(batch), keep), -100)
    for row, (p, a) in enumerate(batch):
        ids[row, width - len(p) - len(a) :] = torch.tensor(p + a)
        mask[row, width - len(p) - len(a) :] = 1
        target[row, keep - len(a) :] = torch.tensor(a)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden = causal.base_model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=False,
    ).last_hidden_state[:, -keep - 1 : -1]  # the positions that predict the answer tokens
    logits = causal.get_output_embeddings()(hidden).float()
    target = target.to(device)
    valid = target != -100
    lp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0)[..., None])[..., 0]
    return (-(lp * valid).sum(-1) / valid.sum(-1)).cpu().numpy()


@torch.inference_mode()
def answer_nll(
    model, tokenizer, rows: Sequence[tuple[Prompt, str]], system_prompt: str | None = None
) -> np.ndarray:
    """Mean negative log-likelihood per answer token (nats) of each ``(prompt, answer)`` row,
    the prompt in ``tokenizer``'s chat template; rows of like length run together."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = encode_rows(tokenizer, rows, system_prompt)
    order = sorted(range(len(encoded)), key=lambda i: (sum(map(len, encoded[i])), i))
    out = np.empty(len(rows))
    for start in range(0, len(order), BATCH_SIZE):
        chunk = order[start : start + BATCH_SIZE]
        out[chunk] = _batch_nll(causal, [encoded[i] for i in chunk], pad)
    return out


@register("reference_nll")
class ReferenceNLL(RewardHead):
    """The policy's mean negative log-likelihood per token of preferred answers it did not
    train on; it scores a policy, not a response (lower is closer to the reference text)."""

    spec_help = "reference_nll, reference_nll:PATH (a pairs file, or an HH-RLHF folder)"
    scores_policy = True

    @classmethod
    def names(cls, spec: str) -> bool:
        return spec.partition(":")[0] == "reference_nll"

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False, data=None) -> ReferenceNLL:
        """``reference_nll`` (the HH-RLHF folder ``data``, else $PARETOMERGE_DATA's, else the
        hub's) or ``reference_nll:PATH``."""
        source = spec.partition(":")[2] or data
        try:
            path, items = reference_items(source)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"head {spec!r}: {err}") from None
        if not items:
            raise ValueError(f"head {spec!r}: {path} holds no preference pairs")
        return cls(path, items)

    def __init__(self, path: str | Path, items: Sequence[PreferencePair]):
        self.path = Path(path)
        self.items = list(items)

    def check_prompts(self, n: int) -> None:
        if n > len(self.items):
            raise ValueError(
                f"reference_nll: {self.path} has {len(self.items)} reference items; the "
                f"evaluation has {n} prompts (one item is scored per prompt)"
            )

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        raise ValueError(
            "reference_nll scores a policy, not responses: use it as an objective of "
            "'paretomerge evaluate' or of a study"
        )

    def score_policy(
        self,
        model,
        tokenizer,
        span: tuple[int, int],
        prompt_transform: Callable[[Prompt], Prompt] | None = None,
        system_prompt: str | None = None,
    ) -> np.ndarray:
        """Scores of reference items ``span[0]..span[1]`` (those of the evaluation's prompts
        with the same indices) under ``model``, each prompt rewritten by ``prompt_transform``
        and written as generation writes it (``system_prompt`` included)."""
        lo, hi = span
        self.check_prompts(hi)
        items = self.items[lo:hi]
        shown = [prompt_transform(i.prompt) if prompt_transform else i.prompt for i in items]
        rows = list(zip(shown, [i.chosen for i in items], strict=True))
        return answer_nll(model, tokenizer, rows, system_prompt)

    def identity(self) -> dict:
        return {
            "kind": self.kind,
            "reference": fingerprint(self.path),
            "items": len(self.items),
            "max_prompt_tokens": MAX_PROMPT_TOKENS,
            "max_answer_tokens": MAX_ANSWER_TOKENS,
        }
