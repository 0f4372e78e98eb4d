"""Batched generation: chat template, left padding, KV cache, fixed seeds, stop at end of turn;
greedy decoding drops each row from the batch as it stops (:func:`greedy_decode`).

The same model, prompts and settings give the same responses: prompts are sorted by length
into batches (less padding), every batch reseeds the generator with ``seed + batch index``,
and the responses are returned in the prompts' order.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from merging.data import Prompt

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
CPU_BATCH = 64
"""Prompts per batch on a CPU. Measured on 2 cores (SmolLM2-135M, float32, 64 prompts, 80 new
tokens, greedy): batch 16 took 74 s, 32 took 49 s, 64 took 33 s, with the same answers."""
CPU_CACHE_BYTES = 2 * 1024**3
"""The KV cache a CPU batch may take (SmolLM2-135M in float32 needs 28 MB a sequence at 512 + 96
tokens, so 64 fit; a 7B model with 32 layers and 8 KV heads needs 160 MB, so 13)."""
GPU_MAX_BATCH = 256


class GenerationSettings(BaseModel):
    """How responses are generated; part of every evaluation's hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(96, ge=1, le=8192, description="tokens generated per response")
    do_sample: bool = Field(False, description="sample (True) or decode greedily (False)")
    temperature: float = Field(0.7, gt=0, description="sampling temperature")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")
    seed: int = Field(0, description="seed of the sampler; batch b uses seed + b")
    batch_size: int | Literal["auto"] = Field("auto", description="prompts per batch, or auto")
    max_prompt_tokens: int = Field(512, ge=8, description="longer prompts keep their end")
    system_prompt: str | None = Field(None, description="system message put before each prompt")


def render(
    tokenizer, prompt: Prompt, system_prompt: str | None = None, chat_template: str | None = None
) -> str:
    """The prompt in the tokenizer's chat template (or ``chat_template``), ready for the
    assistant's turn."""
    messages = list(prompt.messages)
    if system_prompt is not None and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    if chat_template or getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, chat_template=chat_template
        )
    return Prompt(tuple(messages)).text + "\n\nAssistant:"


def stop_token_ids(tokenizer, model) -> list[int]:
    """End-of-sequence and end-of-turn token ids known to the tokenizer."""
    ids = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list):
            ids.update(source)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return sorted(ids)


def auto_batch_size(
    model, device: torch.device, n_prompts: int, settings: GenerationSettings
) -> int:
    """A batch size that fits: on the CPU :data:`CPU_BATCH`, fewer where the KV cache of that
    many would pass :data:`CPU_CACHE_BYTES`; on CUDA from free memory and the KV cache."""
    per_sequence = _bytes_per_sequence(model, settings)
    if device.type != "cuda":
        return batch_that_fits("cpu", n_prompts, per_sequence, 0)
    free, _ = torch.cuda.mem_get_info(device)
    return batch_that_fits("cuda", n_prompts, per_sequence, free)


def batch_that_fits(device_type: str, n_prompts: int, per_sequence: int, free: int) -> int:
    """The automatic batch: the rule :func:`auto_batch_size` applies, from numbers alone (the
    memory plan predicts it before any model is loaded). ``free``: the device's free bytes."""
    if device_type != "cuda":
        return max(1, min(CPU_BATCH, n_prompts, CPU_CACHE_BYTES // per_sequence))
    fit = int(0.5 * free // per_sequence)
    return max(1, min(GPU_MAX_BATCH, fit, n_prompts))


def _bytes_per_sequence(model, settings: GenerationSettings) -> int:
    tokens = settings.max_prompt_tokens + settings.max_new_tokens
    one = bytes_per_sequence(model.config, next(model.parameters()).element_size(), tokens)
    return one * getattr(model, "kv_copies", 1)  # a decoding-time mixture: a cache per expert


def bytes_per_sequence(config, element_size: int, tokens: int) -> int:
    """Memory one sequence of ``tokens`` takes while generating: its KV cache at full length
    (``element_size`` bytes a value), and its share of the last step's float32 logits."""
    logits = config.vocab_size * 4  # the last step's logits, widened to float32
    return max(1, kv_bytes_per_sequence(config, element_size, tokens) + logits)


def kv_bytes_per_sequence(config, element_size: int, tokens: int) -> int:
    """The KV cache of one sequence of ``tokens``: keys and values of every layer."""
    layers = getattr(config, "num_hidden_layers", 24)
    heads = getattr(config, "num_attention_heads", 16)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * layers * kv_heads * head_dim * tokens * element_size


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant's turn: the first of :data:`END_OF_TURN_TOKENS` the
    tokenizer knows, else its end-of-sequence token."""
    vocab = tokenizer.get_vocab()
    return next((vocab[t] for t in END_OF_TURN_TOKENS if t in vocab), tokenizer.eos_token_id)


def generate(
    model, tokenizer, prompts: Sequence[Prompt], settings: GenerationSettings, *, progress=None
) -> list[str]:
    """Responses of ``model`` to ``prompts``, in order (special tokens stripped)."""
    return generate_finished(model, tokenizer, prompts, settings, progress=progress)[0]


@torch.no_grad()
def generate_finished(
    model, tokenizer, prompts: Sequence[Prompt], settings: GenerationSettings, *, progress=None
) -> tuple[list[str], list[bool]]:
    """:func:`generate`'s responses, and for each whether it ended its turn (a stop token)
    rather than running out of ``max_new_tokens``."""
    device = next(model.parameters()).device
    texts = [render(tokenizer, p, settings.system_prompt) for p in prompts]
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded = [
        tokenizer(
            t, add_special_tokens=False, truncation=True, max_length=settings.max_prompt_tokens
        )["input_ids"]
        for t in texts
    ]
    order = sorted(range(len(texts)), key=lambda i: (len(encoded[i]), i))
    size = (
        auto_batch_size(model, device, len(texts), settings)
        if settings.batch_size == "auto"
        else int(settings.batch_size)
    )
    stops = stop_token_ids(tokenizer, model)
    greedy = not settings.do_sample and plain_greedy(model)
    if not greedy and not hasattr(model, "generate"):
        raise ValueError(
            f"{type(model).__name__} decodes greedily only: set the generation's do_sample "
            "to false (and leave the model's generation_config at plain greedy search)"
        )
    responses: list[str | None] = [None] * len(texts)
    finished = [False] * len(texts)
    for b, start in enumerate(range(0, len(order), size)):
        idx = order[start : start + size]
        batch = tokenizer.pad(
            {"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt"
        ).to(device)
        if greedy:
            rows = greedy_decode(
                model, batch["input_ids"], batch["attention_mask"], settings.max_new_tokens, stops
            )
        else:
            rows = _transformers_generate(model, tokenizer, batch, settings, stops, batch_index=b)
        for i, row in zip(idx, rows, strict=True):
            responses[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
            finished[i] = bool(row) and row[-1] in stops
        if progress is not None:
            progress(len(idx))
    return [r or "" for r in responses], finished


GREEDY_NEUTRAL = {
    "num_beams": (None, 1),
    "penalty_alpha": (None, 0, 0.0),
    "repetition_penalty": (None, 1, 1.0),
    "encoder_repetition_penalty": (None, 1, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1, 1.0),
    "watermarking_config": (None,),
    "prompt_lookup_num_tokens": (None,),
    "custom_generate": (None,),
}
"""The values of a ``generation_config`` setting under which transformers' greedy search is a
plain argmax at every step (:func:`plain_greedy`): unset, or its old default."""


def plain_greedy(model) -> bool:
    """Whether :func:`greedy_decode` decodes ``model`` as transformers' greedy search does: its
    forward takes position ids and a key-value cache, and its ``generation_config`` asks for no
    beams, penalties or forced tokens (where it does, transformers' ``generate`` decodes)."""
    keywords = forward_keywords(model)
    if "position_ids" not in keywords or not {"cache", "past_key_values"} & keywords:
        return False
    config = getattr(model, "generation_config", None)
    return config is None or all(
        getattr(config, key, None) in neutral for key, neutral in GREEDY_NEUTRAL.items()
    )


@torch.no_grad()
def greedy_decode(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, stops
) -> list[list[int]]:
    """The greedy continuation of each left-padded row, ending with its stop token if it met
    one: transformers' greedy search, except that a row leaves the batch (and its keys and
    values the cache) once it has stopped, so the steps after cost only the rows still writing
    (the quickstart study generated a quarter faster on 2 CPU cores, the same tokens; README)."""
    keywords = forward_keywords(model)
    name = cache_keyword(model)
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in keywords else {}
    stop = torch.tensor(sorted(stops), device=input_ids.device)
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        **last_only,
    )
    cache, mask, position = getattr(out, name), attention_mask, positions[:, -1:]
    alive = torch.arange(len(input_ids), device=input_ids.device)
    written: list[list[int]] = [[] for _ in range(len(input_ids))]
    for step in range(max_new_tokens):
        tokens = out.logits[:, -1].float().argmax(-1)
        for row, token in zip(alive.tolist(), tokens.tolist(), strict=True):
            written[row].append(token)
        going = ~torch.isin(tokens, stop)
        if step == max_new_tokens - 1 or not going.any():
            break
        if not going.all():  # the rows that stopped leave the batch and the cache
            keep = going.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive, tokens, mask, position = alive[keep], tokens[keep], mask[keep], position[keep]
        mask = torch.cat([mask, mask.new_ones((len(mask), 1))], dim=1)
        position = position + 1
        out = model(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=position,
            use_cache=True,
            **{name: cache},
        )
    return written


def _transformers_generate(model, tokenizer, batch, settings, stops, *, batch_index: int):
    """transformers' ``generate`` (sampling, or a model whose greedy search is not a plain
    argmax): each row's new tokens, up to and including its stop token."""
    torch.manual_seed(settings.seed + batch_index)
    kwargs = {"do_sample": settings.do_sample}
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    out = model.generate(
        **batch,
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        **kwargs,
    )
    rows = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        end = next((i for i, t in enumerate(row) if t in stops), None)
        rows.append(row if end is None else row[: end + 1])
    return rows


def cache_keyword(model) -> str:
    """The keyword (and output attribute) of ``model``'s key-value cache: ``cache``, or
    ``past_key_values`` before transformers 5 renamed it."""
    return "cache" if "cache" in forward_keywords(model) else "past_key_values"


def forward_keywords(model) -> set[str]:
    """The keyword arguments the forward of ``model`` (the model a PEFT wrapper holds) names."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)
