"""The merger a memory plan chooses, and the plan of an inspected expert set.

:func:`plan_experts` reads only what :class:`~merging.expert_set.ExpertSet` already read (the
config and the file headers) and the machine's free memory; :func:`open_merger` then builds the
resident merger or the streamed one as the plan says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from merging.device import resolve_device, resolve_dtype
from merging.expert_set import ExpertSet
from merging.layout import match_key
from merging.plan import MemoryPlan, PlanError, plan_memory
from merging.sizes import ExpertSize, Generation, ModelShape, numel

UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9}
UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40})


def parse_bytes(text: str) -> int:
    """``"20GB"``, ``"20 GiB"``, ``"2e10"`` as a number of bytes."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(text))
    try:
        value = float(m.group(1)) if m else float("nan")
    except ValueError:
        value = float("nan")
    unit = m.group(2).lower() if m else ""
    if not m or unit not in UNITS or not value >= 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not an amount of memory (write 20GB, 16GiB or 2e10)")
    return int(value * UNITS[unit])


def free_memory(device: torch.device) -> tuple[int, int]:
    """``(device free, host available)`` in bytes; on a CPU both are the host's."""
    import psutil

    host = int(psutil.virtual_memory().available)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), host
    return host, host


def streamable(experts: ExpertSet, shape: ModelShape) -> bool:
    """Whether every parameter of the model has a base tensor of its size (the streamed merger
    reads checkpoints directly, without ``transformers``' loading)."""
    keys = set(experts.base.tensors)
    for name, s in shape.shapes.items():
        key = match_key(name, keys)
        if key is None:
            return False
        if numel(experts.base.tensors[key].shape) != numel(s):
            return False
    return True


def plan_experts(
    experts: ExpertSet,
    *,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    placement: str = "auto",
    generation: Generation | None = None,
    heads: Sequence[str] = (),
    whole_tensors: bool = False,
    device_memory: int | None = None,
    host_memory: int | None = None,
    reserved: int = 0,
    trust_remote_code: bool = False,
) -> MemoryPlan:
    """The memory plan for ``experts`` on ``device``; raises :class:`PlanError` if nothing
    fits. ``device_memory``/``host_memory`` replace the free memory measured here."""
    from merging.heads import head_bytes

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    free_device, free_host = free_memory(dev)
    if device_memory is not None:
        free_device = device_memory
        if dev.type == "cpu":
            free_host = device_memory
    if host_memory is not None:
        free_host = host_memory
        if dev.type == "cpu" and device_memory is None:
            free_device = host_memory
    shape = ModelShape.from_config(experts.config, trust_remote_code=trust_remote_code)
    sizes = [ExpertSize.of_checkpoint(experts.experts[n]) for n in experts.names]
    base_mappable = ExpertSize.of_checkpoint(experts.base).mappable
    try:
        heads_total = sum(head_bytes(h, dev.type) for h in heads)
    except (OSError, ValueError) as err:
        raise PlanError(f"reward heads: {err}") from None
    return plan_memory(
        shape,
        sizes,
        device=str(dev) if dev.type == "cpu" else f"cuda:{dev.index or 0}",
        dtype=str(dt).removeprefix("torch."),
        device_free=free_device,
        host_free=free_host,
        generation=generation,
        heads_bytes=heads_total,
        placement=placement,
        whole_tensors=whole_tensors,
        base_mappable=base_mappable,
        streamable=streamable(experts, shape),
        reserved=reserved,
    )


def open_merger(
    experts: ExpertSet,
    plan: MemoryPlan,
    *,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    trust_remote_code: bool = False,
):
    """The merger ``plan`` chose: resident, or streamed with its rows where the plan puts them."""
    if plan.way == "resident":
        from merging.resident import ResidentMerger

        return ResidentMerger(
            experts, device=device, dtype=dtype, trust_remote_code=trust_remote_code
        )
    from merging.streamed import StreamedMerger

    return StreamedMerger(
        experts, rows=plan.rows, device=device, dtype=dtype, trust_remote_code=trust_remote_code
    )


__all__ = ["PlanError", "free_memory", "open_merger", "parse_bytes", "plan_experts"]
