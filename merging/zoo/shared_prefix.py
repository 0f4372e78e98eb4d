"""Two token sequences that start alike, run as one: the second's tokens from where it departs
from the first, seeing the shared start and themselves only.

A DPO pair's chosen and rejected answers follow the same prompt, and a rewards-in-context
answer's own and counterfactual prompts differ only from one marker on; run apart, the shared
start is computed twice. Packed, each row holds the first sequence and then the rest of the
second, with a mask per query and key position and the positions the second's tokens would have
alone, so every hidden state equals the one its sequence would get by itself. Training code
gathers the states it scores through the column maps :func:`pack_pairs` returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def masks_per_position(model) -> bool:
    """Whether ``model``'s attention takes a mask of our own for every query and key position,
    as a packed pair needs: SDPA and eager attention do; flash kernels and sliding windows
    (which build their own masks) do not."""
    config = model.config.get_text_config()
    layers = getattr(config, "layer_types", None) or ["full_attention"]
    return config._attn_implementation in ("sdpa", "eager") and set(layers) == {"full_attention"}


def pack_pairs(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad: int):
    """``(ids, positions, allowed, columns)`` for ``(first, second)`` token sequences, one row
    each (content from column 0, ``pad`` after): ``allowed[row, query, key]`` says which
    columns a column attends to, and ``columns[row]`` is ``(first_columns, second_columns)``,
    the column whose hidden state belongs to each token of either sequence (a shared token's is
    the first's)."""
    layouts = []
    for first, second in pairs:
        shared = common_prefix(first, second)
        rest = list(second[shared:])
        layouts.append((list(first), rest, shared))
    width = max(1, *(len(first) + len(rest) for first, rest, _ in layouts))
    ids = torch.full((len(pairs), width), pad)
    positions = torch.zeros((len(pairs), width), dtype=torch.long)
    allowed = torch.eye(width, dtype=torch.bool).repeat(len(pairs), 1, 1)  # padding: itself
    columns = []
    for row, (first, rest, shared) in enumerate(layouts):
        middle, end = len(first), len(first) + len(rest)
        ids[row, :end] = torch.tensor(first + rest, dtype=torch.long)
        positions[row, :middle] = torch.arange(middle)
        positions[row, middle:end] = torch.arange(shared, shared + len(rest))
        allowed[row, :middle, :middle] = _causal(middle)
        allowed[row, middle:end, :shared] = True
        allowed[row, middle:end, middle:end] = _causal(len(rest))
        columns.append((list(range(middle)), [*range(shared), *range(middle, end)]))
    return ids, positions, allowed, columns


def packed_hidden_states(model, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad: int):
    """``(hidden, columns)``: the last hidden states of ``model`` (a causal LM) over the packed
    ``pairs`` (``(rows, columns, width)``) and :func:`pack_pairs`'s column maps, through which
    a caller gathers the states it scores; the inputs go where the model's input embeddings are."""
    ids, positions, allowed, columns = pack_pairs(pairs, pad)
    device = model.get_input_embeddings().weight.device
    hidden = model.base_model(
        input_ids=ids.to(device),
        attention_mask=attention_mask(model, allowed).to(device),
        position_ids=positions.to(device),
        use_cache=False,
    ).last_hidden_state
    return hidden, columns


def attention_mask(model, allowed: torch.Tensor) -> torch.Tensor:
    """``allowed`` (rows, queries, keys) as the 4-D mask ``model``'s attention takes as it is:
    booleans for SDPA, zero or minus infinity added to the scores for eager attention."""
    allowed = allowed[:, None]
    if model.config.get_text_config()._attn_implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape).masked_fill(~allowed, -torch.inf)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens ``a`` and ``b`` share from their start."""
    count = 0
    while count < min(len(a), len(b)) and a[count] == b[count]:
        count += 1
    return count


def _causal(size: int) -> torch.Tensor:
    return torch.ones(size, size, dtype=torch.bool).tril()
