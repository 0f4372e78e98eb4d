"""What the zoo's two LoRA fine-tunings share: the base they start from, the LoRA adapter they
train, batches of rows of similar length, and the final metrics they report.

The DPO experts (:mod:`merging.zoo.dpo_expert`) and the rewards-in-context model
(:mod:`merging.zoo.ric_training`) both start from the zoo's base in float32, train the same
LoRA adapter, batch rows of similar length (padding costs as much as real tokens on a CPU)
and average their final metrics over the last fifth of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]


def lora_config(r: int, targets: Sequence[str]):
    """PEFT's LoRA configuration of rank ``r`` (``alpha = 2r``, no dropout) on ``targets``."""
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=list(targets), task_type="CAUSAL_LM"
    )


def load_base(base: Path, device: str):
    """``(model, tokenizer)`` of the base folder: the model in float32 on ``device``, the
    tokenizer padding with its end of sequence where it has no padding token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.to(device)
    return model, tok


def chunks(order: Sequence[int], size: int) -> list[list[int]]:
    """``order`` cut into consecutive batches of ``size`` (the last may be shorter)."""
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


def length_buckets(lengths: Sequence[int], size: int, rng) -> list[list[int]]:
    """One epoch of batches of ``size`` rows of similar length (sorted by length, with a random
    jitter so that batches differ from epoch to epoch), in random order: padding costs as much
    as real tokens on a CPU."""
    jitter = rng.uniform(0, 0.5 * np.std(lengths) + 1e-9, len(lengths))
    order = np.argsort(np.asarray(lengths) + jitter, kind="stable").tolist()
    batches = chunks(order, size)
    return [batches[i] for i in rng.permutation(len(batches))]


def final_mean(logs: Sequence[dict], key: str) -> float | None:
    """The mean of ``key`` over the last fifth of the training logs (a single step is noisy);
    ``None`` when there are no logs, and a log without ``key`` counts as 0."""
    last = last_fifth(logs)
    return sum(h.get(key, 0) for h in last) / len(last) if last else None


def final_row_mean(logs: Sequence[dict], key: str) -> float | None:
    """The mean over rows of the per-row lists under ``key`` in the last fifth of the logs:
    the final margin of the rows whose counterfactual changed one reward's marker."""
    values = [v for h in last_fifth(logs) for v in h.get(key, [])]
    return round(float(np.mean(values)), 3) if values else None


def last_fifth(logs: Sequence[dict]) -> Sequence[dict]:
    """The last fifth of the training logs (at least one): what final metrics average over."""
    return logs[-max(1, len(logs) // 5) :]
