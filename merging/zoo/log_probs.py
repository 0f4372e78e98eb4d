"""The log-probability of each response token, for the rewards-in-context loss.

A batch of ``(prompt, response)`` rows runs left-padded, so that the responses end together,
and only the positions that predict response tokens go through the vocabulary projection (on a
CPU it costs as much as a tenth of the model's layers per position). Where the attention takes
a mask per position, an answer under its own prompt and under its counterfactual's runs as one
packed sequence (:mod:`merging.zoo.shared_prefix`) that computes the prompts' shared start once;
:func:`paired_log_probs` gives what two calls of :func:`response_log_probs` would.
"""

from __future__ import annotations

import torch

from merging.heads.answer_log_probs import answer_hidden, causal_of
from merging.zoo.compact_head import scored_log_probs
from merging.zoo.shared_prefix import packed_hidden_states


def response_log_probs(model, sequences, pad: int, autocast: dict):
    """``(token_lp, valid)``, each ``(rows, longest response)``: the log-probability of each
    response token of ``(prompt_ids, response_ids)`` rows, and where a response token is.

    Rows are left-padded, so that the responses end together; the vocabulary projection and its
    log-softmax are computed for the response tokens only (on a CPU they cost as much as a
    tenth of the model's layers per position, and a batch's shorter responses leave prompt and
    padding positions among its last ones)."""
    causal = causal_of(model)
    with torch.autocast(**autocast):
        hidden, target = answer_hidden(causal, sequences, pad)
        token_lp, valid, _, _ = scored_log_probs(causal.get_output_embeddings(), hidden, target)
    return token_lp, valid


def paired_log_probs(model, rows, pad: int, device: str, autocast: dict):
    """``(own_lp, own_valid, cf_lp, cf_valid)`` for ``(own_prompt, cf_prompt, response, head)``
    rows: what :func:`response_log_probs` gives for ``(own_prompt, response)`` and for
    ``(cf_prompt, response[:head])``, in one pass rather than two. A counterfactual prompt
    differs from its row's own only from one marker on, so the two run as one packed sequence
    (:func:`~merging.zoo.shared_prefix.pack_pairs`) and their shared start, about two thirds of
    a prompt, is computed once."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    pairs = [(own + response, cf + response[:head]) for own, cf, response, head in rows]
    keep = max(len(r) for _, _, r, _ in rows)
    keep_cf = max(len(r[:h]) for _, _, r, h in rows)
    where = torch.zeros((len(rows), keep + keep_cf), dtype=torch.long)  # the predicting column
    target = torch.full((len(rows), keep + keep_cf), -100)
    with torch.autocast(**autocast):
        hidden, columns = packed_hidden_states(causal, pairs, pad)
    for row, ((own, cf, response, head), (first, second)) in enumerate(
        zip(rows, columns, strict=True)
    ):
        parts = ((own, response, first, keep), (cf, response[:head], second, keep + keep_cf))
        for prompt, answer, cells, last in parts:
            if answer:  # right-aligned in its part of the columns, as the responses end together
                span = cells[len(prompt) - 1 : len(prompt) + len(answer) - 1]
                where[row, last - len(answer) : last] = torch.tensor(span)
                target[row, last - len(answer) : last] = torch.tensor(answer)
    with torch.autocast(**autocast):
        picked = hidden.gather(1, where.to(device)[..., None].expand(-1, -1, hidden.shape[-1]))
        token_lp, valid, _, _ = scored_log_probs(causal.get_output_embeddings(), picked, target)
    return token_lp[:, :keep], valid[:, :keep], token_lp[:, keep:], valid[:, keep:]
