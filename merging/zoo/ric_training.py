"""The rewards-in-context (RiC) model: a LoRA adapter trained on
:class:`~merging.zoo.ric_data.RiCExample`\\ s in a loop of our own.

The loss is RiC's supervised loss (each response, and its end of turn when it ended, given its
prompt with its own scores) plus ``contrast`` times a contrastive term: the first
``contrast_tokens`` tokens of each response should be likelier under its own scores than under
its counterfactual's (one marker set to another answer's score for the same prompt),
``softplus(-beta * (log p(own) - log p(counterfactual)))``. Supervised fine-tuning alone teaches
a small model the answers' style but, within a CPU budget, not to read each marker (see
docs/ric-investigation.md); TRL's SFT trainer has no such term, hence this loop.

Where the attention takes a mask per position, an answer is scored under its own and its
counterfactual's scores in one sequence that computes their prompts' shared start once
(:func:`~merging.zoo.log_probs.paired_log_probs`); elsewhere in two passes, with the same
result. bfloat16 autocast where the zoo builds in it (:func:`~merging.device.build_in_bfloat16`);
the adapter's weights stay float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from merging.device import build_in_bfloat16
from merging.ric import LevelWords
from merging.zoo.finetune import (
    LORA_TARGETS,
    chunks,
    final_mean,
    final_row_mean,
    length_buckets,
    load_base,
    lora_config,
)
from merging.zoo.log_probs import paired_log_probs, response_log_probs
from merging.zoo.shared_prefix import masks_per_position

Row = tuple[list[int], list[int], list[int]]
"""A training row's token ids: its own prompt, its counterfactual prompt and its response."""


def train_ric_lora(
    base: Path,
    examples: Sequence,
    rewards: Sequence[str],
    out: Path,
    *,
    steps: int,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    contrast: float = 2.0,
    contrast_beta: float = 0.5,
    contrast_tokens: int | Sequence[int] = 8,
    max_response_tokens: int = 64,
    length_batches: bool = True,
    lora_rank: int = 16,
    words: Sequence[LevelWords] | None = None,
    seed: int = 0,
    device: str = "cpu",
    report: Callable[[int, float], None] | None = None,
) -> dict:
    """The RiC model trained on ``examples`` (the module's docstring) and saved in ``out``;
    returns the training metrics.

    ``contrast_tokens`` is one count for every marker or one per reward (in ``rewards`` order:
    the tokens a row compares are those of the marker its counterfactual changed). ``words``,
    one set per reward, are the level words written after the scores (:mod:`merging.ric`).
    ``length_batches``: each batch holds answers of similar length (less padding, which costs as
    much as real tokens on a CPU) rather than a random draw. The metrics include the final
    contrastive margin per reward (of the rows whose counterfactual changed that reward's
    marker) and its mean by tenth of training.
    """
    from peft import get_peft_model

    varied = [_varied_reward(e.scores, e.counterfactual) for e in examples]
    heads = _contrast_heads(contrast_tokens, varied, len(rewards))
    torch.manual_seed(seed)
    model, tok = load_base(base, device)
    model = get_peft_model(model, lora_config(lora_rank, LORA_TARGETS))
    loss = _RiCLoss(
        model,
        _ric_rows(tok, examples, rewards, words, max_response_tokens),
        heads,
        varied,
        rewards,
        contrast,
        contrast_beta,
        pad=tok.pad_token_id if tok.pad_token_id is not None else 0,
        device=device,
        autocast=_autocast(device),
        paired=masks_per_position(model),
    )
    seconds, logs = _train_loop(
        loss, steps, batch_size, learning_rate, length_batches, seed, report
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    metrics = {"steps": steps, "examples": len(examples), "seconds": round(seconds, 1)}
    metrics |= {"final_loss": final_mean(logs, "supervised"), "length_batches": length_batches}
    return metrics | (_margin_metrics(logs, rewards) if contrast else {})


def response_token_ids(tokenizer, response: str, finished: bool, limit: int, end: int) -> list[int]:
    """What a model trains to write for ``response``: its tokens, at most ``limit``, then the
    end of turn if the response ended there (one cut short, or that ran out of tokens when
    it was generated, is not taught to end)."""
    ids = tokenizer(response, add_special_tokens=False)["input_ids"][:limit]
    return [*ids, end] if finished and len(ids) < limit else ids


def _ric_rows(
    tok, examples: Sequence, rewards: Sequence[str], words, max_response_tokens: int
) -> list[Row]:
    """Each example's :data:`Row`: its prompt conditioned on its own scores and on its
    counterfactual's, and the response it trains to write."""
    from merging.generation import end_of_turn_id, render
    from merging.ric import condition

    end = end_of_turn_id(tok)

    def prompt_ids(example, scores) -> list[int]:
        text = render(tok, condition(example.prompt, rewards, scores, words))
        return tok(text, add_special_tokens=False)["input_ids"]

    return [
        (
            prompt_ids(e, e.scores),
            prompt_ids(e, e.counterfactual),
            response_token_ids(tok, e.response, e.finished, max_response_tokens, end),
        )
        for e in examples
    ]


@dataclass(frozen=True)
class _RiCLoss:
    """The loss of a batch of rows: the supervised loss plus ``contrast`` times the
    contrastive term (none when ``contrast`` is 0), and the step's log record."""

    model: torch.nn.Module
    rows: list[Row]
    heads: list[int]
    """Per row, the first response tokens its contrastive term compares."""
    varied: list[int | None]
    """Per row, the reward whose marker its counterfactual changed (``None``: none)."""
    rewards: Sequence[str]
    contrast: float
    beta: float
    pad: int
    device: str
    autocast: dict
    """``torch.autocast``'s arguments: bfloat16 where the zoo builds in it."""
    paired: bool
    """Whether own and counterfactual prompts run as one packed sequence."""

    def __call__(self, indices: list[int], step: int) -> tuple[torch.Tensor, dict]:
        own_lp, own_valid, cf_lp, cf_valid = self.log_probs(indices)
        loss = -own_lp.sum() / own_valid.sum()
        record = {"step": step, "supervised": loss.item()}
        if self.contrast:
            head = cf_valid.sum(-1)  # per row: the response tokens the counterfactual covers
            own = (own_lp * (own_valid.cumsum(-1) <= head[:, None])).sum(-1)  # its first ones
            margin = self.beta * (own - cf_lp.sum(-1))
            term = torch.nn.functional.softplus(-margin).mean()
            loss = loss + self.contrast * term
            record["margin"] = margin.mean().item() / self.beta
            for i, m in zip(indices, margin.tolist(), strict=True):
                if self.varied[i] is not None:
                    key = f"margin:{self.rewards[self.varied[i]]}"
                    record.setdefault(key, []).append(m / self.beta)
        return loss, record

    def log_probs(self, indices: list[int]) -> tuple:
        """``(own_lp, own_valid, cf_lp, cf_valid)`` of the rows ``indices`` (the last two
        ``None`` without a contrastive term)."""
        if self.contrast and self.paired:  # one pass: a counterfactual shares its prompt's start
            rows = [(*self.rows[i], self.heads[i]) for i in indices]
            return paired_log_probs(self.model, rows, self.pad, self.device, self.autocast)
        own_rows = [(self.rows[i][0], self.rows[i][2]) for i in indices]
        own = response_log_probs(self.model, own_rows, self.pad, self.autocast)
        if not self.contrast:
            return (*own, None, None)
        # a pass of its own: its rows are shorter, so padded less
        cf_rows = [(self.rows[i][1], self.rows[i][2][: self.heads[i]]) for i in indices]
        return (*own, *response_log_probs(self.model, cf_rows, self.pad, self.autocast))


def _train_loop(
    loss: _RiCLoss,
    steps: int,
    batch_size: int,
    learning_rate: float,
    length_batches: bool,
    seed: int,
    report: Callable[[int, float], None] | None,
) -> tuple[float, list[dict]]:
    """``(seconds, logs)`` of ``steps`` optimiser steps on ``loss``'s model: AdamW, warmed up
    over the first tenth, held, then decayed over the last 30%."""
    trainable = [p for p in loss.model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    warmup, decay = max(1, steps // 10), max(1, (3 * steps) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, 1.0, (steps - s) / decay)
    )
    batches: list[list[int]] = []
    rng = np.random.default_rng(seed)
    logs = []
    loss.model.train()
    start = time.perf_counter()
    for step in range(steps):
        if not batches:
            batches = _epoch(loss.rows, batch_size, length_batches, rng)
        value, record = loss(batches.pop(), step + 1)
        value.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        logs.append(record)
        if report is not None:
            report(step + 1, time.perf_counter() - start)
    return time.perf_counter() - start, logs


def _epoch(rows: Sequence[Row], batch_size: int, length_batches: bool, rng) -> list[list[int]]:
    """One epoch of batches, taken from the end: of answers of similar length, or each a random
    draw (dearer in padding, less biased per step)."""
    if length_batches:
        lengths = [len(o) + len(r) for o, _, r in rows]
        return length_buckets(lengths, batch_size, rng)
    return chunks(rng.permutation(len(rows)).tolist(), batch_size)


def _autocast(device: str) -> dict:
    """``torch.autocast``'s arguments for ``device``: bfloat16 where the zoo builds in it."""
    return {
        "device_type": torch.device(device).type,
        "dtype": torch.bfloat16,
        "enabled": build_in_bfloat16(device),
    }


def _margin_metrics(logs: Sequence[dict], rewards: Sequence[str]) -> dict:
    """The final contrastive margin, overall and per reward, and its mean by tenth of training."""
    return {
        "final_margin_nats": final_mean(logs, "margin"),
        "final_margin_nats_by_reward": {
            name: final_row_mean(logs, f"margin:{name}") for name in rewards
        },
        "margin_nats_by_tenth": [
            round(float(np.mean([h["margin"] for h in part])), 3)
            for part in np.array_split(np.array(logs, dtype=object), max(1, min(10, len(logs))))
            if len(part)
        ],
    }


def _contrast_heads(
    contrast_tokens: int | Sequence[int], varied: Sequence[int | None], n_rewards: int
) -> list[int]:
    """Per row, the first response tokens its contrastive term compares: ``contrast_tokens``,
    or its entry for the reward the row's counterfactual changed (the shortest where it changed
    none: then the term is constant)."""
    if isinstance(contrast_tokens, int):
        return [contrast_tokens] * len(varied)
    counts = [int(c) for c in contrast_tokens]
    if len(counts) != n_rewards or min(counts) < 1:
        raise ValueError(
            f"contrast_tokens needs one positive count per reward ({n_rewards}), not {counts}"
        )
    return [min(counts) if v is None else counts[v] for v in varied]


def _varied_reward(scores: Sequence[float], counterfactual: Sequence[float]) -> int | None:
    """The index of the one marker a counterfactual changes, or ``None`` if it changes none."""
    changed = [i for i, (a, b) in enumerate(zip(scores, counterfactual, strict=True)) if a != b]
    return changed[0] if changed else None
