"""What the memory plan (:mod:`merging.plan`) is computed from: sizes, never weights.

A model's shape (every parameter's shape from the config, built on the meta device), each
expert's size (a full checkpoint, or a LoRA adapter's factors read from its file header), and
what an evaluation generates (it sizes the KV cache and the activations). Kept apart from the
plan so that benchmarks and the command line can size a model without planning anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

GB = 1e9
ELEMENT_SIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
"""Bytes per value of each storage dtype a merge can use."""


def numel(shape) -> int:
    """The number of values of a tensor of ``shape`` (1 for a scalar's empty shape)."""
    return math.prod(int(d) for d in shape)


def gb(n: float) -> str:
    """A byte count as the plan's messages print it (``"6.17 GB"``)."""
    return f"{n / GB:.2f} GB"


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs of an architecture: every parameter's shape (tied weights once)
    and the numbers that size the KV cache and the activations."""

    shapes: dict[str, tuple[int, ...]]
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    vocab: int

    @property
    def numel(self) -> int:
        return sum(numel(s) for s in self.shapes.values())

    @property
    def largest(self) -> int:
        return max(numel(s) for s in self.shapes.values())

    @classmethod
    def from_config(cls, config, *, trust_remote_code: bool = False) -> ModelShape:
        """The shape of ``config``'s causal LM, built on the meta device (no memory)."""
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        heads = int(getattr(config, "num_attention_heads", 16))
        hidden = int(config.hidden_size)
        return cls(
            shapes=shapes,
            layers=int(getattr(config, "num_hidden_layers", 24)),
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(config, "head_dim", None) or hidden // heads),
            hidden=hidden,
            intermediate=int(getattr(config, "intermediate_size", None) or 4 * hidden),
            vocab=int(config.vocab_size),
        )

    def kv_bytes(self, element_size: int, tokens: int) -> int:
        """The KV cache of one sequence of ``tokens`` (as :mod:`merging.generation` counts)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * tokens * element_size


@dataclass(frozen=True)
class ExpertSize:
    """One expert as the plan sees it: a full checkpoint, or a LoRA adapter's factors."""

    name: str
    lora: bool = False
    factor_values: int = 0
    """LoRA: ``r * (d_in + d_out)`` summed over the adapted weights."""
    saved_values: int = 0
    """LoRA: values of ``modules_to_save`` replacements (kept whole)."""
    rank: int | None = None
    mappable: bool = True
    """Full: its tensors can be read in place from safetensors files."""

    @classmethod
    def of_checkpoint(cls, ckpt) -> ExpertSize:
        """From an inspected :class:`~merging.checkpoints.Checkpoint` (headers only)."""
        from merging.checkpoints import LORA
        from merging.lora import lora_modules

        if ckpt.kind != LORA:
            return cls(ckpt.name, mappable=_mappable(ckpt))
        specs = ckpt.raw_specs or {}
        factors, ranks = 0, set()
        for parts in lora_modules(specs).values():
            a, b = specs[parts["A"]].shape, specs[parts["B"]].shape
            factors += numel(a) + numel(b)
            ranks.add(int(a[0]))
        saved = sum(
            numel(s.shape) for k, s in specs.items() if not re.search(r"lora_(embedding_)?[AB]", k)
        )
        rank = max(ranks) if ranks else None
        return cls(ckpt.name, lora=True, factor_values=factors, saved_values=saved, rank=rank)

    @classmethod
    def lora_of_shape(
        cls, name: str, shape: ModelShape, rank: int, targets: Sequence[str]
    ) -> ExpertSize:
        """A LoRA expert of ``rank`` on the weights whose names end with one of ``targets``."""
        values = 0
        for param, s in shape.shapes.items():
            module = param.removesuffix(".weight")
            if len(s) == 2 and any(module.endswith(t) for t in targets):
                values += rank * (s[0] + s[1])
        return cls(name, lora=True, factor_values=values, rank=rank)


def _mappable(ckpt) -> bool:
    return ckpt._loaded is None and all(p.suffix == ".safetensors" for p in ckpt._files.values())


@dataclass(frozen=True)
class Generation:
    """What an evaluation generates: it sizes the KV cache and the activations."""

    n_prompts: int
    batch_size: int | str = "auto"
    prompt_tokens: int = 512
    new_tokens: int = 96

    @classmethod
    def of_settings(cls, settings, n_prompts: int) -> Generation:
        """From :class:`~merging.generation.GenerationSettings` and a number of prompts."""
        return cls(
            n_prompts=n_prompts,
            batch_size=settings.batch_size,
            prompt_tokens=settings.max_prompt_tokens,
            new_tokens=settings.max_new_tokens,
        )

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.new_tokens


def activation_bytes(shape: ModelShape, batch: int, tokens: int, element_size: int, cuda: bool):
    """A bound on the prefill's transient memory: a few hidden states and the MLP's
    intermediate ones per token, the last step's logits in float32, and on a CPU the attention
    scores (CUDA's attention kernels do not hold them)."""
    per_token = (4 * shape.hidden + 3 * shape.intermediate) * element_size
    total = batch * tokens * per_token + batch * shape.vocab * (element_size + 4)
    if not cuda:
        total += batch * shape.heads * tokens * tokens * element_size
    return total
