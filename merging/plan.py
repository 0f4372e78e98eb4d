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
another dtype). The sizes come from :mod:`merging.sizes`; what each way takes, component by
component, from :mod:`merging.footprint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from merging.footprint import ROWS_OF_WAY, WAYS, Component, Footprint, PlanInputs, footprint
from merging.sizes import ELEMENT_SIZE, ExpertSize, Generation, ModelShape, gb

PLACEMENTS = ("auto", *WAYS)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The weights a LoRA expert adapts when the plan suggests LoRA (every projection)."""


class PlanError(ValueError):
    """The experts cannot be held on this machine as asked: one line, nothing loaded."""


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
        free = f"{gb(self.device_free)} free"
        host = "" if self.shared else f"; host memory {gb(self.host_free)} free"
        lines = [f"memory plan: {self.way} on {self.device} ({self.dtype}, {free}{host})"]
        width = max(len(c.what) for c in self.components)
        for c in self.components:
            place = {"host": "host, pinned" if self.device.startswith("cuda") else "host"}.get(
                c.where, c.where
            )
            lines.append(f"  {c.what:<{width}}  {gb(c.nbytes):>9}  {place}")
        if self.shared:
            total = f"{gb(self.device_bytes + self.host_bytes)} of {gb(self.device_free)}"
        else:
            total = (
                f"device {gb(self.device_bytes)} of {gb(self.device_free)}, "
                f"host {gb(self.host_bytes)} of {gb(self.host_free)}"
            )
        lines.append(
            f"  total {total}; the resident way needs {gb(self.resident_bytes)} on the device"
        )
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


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
    experts = tuple(experts)
    ask = PlanInputs(
        shape=shape,
        experts=experts,
        device=device,
        dtype=dtype,
        device_free=device_free,
        host_free=host_free,
        generation=generation,
        heads_bytes=heads_bytes,
        whole_tensors=whole_tensors,
        mappable=base_mappable and all(x.mappable for x in experts if not x.lora),
        streamable=streamable,
        reserved=reserved,
    )
    chosen = _first_that_fits(ask) if placement == "auto" else _forced(ask, placement)
    return _memory_plan(ask, chosen)


def _memory_plan(ask: PlanInputs, chosen: Footprint) -> MemoryPlan:
    """The plan of the way ``chosen``, with what the resident way would need beside it."""
    batch = chosen.batch if chosen.batch is not None else ask.batch_size
    resident = footprint(ask, "resident", batch)
    notes = []
    if chosen.way == "resident" and any(x.lora for x in ask.experts):
        notes.append("LoRA experts are expanded to full weights (the fastest merge when it fits)")
    return MemoryPlan(
        way=chosen.way,
        device=ask.device,
        dtype=ask.dtype,
        device_free=ask.device_free,
        host_free=ask.host_free,
        components=chosen.components,
        batch=chosen.batch,
        resident_bytes=resident.device,
        shared=ask.shared,
        notes=tuple(notes),
    )


def _forced(ask: PlanInputs, placement: str) -> Footprint:
    """The way ``--placement`` names, or :class:`PlanError` saying why it cannot serve."""
    reason = _why_not(ask, placement)
    if reason:
        raise PlanError(f"--placement {placement}: not possible here: {reason}")
    chosen = footprint(ask, placement, ask.batch_size)
    if not _fits(ask, chosen):
        raise PlanError(_refusal(ask, [chosen]))
    return chosen


def _first_that_fits(ask: PlanInputs) -> Footprint:
    """The first way (in :data:`WAYS` order) that can serve and fits, or :class:`PlanError`
    with what would make the last, the least demanding, fit."""
    candidates = [
        footprint(ask, way, ask.batch_size)
        for way in WAYS
        if not (_why_not(ask, way) or (way == "streamed" and not ask.on_cuda))
    ]
    chosen = next((n for n in candidates if _fits(ask, n)), None)
    if chosen is None:
        raise PlanError(_refusal(ask, candidates, _suggestions(ask, candidates[-1])))
    return chosen


def _fits(ask: PlanInputs, n: Footprint) -> bool:
    if ask.shared:
        return n.device + n.host <= ask.device_free
    return n.device <= ask.device_free and n.host <= ask.host_free


def _why_not(ask: PlanInputs, way: str) -> str | None:
    """Why ``way`` cannot serve these experts, or None."""
    if way != "resident" and not ask.streamable:
        return "the checkpoints' tensor names do not match the model's parameters"
    if way == "factorised" and not any(x.lora for x in ask.experts):
        return "no expert is a LoRA adapter"
    if way == "mmap" and not ask.mappable:
        return "the base or a full expert is not a safetensors file (GGUF or .bin)"
    return None


def _refusal(ask: PlanInputs, needs: Sequence[Footprint], suggestions: Sequence[str] = ()) -> str:
    """:class:`PlanError`'s message: what the least demanding of ``needs`` asks, part by part,
    what is free, and ``suggestions``."""
    best = needs[-1]  # the way that asks least of the device
    parts = sorted(best.components, key=lambda c: -c.nbytes)
    listed = ", ".join(f"{c.what} {gb(c.nbytes)}" for c in parts if c.where != "file")
    device, device_free = ask.device, ask.device_free
    if ask.shared:
        have = f"{gb(best.device + best.host)} needed, {gb(device_free)} free on {device}"
    else:
        have = (
            f"{gb(best.device)} needed on {device} with {gb(device_free)} free, "
            f"{gb(best.host)} in host memory with {gb(ask.host_free)} free"
        )
    tail = f"; would fit: {'; '.join(suggestions)}" if suggestions else ""
    return f"the experts do not fit even {best.way} ({ask.dtype}): {have} ({listed}){tail}"


def _suggestions(ask: PlanInputs, best: Footprint) -> list[str]:
    """What would make the smallest way fit: a smaller batch, fewer experts, LoRA, a dtype."""
    out = []
    shape, experts, device_free = ask.shape, ask.experts, ask.device_free
    over_device = best.device + (best.host if ask.shared else 0) - device_free
    kv = sum(c.nbytes for c in best.components if c.what.startswith(("KV", "activations")))
    if ask.generation is not None and best.batch and 0 < over_device < kv:
        per_batch = kv / best.batch
        batch = int(best.batch - -(-over_device // per_batch))
        if batch >= 1:
            out.append(f"a batch of {batch} (--batch-size {batch})")
    rows = [c for c in best.components if c.what.startswith("expert ") and c.where != "file"]
    per = max((c.nbytes for c in rows), default=0)  # 0: LoRA adapters that adapt nothing
    if per > 0 and len(experts) > 1:
        over = max(over_device, 0 if ask.shared else best.host - ask.host_free)
        keep = len(experts) - int(-(-over // per))
        if 1 <= keep < len(experts):
            out.append(f"{keep} expert(s) instead of {len(experts)}")
    if any(not x.lora for x in experts):
        lora = ExpertSize.lora_of_shape("x", shape, 16, LORA_TARGETS)
        out.append(
            f"LoRA experts (rank 16 takes {gb(lora.factor_values * 4)}, a full expert "
            f"{gb(shape.numel * ask.element_size)})"
        )
    if ask.dtype == "float32" and ask.on_cuda:
        out.append("--dtype bfloat16 (half of every weight)")
    working = shape.numel * ask.element_size
    if working > device_free:
        out.append(f"a device with more than {gb(working)} free for the working model alone")
    return out
