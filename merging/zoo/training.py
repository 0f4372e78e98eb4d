"""Fine-tuning with TRL and PEFT: LoRA DPO experts and the supervised RiC model.

Both run on the CPU or on CUDA, report progress with a time estimate, and save only the LoRA
adapter (the ExpertSet turns an adapter into its full delta).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from merging.data import PreferencePair, Prompt

LOG = logging.getLogger(__name__)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]


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


def _lora(r: int, targets: Sequence[str]):
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=list(targets), task_type="CAUSAL_LM"
    )


def _load(base: Path, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.to(device)
    return model, tok


def _common_args(
    out: Path,
    steps: int,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    seed: int,
    device: str,
) -> dict:
    """Trainer settings shared by DPO and SFT: constant learning rate after a short warm-up,
    no checkpoints, no external loggers, no activation checkpointing (it costs time here)."""
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
        "bf16": False,
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
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.model.save_pretrained(out)
    tok.save_pretrained(out)
    return seconds, [h for h in trainer.state.log_history if "loss" in h]


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
    """A LoRA adapter trained with TRL's DPO on ``pairs``; returns the training metrics."""
    from trl import DPOConfig, DPOTrainer

    model, tok = _load(base, device)
    rows = [
        {
            "prompt": list(p.prompt.messages),
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
    args = DPOConfig(
        beta=beta, **_common_args(out, steps, batch_size, learning_rate, max_length, seed, device)
    )
    seconds, logs = _train(
        DPOTrainer, args, rows, model, tok, out, steps, _lora(lora_rank, targets), report
    )
    last = logs[-max(1, len(logs) // 5) :]
    return {
        "steps": steps,
        "pairs": len(pairs),
        "seconds": round(seconds, 1),
        "final_loss": sum(h["loss"] for h in last) / len(last) if last else None,
        "final_reward_accuracy": sum(h.get("rewards/accuracies", 0) for h in last) / len(last)
        if last
        else None,
    }


def train_sft_lora(
    base: Path,
    examples: Sequence[tuple[Prompt, str]],
    out: Path,
    *,
    steps: int,
    batch_size: int = 8,
    learning_rate: float = 5e-4,
    max_length: int = 256,
    lora_rank: int = 16,
    seed: int = 0,
    device: str = "cpu",
    report: Callable[[int, float], None] | None = None,
) -> dict:
    """A LoRA adapter trained with TRL's SFT on (prompt, response) examples (loss on the
    response only)."""
    from trl import SFTConfig, SFTTrainer

    model, tok = _load(base, device)
    rows = [
        {"prompt": list(p.messages), "completion": [{"role": "assistant", "content": r}]}
        for p, r in examples
    ]
    args = SFTConfig(
        packing=False,
        **_common_args(out, steps, batch_size, learning_rate, max_length, seed, device),
    )
    seconds, logs = _train(
        SFTTrainer, args, rows, model, tok, out, steps, _lora(lora_rank, LORA_TARGETS), report
    )
    return {
        "steps": steps,
        "examples": len(examples),
        "seconds": round(seconds, 1),
        "final_loss": logs[-1]["loss"] if logs else None,
    }
