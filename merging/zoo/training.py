"""Fine-tuning with PEFT: LoRA DPO experts (TRL's trainer) and the rewards-in-context model
(a supervised loss with a contrastive term, in a loop of our own).

Both run on the CPU or on CUDA, report progress with a time estimate, and save only the LoRA
adapter (the ExpertSet turns an adapter into its full delta).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from merging.data import PreferencePair
from merging.device import fast_bfloat16
from merging.ric import LevelWords
from merging.zoo.compact_head import add_compact_lm_head, scored_log_probs
from merging.zoo.shared_prefix import masks_per_position, packed_hidden_states

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
    """TRL trainer settings: constant learning rate after a short warm-up,
    no checkpoints, no external loggers, no activation checkpointing (it costs time here),
    bfloat16 autocast where the device computes it natively (:func:`fast_bfloat16`)."""
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
        "bf16": fast_bfloat16(device),
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

    model, tok = _load(base, device)
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
    buckets = _length_buckets(lengths, batch_size, np.random.default_rng(seed))
    rows = [rows[i] for batch in buckets for i in batch]
    args = DPOConfig(
        beta=beta,
        train_sampling_strategy="sequential",
        **_common_args(out, steps, batch_size, learning_rate, max_length, seed, device),
    )
    seconds, logs = _train(
        DPOTrainer, args, rows, model, tok, out, steps, _lora(lora_rank, targets), report
    )
    return {
        "steps": steps,
        "pairs": len(pairs),
        "seconds": round(seconds, 1),
        "final_loss": _final_mean(logs, "loss"),
        "final_reward_accuracy": _final_mean(logs, "rewards/accuracies"),
    }


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
    """The RiC model: a LoRA adapter trained on :class:`~merging.zoo.ric_data.RiCExample`\\ s.

    The loss is RiC's supervised loss (each response, and its end of turn when it ended, given
    its prompt with its own scores) plus ``contrast`` times a contrastive term: the first
    ``contrast_tokens`` tokens of each response should be likelier under its own scores than
    under its counterfactual's (one marker set to another answer's score for the same prompt),
    ``softplus(-beta * (log p(own) - log p(counterfactual)))``; ``contrast_tokens`` is one count
    for every marker or one per reward (in ``rewards`` order: the tokens a row compares are those
    of the marker its counterfactual changed). Supervised fine-tuning alone
    teaches a small model the answers' style but, within a CPU budget, not to read each marker
    (see docs/ric-investigation.md); TRL's SFT trainer has no such term, hence this loop.
    ``words``, one set per reward, are the level words written after the scores
    (:mod:`merging.ric`). ``length_batches``: each batch holds answers of similar length (less
    padding, which costs as much as real tokens on a CPU) rather than a random draw. Where the
    attention takes a mask per position, an answer is scored under its own and its
    counterfactual's scores in one sequence that computes their prompts' shared start once
    (:func:`_paired_log_probs`); elsewhere in two passes, with the same result. The metrics
    include the final contrastive margin per reward (of the rows whose counterfactual changed
    that reward's marker) and its mean by tenth of training. bfloat16 autocast where it is native
    (:func:`~merging.device.fast_bfloat16`); the adapter's weights stay float32.
    """
    from peft import get_peft_model

    from merging.generation import end_of_turn_id, render
    from merging.ric import condition

    varied = [_varied_reward(e.scores, e.counterfactual) for e in examples]
    heads = _contrast_heads(contrast_tokens, varied, len(rewards))
    torch.manual_seed(seed)
    model, tok = _load(base, device)
    model = get_peft_model(model, _lora(lora_rank, LORA_TARGETS))
    end = end_of_turn_id(tok)

    def prompt_ids(example, scores) -> list[int]:
        text = render(tok, condition(example.prompt, rewards, scores, words))
        return tok(text, add_special_tokens=False)["input_ids"]

    rows = [
        (
            prompt_ids(e, e.scores),
            prompt_ids(e, e.counterfactual),
            response_token_ids(tok, e.response, e.finished, max_response_tokens, end),
        )
        for e in examples
    ]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    warmup, decay = max(1, steps // 10), max(1, (3 * steps) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # warm up, hold, then decay over the last 30%
        optimiser, lambda s: min((s + 1) / warmup, 1.0, (steps - s) / decay)
    )
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    autocast = {
        "device_type": torch.device(device).type,
        "dtype": torch.bfloat16,
        "enabled": fast_bfloat16(device),
    }
    paired = masks_per_position(model)
    batches: list[list[int]] = []
    rng = np.random.default_rng(seed)
    logs = []
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        if not batches:
            if length_batches:
                lengths = [len(o) + len(r) for o, _, r in rows]
                batches = _length_buckets(lengths, batch_size, rng)
            else:  # each batch a random draw: dearer in padding, less biased per step
                batches = _chunks(rng.permutation(len(rows)).tolist(), batch_size)
        indices = batches.pop()
        if contrast and paired:  # one pass: a row's counterfactual shares its prompt's start
            own_lp, own_valid, cf_lp, cf_valid = _paired_log_probs(
                model, [(*rows[i], heads[i]) for i in indices], pad, device, autocast
            )
        else:
            own_lp, own_valid = _response_log_probs(
                model, [(rows[i][0], rows[i][2]) for i in indices], pad, device, autocast
            )
            if contrast:  # a pass of its own: its rows are shorter, so padded less
                cf_lp, cf_valid = _response_log_probs(
                    model,
                    [(rows[i][1], rows[i][2][: heads[i]]) for i in indices],
                    pad,
                    device,
                    autocast,
                )
        loss = -own_lp.sum() / own_valid.sum()
        record = {"step": step + 1, "supervised": loss.item()}
        if contrast:
            head = cf_valid.sum(-1)  # per row: the response tokens the counterfactual covers
            own = (own_lp * (own_valid.cumsum(-1) <= head[:, None])).sum(-1)  # its first ones
            margin = contrast_beta * (own - cf_lp.sum(-1))
            term = torch.nn.functional.softplus(-margin).mean()
            loss = loss + contrast * term
            record["margin"] = margin.mean().item() / contrast_beta
            for i, m in zip(indices, margin.tolist(), strict=True):
                if varied[i] is not None:
                    key = f"margin:{rewards[varied[i]]}"
                    record.setdefault(key, []).append(m / contrast_beta)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        logs.append(record)
        if report is not None:
            report(step + 1, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    model.save_pretrained(out)
    tok.save_pretrained(out)
    metrics = {
        "steps": steps,
        "examples": len(examples),
        "seconds": round(seconds, 1),
        "final_loss": _final_mean(logs, "supervised"),
        "length_batches": length_batches,
    }
    if contrast:
        metrics["final_margin_nats"] = _final_mean(logs, "margin")
        metrics["final_margin_nats_by_reward"] = {
            name: _final_row_mean(logs, f"margin:{name}") for name in rewards
        }
        metrics["margin_nats_by_tenth"] = [
            round(float(np.mean([h["margin"] for h in part])), 3)
            for part in np.array_split(np.array(logs, dtype=object), max(1, min(10, len(logs))))
            if len(part)
        ]
    return metrics


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


def _final_row_mean(logs: Sequence[dict], key: str) -> float | None:
    """The mean over rows of the per-row lists under ``key`` in the last fifth of the logs:
    the final margin of the rows whose counterfactual changed one reward's marker."""
    values = [v for h in _last_fifth(logs) for v in h.get(key, [])]
    return round(float(np.mean(values)), 3) if values else None


def _final_mean(logs: Sequence[dict], key: str) -> float | None:
    """The mean of ``key`` over the last fifth of the training logs (a single step is noisy);
    ``None`` when there are no logs, and a log without ``key`` counts as 0."""
    last = _last_fifth(logs)
    return sum(h.get(key, 0) for h in last) / len(last) if last else None


def _last_fifth(logs: Sequence[dict]) -> Sequence[dict]:
    """The last fifth of the training logs (at least one): what final metrics average over."""
    return logs[-max(1, len(logs) // 5) :]


def _chunks(order: Sequence[int], size: int) -> list[list[int]]:
    """``order`` cut into consecutive batches of ``size`` (the last may be shorter)."""
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


def _length_buckets(lengths: Sequence[int], size: int, rng) -> list[list[int]]:
    """One epoch of batches of ``size`` rows of similar length (sorted by length, with a random
    jitter so that batches differ from epoch to epoch), in random order: padding costs as much
    as real tokens on a CPU."""
    jitter = rng.uniform(0, 0.5 * np.std(lengths) + 1e-9, len(lengths))
    order = np.argsort(np.asarray(lengths) + jitter, kind="stable").tolist()
    batches = _chunks(order, size)
    return [batches[i] for i in rng.permutation(len(batches))]


def response_token_ids(tokenizer, response: str, finished: bool, limit: int, end: int) -> list[int]:
    """What a model trains to write for ``response``: its tokens, at most ``limit``, then the
    end of turn if the response ended there (one cut short, or that ran out of tokens when
    it was generated, is not taught to end)."""
    ids = tokenizer(response, add_special_tokens=False)["input_ids"][:limit]
    return [*ids, end] if finished and len(ids) < limit else ids


def _response_log_probs(model, sequences, pad: int, device: str, autocast: dict):
    """``(token_lp, valid)``, each ``(rows, longest response)``: the log-probability of each
    response token of ``(prompt_ids, response_ids)`` rows, and where a response token is.

    Rows are left-padded, so that the responses end together; the vocabulary projection and its
    log-softmax are computed for the response tokens only (on a CPU they cost as much as a
    tenth of the model's layers per position, and a batch's shorter responses leave prompt and
    padding positions among its last ones)."""
    width = max(len(p) + len(r) for p, r in sequences)
    keep = max(len(r) for _, r in sequences)
    ids = torch.full((len(sequences), width), pad)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    target = torch.full((len(sequences), keep), -100)
    for row, (p, r) in enumerate(sequences):
        ids[row, width - len(p) - len(r) :] = torch.tensor(p + r)
        mask[row, width - len(p) - len(r) :] = 1
        if r:
            target[row, keep - len(r) :] = torch.tensor(r)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.autocast(**autocast):
        hidden = causal.base_model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        ).last_hidden_state[:, -keep - 1 : -1]  # the positions that predict the response tokens
        token_lp, valid, _, _ = scored_log_probs(causal.get_output_embeddings(), hidden, target)
    return token_lp, valid


def _paired_log_probs(model, rows, pad: int, device: str, autocast: dict):
    """``(own_lp, own_valid, cf_lp, cf_valid)`` for ``(own_prompt, cf_prompt, response, head)``
    rows: what :func:`_response_log_probs` gives for ``(own_prompt, response)`` and for
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
