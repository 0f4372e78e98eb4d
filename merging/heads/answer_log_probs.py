"""Log-probabilities of an answer's tokens under a causal language model, batched: what the
heads that score a policy itself (``reference_nll``, ``kl_to_base``) compute.

Rows are ``(prompt ids, answer ids)``, run left-padded so that the answers end together; only
the positions that predict an answer token meet the vocabulary, and rows of like length run
together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from merging.data import Prompt
from merging.generation import render

MAX_PROMPT_TOKENS = 256
MAX_ANSWER_TOKENS = 128
BATCH_SIZE = 8

Row = tuple[list[int], list[int]]


def encode(tokenizer, prompt: Prompt, answer: str, system_prompt: str | None = None) -> Row:
    """``(prompt ids, answer ids)``: the prompt as generation writes it (its last
    :data:`MAX_PROMPT_TOKENS` tokens), the answer's first :data:`MAX_ANSWER_TOKENS` tokens."""
    p = tokenizer(render(tokenizer, prompt, system_prompt), add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"][:MAX_ANSWER_TOKENS]
    return p[-MAX_PROMPT_TOKENS:], a


def causal_of(model):
    """The causal language model inside ``model`` (a PEFT model's, with its adapter active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def padded_answers(rows: Sequence[Row], pad: int):
    """``(ids, mask, positions, targets)`` of ``rows`` left-padded so that the answers end
    together: ``targets`` holds the answer tokens right-aligned, ``(rows, longest answer)``,
    ``-100`` where a shorter answer has none. All on the CPU."""
    width = max(len(p) + len(a) for p, a in rows)
    keep = max(len(a) for _, a in rows)
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.full((len(rows), keep), -100)
    for row, (p, a) in enumerate(rows):
        ids[row, width - len(p) - len(a) :] = torch.tensor(p + a)
        mask[row, width - len(p) - len(a) :] = 1
        if a:
            target[row, keep - len(a) :] = torch.tensor(a)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions, target


def answer_logits(
    model, params, rows: Sequence[Row], pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, targets)``: ``model`` run with the weights ``params`` swapped in
    (``torch.func.functional_call``; views of a merger's stack, or merged weights that carry
    gradients), its logits at the positions that predict each answer token, ``(rows, longest
    answer, vocabulary)``, and the answer tokens there (``-100`` where a shorter answer has
    none), both on the model's device. Only those positions meet the vocabulary where the
    forward takes ``logits_to_keep``."""
    from torch.func import functional_call

    from merging.generation import forward_keywords

    device = next(model.parameters()).device
    ids, mask, positions, target = padded_answers(rows, pad)
    keep = target.shape[1]
    kwargs = {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
        "use_cache": False,
    }
    if "logits_to_keep" in forward_keywords(model):
        kwargs["logits_to_keep"] = keep + 1
    logits = functional_call(model, params, args=(), kwargs=kwargs).logits
    return logits[:, -keep - 1 : -1], target.to(device)


def answer_hidden(causal, rows: Sequence[Row], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hidden, targets)``: the last hidden states of ``causal`` at the positions that predict
    each answer token, ``(rows, longest answer, width)``, right-aligned, and the answer tokens
    there (``-100`` where a shorter answer has none), on the CPU."""
    device = next(causal.parameters()).device
    ids, mask, positions, target = padded_answers(rows, pad)
    keep = target.shape[1]
    hidden = causal.base_model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=False,
    ).last_hidden_state[:, -keep - 1 : -1]
    return hidden, target


def answer_log_probs(model, rows: Sequence[Row], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_probs, targets)``: the float32 log-softmax over the vocabulary at the positions
    that predict each answer token, ``(rows, longest answer, vocabulary)``, and the answer
    tokens there (``-100`` where a shorter answer has none), on the model's device. A policy
    that is no single network (a decoding-time mixture) gives its own, by the same name."""
    if hasattr(model, "answer_log_probs"):
        return model.answer_log_probs(rows, pad)
    causal = causal_of(model)
    hidden, target = answer_hidden(causal, rows, pad)
    logits = causal.get_output_embeddings()(hidden).float()
    return torch.log_softmax(logits, -1), target.to(logits.device)


def by_length(n: int, lengths: Sequence[int], score: Callable[[list[int]], np.ndarray]):
    """``score`` of every index, asked for in batches of :data:`BATCH_SIZE` indices of like
    ``lengths`` (less padding), put back in index order."""
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    out = np.empty(n)
    for start in range(0, n, BATCH_SIZE):
        chunk = order[start : start + BATCH_SIZE]
        out[chunk] = score(chunk)
    return out


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
