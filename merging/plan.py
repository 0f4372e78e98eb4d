"""The memory plan: the bytes of every part of a merge and its evaluation, and where each lives.

Computed before any weight is read, from the base's config (the model built on the meta device
gives every parameter's shape), the experts' file headers, the device's free memory and the
generation settings. Four ways to hold the experts, tried in this order:

=============  ==================================================================  ==========
way            where the base and the experts live                                  merger
=============  ==================================================================  ==========
resident       all on the device, LoRA experts expanded: ``(experts + 2)`` copies   resident
factorised     base and full experts on the device, LoRA experts as their factors   streamed
streamed       base and full experts in host memory (pinned on CUDA), copied to     streamed
               the device a chunk at a time; LoRA experts as factors on the device
mmap           base and full experts read from their safetensors files a chunk      streamed
               at a time (memory-mapped); LoRA experts as factors on the device
=============  ==================================================================  ==========

``factorised`` is offered only with LoRA experts, ``streamed`` only on CUDA (on a CPU host
memory is the device's), ``mmap`` only when the base and full experts are safetensors files.
The first way that fits is the plan; when none fits, :class:`PlanError` says in one line what
was needed, what is free, and what would fit (a smaller batch, fewer experts, LoRA experts,
another dtype).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

GB = 1e9
WAYS = ("resident", "factorised", "streamed", "mmap")
PLACEMENTS = ("auto", *WAYS)
ROWS_OF_WAY = {"factorised": "device", "streamed": "host", "mmap": "file"}
"""Where the streamed merger keeps the base and full experts, for each way it serves."""
CPU_STAGING_CHUNK = 1 << 18
DEVICE_STAGING_CHUNK = 1 << 24
ELEMENT_SIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The weights a LoRA expert adapts when the plan suggests LoRA (every projection)."""


class PlanError(ValueError):
    """The experts cannot be held on this machine as asked: one line, nothing loaded."""


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
        return sum(_numel(s) for s in self.shapes.values())

    @property
    def largest(self) -> int:
        return max(_numel(s) for s in self.shapes.values())

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


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


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
        from merging.checkpoints import LORA, lora_modules

        if ckpt.kind != LORA:
            return cls(ckpt.name, mappable=_mappable(ckpt))
        specs = ckpt.raw_specs or {}
        factors, ranks = 0, set()
        for parts in lora_modules(specs).values():
            a, b = specs[parts["A"]].shape, specs[parts["B"]].shape
            factors += _numel(a) + _numel(b)
            ranks.add(int(a[0]))
        saved = sum(
            _numel(s.shape) for k, s in specs.items() if not re.search(r"lora_(embedding_)?[AB]", k)
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


@dataclass(frozen=True)
class Component:
    what: str
    nbytes: int
    where: str
    """``device``, ``host`` (pinned on CUDA), or ``file`` (read in place; takes no memory)."""
    merger: bool = True
    """Part of the merger (weights, factors, staging), not of generation or scoring."""


@dataclass(frozen=True)
class MemoryPlan:
    """The way chosen, every component's bytes and place, and what the device has free."""

    way: str
    device: str
    dtype: str
    device_free: int
    host_free: int
    components: tuple[Component, ...]
    batch: int | None
    resident_bytes: int
    """Device memory the resident way (every expert and the base on the device) needs."""
    shared: bool
    """Device and host are one memory (a CPU): their bytes count against one budget."""
    notes: tuple[str, ...] = field(default=())

    @property
    def device_bytes(self) -> int:
        return sum(c.nbytes for c in self.components if c.where == "device")

    @property
    def host_bytes(self) -> int:
        return sum(c.nbytes for c in self.components if c.where == "host")

    @property
    def merger_device_bytes(self) -> int:
        """Device memory the merger itself holds (what a second merger must leave room for)."""
        return sum(c.nbytes for c in self.components if c.where == "device" and c.merger)

    @property
    def rows(self) -> str | None:
        """Where the streamed merger keeps its rows (``None`` for the resident merger)."""
        return ROWS_OF_WAY.get(self.way)

    def table(self) -> str:
        """The plan as a few lines for people."""
        free = f"{_gb(self.device_free)} free"
        host = "" if self.shared else f"; host memory {_gb(self.host_free)} free"
        lines = [f"memory plan: {self.way} on {self.device} ({self.dtype}, {free}{host})"]
        width = max(len(c.what) for c in self.components)
        for c in self.components:
            place = {"host": "host, pinned" if self.device.startswith("cuda") else "host"}.get(
                c.where, c.where
            )
            lines.append(f"  {c.what:<{width}}  {_gb(c.nbytes):>9}  {place}")
        if self.shared:
            total = f"{_gb(self.device_bytes + self.host_bytes)} of {_gb(self.device_free)}"
        else:
            total = (
                f"device {_gb(self.device_bytes)} of {_gb(self.device_free)}, "
                f"host {_gb(self.host_bytes)} of {_gb(self.host_free)}"
            )
        lines.append(
            f"  total {total}; the resident way needs {_gb(self.resident_bytes)} on the device"
        )
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


@dataclass(frozen=True)
class _Need:
    way: str
    components: tuple[Component, ...]
    batch: int | None
    device: int
    host: int


def plan_memory(
    shape: ModelShape,
    experts: Sequence[ExpertSize],
    *,
    device: str,
    dtype: str,
    device_free: int,
    host_free: int,
    generation: Generation | None = None,
    heads_bytes: int = 0,
    placement: str = "auto",
    whole_tensors: bool = False,
    base_mappable: bool = True,
    streamable: bool = True,
    reserved: int = 0,
) -> MemoryPlan:
    """The plan for ``experts`` over a base of ``shape`` on ``device`` (``cpu``, ``cuda:0``).

    ``dtype``: the merge's storage dtype. ``device_free``/``host_free``: bytes free (on a CPU
    they are one memory: give the same number). ``heads_bytes``: the reward heads on the device.
    ``whole_tensors``: a family that needs every expert's whole tensor (mergekit's methods).
    ``streamable``: the checkpoints' tensor names match the model's parameters (the streamed
    merger reads them directly). ``reserved``: device bytes taken by something else (another
    expert set of the same study). Raises :class:`PlanError` when nothing fits.
    """
    if placement not in PLACEMENTS:
        raise PlanError(f"placement {placement!r} is not one of {', '.join(PLACEMENTS)}")
    if dtype not in ELEMENT_SIZE:
        raise PlanError(f"dtype {dtype!r} is not one of {', '.join(ELEMENT_SIZE)}")
    on_cuda = device.startswith("cuda")
    shared = not on_cuda
    e = ELEMENT_SIZE[dtype]
    n_lora = sum(x.lora for x in experts)
    full = [x for x in experts if not x.lora]
    mappable = base_mappable and all(x.mappable for x in full)

    def need(way: str, batch_size) -> _Need:
        p = shape.numel
        parts = [Component(f"working model ({shape.numel / 1e9:.2f}B values)", p * e, "device")]
        if reserved:
            parts.append(Component("the study's other expert set", reserved, "device", False))
        if way == "resident":
            parts.append(Component("base", p * e, "device"))
            for x in experts:
                what = f"expert {x.name}" + (" (LoRA, expanded)" if x.lora else "")
                parts.append(Component(what, p * e, "device"))
        else:
            rows_where = ROWS_OF_WAY[way]
            parts.append(Component("base", p * e, rows_where))
            for x in experts:
                if x.lora:
                    what = f"expert {x.name} (LoRA r={x.rank}, factors in float32)"
                    nbytes = (x.factor_values + x.saved_values) * 4
                    parts.append(Component(what, nbytes, "device"))
                else:
                    parts.append(Component(f"expert {x.name}", p * e, rows_where))
            rows = 1 + len(full)
            if way in ("streamed", "mmap"):
                chunk = DEVICE_STAGING_CHUNK if on_cuda else CPU_STAGING_CHUNK
                buffers = 2 if on_cuda else 1
                staging = buffers * rows * chunk * e + (chunk * 4 if on_cuda else 0)
                parts.append(
                    Component(
                        f"staging ({buffers} x {rows} rows x {chunk} values)", staging, "device"
                    )
                )
                if way == "mmap" and on_cuda:
                    parts.append(Component("staging, pinned", 2 * rows * chunk * e, "host"))
        if whole_tensors:
            tensors = (2 + len(experts)) * shape.largest * 4
            parts.append(Component("one tensor of every expert (mergekit)", tensors, "device"))
        if heads_bytes:
            parts.append(Component("reward heads", heads_bytes, "device", False))
        batch = None
        if generation is not None:
            per_sequence = shape.kv_bytes(e, generation.tokens) + shape.vocab * 4
            if batch_size == "auto":
                from merging.generation import batch_that_fits

                taken = sum(c.nbytes for c in parts if c.where == "device")
                free_after = device_free - taken if on_cuda else 0
                batch = batch_that_fits(
                    "cuda" if on_cuda else "cpu",
                    generation.n_prompts,
                    per_sequence,
                    max(0, free_after),
                )
            else:
                batch = max(1, min(int(batch_size), generation.n_prompts))
            tokens = generation.tokens
            parts.append(
                Component(
                    f"KV cache (batch {batch} x {tokens} tokens)",
                    batch * shape.kv_bytes(e, tokens),
                    "device",
                    False,
                )
            )
            parts.append(
                Component(
                    f"activations (prefill of {batch} x {generation.prompt_tokens} tokens)",
                    activation_bytes(shape, batch, generation.prompt_tokens, e, on_cuda),
                    "device",
                    False,
                )
            )
        device_bytes = sum(c.nbytes for c in parts if c.where == "device")
        host_bytes = sum(c.nbytes for c in parts if c.where == "host")
        return _Need(way, tuple(parts), batch, device_bytes, host_bytes)

    def fits(n: _Need) -> bool:
        if shared:
            return n.device + n.host <= device_free
        return n.device <= device_free and n.host <= host_free

    def allowed(way: str) -> str | None:
        """Why ``way`` cannot serve these experts, or None."""
        if way != "resident" and not streamable:
            return "the checkpoints' tensor names do not match the model's parameters"
        if way == "factorised" and not n_lora:
            return "no expert is a LoRA adapter"
        if way == "mmap" and not mappable:
            return "the base or a full expert is not a safetensors file (GGUF or .bin)"
        return None

    batch_size = generation.batch_size if generation is not None else None
    if placement != "auto":
        reason = allowed(placement)
        if reason:
            raise PlanError(f"--placement {placement}: not possible here: {reason}")
        chosen = need(placement, batch_size)
        if not fits(chosen):
            raise PlanError(_refusal([chosen], device, dtype, device_free, host_free, shared))
    else:
        candidates = []
        for way in WAYS:
            if allowed(way) or (way == "streamed" and not on_cuda):
                continue
            candidates.append(need(way, batch_size))
        chosen = next((n for n in candidates if fits(n)), None)
        if chosen is None:
            raise PlanError(
                _refusal(
                    candidates,
                    device,
                    dtype,
                    device_free,
                    host_free,
                    shared,
                    suggestions=_suggestions(
                        shape,
                        experts,
                        candidates[-1],
                        generation,
                        device_free,
                        host_free,
                        shared,
                        dtype,
                        on_cuda,
                    ),
                )
            )
    resident = need("resident", chosen.batch if chosen.batch is not None else batch_size)
    notes = []
    if chosen.way == "resident" and n_lora:
        notes.append("LoRA experts are expanded to full weights (the fastest merge when it fits)")
    return MemoryPlan(
        way=chosen.way,
        device=device,
        dtype=dtype,
        device_free=device_free,
        host_free=host_free,
        components=chosen.components,
        batch=chosen.batch,
        resident_bytes=resident.device,
        shared=shared,
        notes=tuple(notes),
    )


def activation_bytes(shape: ModelShape, batch: int, tokens: int, element_size: int, cuda: bool):
    """A bound on the prefill's transient memory: a few hidden states and the MLP's
    intermediate ones per token, the last step's logits in float32, and on a CPU the attention
    scores (CUDA's attention kernels do not hold them)."""
    per_token = (4 * shape.hidden + 3 * shape.intermediate) * element_size
    total = batch * tokens * per_token + batch * shape.vocab * (element_size + 4)
    if not cuda:
        total += batch * shape.heads * tokens * tokens * element_size
    return total


def _refusal(needs, device, dtype, device_free, host_free, shared, suggestions=()) -> str:
    best = needs[-1]  # the way that asks least of the device
    parts = sorted(best.components, key=lambda c: -c.nbytes)
    listed = ", ".join(f"{c.what} {_gb(c.nbytes)}" for c in parts if c.where != "file")
    if shared:
        have = f"{_gb(best.device + best.host)} needed, {_gb(device_free)} free on {device}"
    else:
        have = (
            f"{_gb(best.device)} needed on {device} with {_gb(device_free)} free, "
            f"{_gb(best.host)} in host memory with {_gb(host_free)} free"
        )
    tail = f"; would fit: {'; '.join(suggestions)}" if suggestions else ""
    return f"the experts do not fit even {best.way} ({dtype}): {have} ({listed}){tail}"


def _suggestions(shape, experts, best, generation, device_free, host_free, shared, dtype, cuda):
    """What would make the smallest way fit: a smaller batch, fewer experts, LoRA, a dtype."""
    out = []
    e = ELEMENT_SIZE[dtype]
    over_device = best.device + (best.host if shared else 0) - device_free
    kv = sum(c.nbytes for c in best.components if c.what.startswith(("KV", "activations")))
    if generation is not None and best.batch and 0 < over_device < kv:
        per_batch = kv / best.batch
        batch = int(best.batch - -(-over_device // per_batch))
        if batch >= 1:
            out.append(f"a batch of {batch} (--batch-size {batch})")
    rows = [c for c in best.components if c.what.startswith("expert ") and c.where != "file"]
    if rows and len(experts) > 1:
        per = max(c.nbytes for c in rows)
        over = max(over_device, 0 if shared else best.host - host_free)
        keep = len(experts) - int(-(-over // per))
        if 1 <= keep < len(experts):
            out.append(f"{keep} expert(s) instead of {len(experts)}")
    if any(not x.lora for x in experts):
        lora = ExpertSize.lora_of_shape("x", shape, 16, LORA_TARGETS)
        out.append(
            f"LoRA experts (rank 16 takes {_gb(lora.factor_values * 4)}, a full expert "
            f"{_gb(shape.numel * e)})"
        )
    if dtype == "float32" and cuda:
        out.append("--dtype bfloat16 (half of every weight)")
    working = shape.numel * e
    if working > device_free:
        out.append(f"a device with more than {_gb(working)} free for the working model alone")
    return out
