"""What each way of holding the experts takes, and where: the memory plan's accounting.

For one way (:data:`WAYS`) and what the plan was asked (:class:`PlanInputs`),
:func:`footprint` lists every component in the order the plan's table prints them: the
working model, the base and each expert where the way keeps them, the streamed merger's staging
buffers, mergekit's whole tensors, the reward heads, and the KV cache and activations of
generation. Choosing among the ways, and saying why none fits, is :mod:`merging.plan`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from merging.sizes import ELEMENT_SIZE, ExpertSize, Generation, ModelShape, activation_bytes

WAYS = ("resident", "factorised", "streamed", "mmap")
ROWS_OF_WAY = {"factorised": "device", "streamed": "host", "mmap": "file"}
"""Where the streamed merger keeps the base and full experts, for each way it serves."""
CPU_STAGING_CHUNK = 1 << 18
DEVICE_STAGING_CHUNK = 1 << 24


@dataclass(frozen=True)
class Component:
    """One part of a merge or its evaluation: what it is, its bytes, and where it lives."""

    what: str
    nbytes: int
    where: str
    """``device``, ``host`` (pinned on CUDA), or ``file`` (read in place; takes no memory)."""
    merger: bool = True
    """Part of the merger (weights, factors, staging), not of generation or scoring."""


@dataclass(frozen=True)
class Footprint:
    """One way's components, the generation batch it leaves room for, and its bytes on the
    device and in host memory."""

    way: str
    components: tuple[Component, ...]
    batch: int | None
    device: int
    host: int


@dataclass(frozen=True)
class PlanInputs:
    """What :func:`~merging.plan.plan_memory` was asked, with what follows from it."""

    shape: ModelShape
    experts: tuple[ExpertSize, ...]
    device: str
    dtype: str
    device_free: int
    host_free: int
    generation: Generation | None
    heads_bytes: int
    whole_tensors: bool
    mappable: bool
    """The base and every full expert are safetensors files (the ``mmap`` way can read them)."""
    streamable: bool
    reserved: int

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def shared(self) -> bool:
        """Device and host are one memory (a CPU)."""
        return not self.on_cuda

    @property
    def element_size(self) -> int:
        return ELEMENT_SIZE[self.dtype]

    @property
    def full(self) -> list[ExpertSize]:
        return [x for x in self.experts if not x.lora]

    @property
    def batch_size(self) -> int | str | None:
        return self.generation.batch_size if self.generation is not None else None


def footprint(ask: PlanInputs, way: str, batch_size) -> Footprint:
    """Every component ``way`` puts somewhere, with the batch it generates in."""
    p = ask.shape.numel
    parts = [Component(f"working model ({p / 1e9:.2f}B values)", p * ask.element_size, "device")]
    if ask.reserved:
        parts.append(Component("the study's other expert set", ask.reserved, "device", False))
    parts += _weights(ask, way)
    if ask.whole_tensors:
        tensors = (2 + len(ask.experts)) * ask.shape.largest * 4
        parts.append(Component("one tensor of every expert (mergekit)", tensors, "device"))
    if ask.heads_bytes:
        parts.append(Component("reward heads", ask.heads_bytes, "device", False))
    batch = None
    if ask.generation is not None:
        batch = _batch(ask, parts, batch_size)
        parts += _generation(ask, ask.generation, batch)
    device_bytes = sum(c.nbytes for c in parts if c.where == "device")
    host_bytes = sum(c.nbytes for c in parts if c.where == "host")
    return Footprint(way, tuple(parts), batch, device_bytes, host_bytes)


def _weights(ask: PlanInputs, way: str) -> list[Component]:
    """The base and the experts where ``way`` keeps them, and the streamed merger's staging."""
    weight = ask.shape.numel * ask.element_size
    if way == "resident":
        parts = [Component("base", weight, "device")]
        for x in ask.experts:
            what = f"expert {x.name}" + (" (LoRA, expanded)" if x.lora else "")
            parts.append(Component(what, weight, "device"))
        return parts
    rows_where = ROWS_OF_WAY[way]
    parts = [Component("base", weight, rows_where)]
    for x in ask.experts:
        if x.lora:
            what = f"expert {x.name} (LoRA r={x.rank}, factors in float32)"
            nbytes = (x.factor_values + x.saved_values) * 4
            parts.append(Component(what, nbytes, "device"))
        else:
            parts.append(Component(f"expert {x.name}", weight, rows_where))
    if way in ("streamed", "mmap"):
        parts += _staging(ask, way)
    return parts


def _staging(ask: PlanInputs, way: str) -> list[Component]:
    """The buffers the streamed merger copies rows through, a chunk at a time."""
    e, rows = ask.element_size, 1 + len(ask.full)
    chunk = DEVICE_STAGING_CHUNK if ask.on_cuda else CPU_STAGING_CHUNK
    buffers = 2 if ask.on_cuda else 1
    staging = buffers * rows * chunk * e + (chunk * 4 if ask.on_cuda else 0)
    parts = [Component(f"staging ({buffers} x {rows} rows x {chunk} values)", staging, "device")]
    if way == "mmap" and ask.on_cuda:
        parts.append(Component("staging, pinned", 2 * rows * chunk * e, "host"))
    return parts


def _batch(ask: PlanInputs, parts: Sequence[Component], batch_size) -> int:
    """The generation batch: as given (at most the prompts), or what fits beside ``parts``."""
    generation = ask.generation
    if batch_size != "auto":
        return max(1, min(int(batch_size), generation.n_prompts))
    from merging.generation import batch_that_fits

    per_sequence = ask.shape.kv_bytes(ask.element_size, generation.tokens) + ask.shape.vocab * 4
    taken = sum(c.nbytes for c in parts if c.where == "device")
    free_after = ask.device_free - taken if ask.on_cuda else 0
    return batch_that_fits(
        "cuda" if ask.on_cuda else "cpu", generation.n_prompts, per_sequence, max(0, free_after)
    )


def _generation(ask: PlanInputs, generation: Generation, batch: int) -> list[Component]:
    """The KV cache and the prefill's activations of a batch of ``batch`` sequences."""
    e, tokens = ask.element_size, generation.tokens
    kv = ask.shape.kv_bytes(e, tokens)
    prefill = generation.prompt_tokens
    return [
        Component(f"KV cache (batch {batch} x {tokens} tokens)", batch * kv, "device", False),
        Component(
            f"activations (prefill of {batch} x {prefill} tokens)",
            activation_bytes(ask.shape, batch, prefill, e, ask.on_cuda),
            "device",
            False,
        ),
    ]
