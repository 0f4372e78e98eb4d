"""A per-objective expert: a LoRA adapter trained with TRL's DPO trainer on preference pairs.

The trainer runs on the CPU or on CUDA with a constant learning rate after a short warm-up,
reports progress through a callback (the zoo draws its own bar), scores only the labelled
positions (:mod:`merging.zoo.compact_head` where TRL's fused head is not available) and saves
only the LoRA adapter (the ExpertSet turns an adapter into its full delta).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from merging.data import PreferencePair
from merging.device import build_in_bfloat16
from merging.zoo.compact_head import add_compact_lm_head
from merging.zoo.finetune import LORA_TARGETS, final_mean, length_buckets, load_base, lora_config


def train_dpo_expert(
    base: Path,
    pairs: Sequence[PreferencePair],
    out: Path,
    *,
    steps: int,
    batch_size: int = 8,
    learning_rate: float = 5e-4,
    beta: float = 0.1,
    max_length: int = 256,
    lora_rank: int = 16,
    targets: Sequence[str] = LORA_TARGETS,
    seed: int = 0,
    device: str = "cpu",
    report: Callable[[int, float], None] | None = None,
) -> dict:
    """A LoRA adapter trained with TRL's DPO on ``pairs``; returns the training metrics.

    One epoch when ``steps * batch_size`` is the number of pairs, in batches of pairs of similar
    length (padding costs as much as real tokens on a CPU)."""
    from trl import DPOConfig, DPOTrainer

    model, tok = load_base(base, device)
    rows = [
        {
            "prompt": list(p.prompt.messages),
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
    # batches of pairs of similar length, taken in this order: a batch is padded to its longest
    lengths = [
        len(tok(p.prompt.text + max(p.chosen, p.rejected, key=len))["input_ids"]) for p in pairs
    ]
    buckets = length_buckets(lengths, batch_size, np.random.default_rng(seed))
    rows = [rows[i] for batch in buckets for i in batch]
    args = DPOConfig(
        beta=beta,
        train_sampling_strategy="sequential",
        **_common_args(out, steps, batch_size, learning_rate, max_length, seed, device),
    )
    seconds, logs = _train(
        DPOTrainer, args, rows, model, tok, out, steps, lora_config(lora_rank, targets), report
    )
    return {
        "steps": steps,
        "pairs": len(pairs),
        "seconds": round(seconds, 1),
        "final_loss": final_mean(logs, "loss"),
        "final_reward_accuracy": final_mean(logs, "rewards/accuracies"),
    }


def _common_args(
    out: Path,
    steps: int,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    seed: int,
    device: str,
) -> dict:
    """TRL trainer settings: constant learning rate after a short warm-up,
    no checkpoints, no external loggers, no activation checkpointing (it costs time here),
    bfloat16 autocast where the zoo builds in it (:func:`build_in_bfloat16`)."""
    return {
        "output_dir": str(out / "_trainer"),
        "per_device_train_batch_size": batch_size,
        "max_steps": steps,
        "learning_rate": learning_rate,
        "lr_scheduler_type": "constant_with_warmup",
        "warmup_steps": max(1, steps // 10),
        "max_length": max_length,
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "seed": seed,
        "data_seed": seed,
        "disable_tqdm": True,
        "use_cpu": device == "cpu",
        "bf16": build_in_bfloat16(device),
        "dataloader_num_workers": 0,
        "gradient_checkpointing": False,
    }


def _train(
    trainer_cls, args, rows: list[dict], model, tok, out: Path, steps: int, lora, report
) -> tuple[float, list[dict]]:
    """Train, save the adapter and tokenizer in ``out``; return seconds and the loss logs."""
    from datasets import Dataset

    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=lora,
        callbacks=[_progress_callback(steps, report)],
    )
    _quiet(trainer)
    if not _triton_head(trainer.accelerator.device):
        add_compact_lm_head(trainer.model.get_base_model())
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.model.save_pretrained(out)
    tok.save_pretrained(out)
    return seconds, [h for h in trainer.state.log_history if "loss" in h]


def _triton_head(device: torch.device) -> bool:
    """Whether TRL's fused head scores only the labelled positions there (with Triton kernels),
    as :func:`~merging.zoo.compact_head.add_compact_lm_head` does elsewhere."""
    from transformers.utils import is_triton_available

    return device.type in ("cuda", "xpu") and is_triton_available()


def _progress_callback(total: int, report: Callable[[int, float], None] | None):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if report is not None:
                report(state.global_step, time.perf_counter() - self.start)

    return Progress()


def _quiet(trainer) -> None:
    """No per-step log dictionaries on stdout: the zoo shows its own progress bar."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
