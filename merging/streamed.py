"""A merger whose experts need not fit on the device: streamed rows and factorised LoRA.

The working model lives on the evaluation device, every parameter a view of one flat buffer
(:class:`~merging.layout.FlatLayout`), as in the resident merger. What differs is where the
experts are (the memory plan, :mod:`merging.plan`, decides):

* the base and the full experts are rows (:mod:`merging.rows`) on the device, in host memory
  (pinned on CUDA) or in their own safetensors files (memory-mapped); a merge reads them a
  chunk at a time and writes the working model in place. On CUDA the copy of the next chunk
  runs on its own stream while this one is summed;
* LoRA experts stay factorised (:mod:`merging.lora_targets`): an adapted weight becomes
  ``W = c * W_base + sum_full w_j theta_j + L' @ R'`` a slab of rows at a time, and no expert's
  full delta is ever made; the weights no adapter touches are the base's.

Sums are accumulated in float32 and rounded once to the storage dtype
(:mod:`merging.weighted_sum`). In float32 on the CPU, with full experts, every value equals
the resident merger's bit for bit: the same rows, the same coefficients, the same products.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch

from merging.checkpoints import LORA, Checkpoint, check_finite
from merging.device import resolve_device, resolve_dtype
from merging.expert_set import ExpertSet
from merging.layout import FlatLayout, FlatMerger, match_key
from merging.lora_targets import LoraTargets
from merging.paths import pretrained_source
from merging.rows import FileRows, RowSource, StackRows
from merging.weighted_sum import CPU_CHUNK, DEVICE_CHUNK, coefficients, weighted_sum

LOG = logging.getLogger(__name__)
ROW_PLACES = ("device", "host", "file")


def empty_model(base: Checkpoint, *, trust_remote_code: bool = False):
    """The base's architecture with no weights: parameters on the meta device (to be bound to
    a flat buffer), buffers such as rotary tables computed, the base's generation config."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, GenerationConfig

    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(base.config, trust_remote_code=trust_remote_code)
    model.tie_weights()  # init_empty_weights leaves tied weights apart
    folder, source = pretrained_source(base.path)
    try:
        model.generation_config = GenerationConfig.from_pretrained(folder, **source)
    except (OSError, ValueError, TypeError):
        model.generation_config = GenerationConfig.from_model_config(base.config)
    return model.eval().requires_grad_(False)


class StreamedMerger(FlatMerger):
    """The working model on ``device``; the experts' rows where ``rows`` says; LoRA factorised.

    Args:
        experts: a validated :class:`ExpertSet` (full experts, LoRA experts, or both).
        rows: where the base and the full experts live: ``"device"``, ``"host"`` (pinned on
            CUDA, copied to the device a chunk at a time) or ``"file"`` (memory-mapped).
        device, dtype: as for :class:`~merging.resident.ResidentMerger`.
    """

    def __init__(
        self,
        experts: ExpertSet,
        *,
        rows: str = "file",
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = "auto",
        trust_remote_code: bool = False,
    ):
        if rows not in ROW_PLACES:
            raise ValueError(f"rows must be one of {', '.join(ROW_PLACES)}; got {rows!r}")
        self.experts = experts
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        model = empty_model(experts.base, trust_remote_code=trust_remote_code)
        self.layout = layout = FlatLayout.of(model)
        kinds = {n: experts.experts[n].kind for n in experts.names}
        self.full = tuple(n for n in experts.names if kinds[n] != LORA)
        self.lora = tuple(n for n in experts.names if kinds[n] == LORA)
        sources = [RowSource(experts.base, layout, experts.who())]
        sources += [RowSource(experts.experts[n], layout, experts.who(n)) for n in self.full]
        files = FileRows(sources, layout)
        if rows == "file":
            for source in sources:
                source.check_finite()
            self.rows = files
        else:
            pin = rows == "host" and self.device.type == "cuda"
            where = self.device if rows == "device" else torch.device("cpu")
            self.rows = StackRows.copy_of(files, device=where, dtype=self.dtype, pin=pin)
            self._check_stack(sources)
        self.targets = LoraTargets(experts, self.lora, layout, self.device, sources[0].flat)
        self.flat = torch.empty(layout.numel, dtype=self.dtype, device=self.device)
        layout.bind(model, self.flat)
        model.to(device=self.device, dtype=self.dtype)
        _load_buffers(model, experts.base)
        self.model = model
        on_cpu = self.device.type == "cpu"
        self.chunk = CPU_CHUNK if on_cpu else DEVICE_CHUNK
        self._staging = self._make_staging()
        self.set_linear([0.0] * len(experts.names), base_weight=1.0)
        if isinstance(self.rows, FileRows):
            for source in sources:
                for f in source._files.values():
                    f.release_all()

    # -- construction ------------------------------------------------------------------

    def _check_stack(self, sources) -> None:
        """NaN and Inf, looked for where it is fastest: the sources when they are held on a
        GPU (benchmarks build them there), else the copy just made."""
        on_gpu = all(not s.mapped and s.flat(self.layout.names[0]).is_cuda for s in sources)
        if on_gpu and self.rows.stack.device.type != "cuda":
            for source in sources:
                source.check_finite()
            return
        for r, source in enumerate(sources):
            for name in self.layout.names:
                lo, hi = self.layout.offsets[name]
                check_finite(source.who, source.keys[name], self.rows.stack[r, lo:hi])

    def _make_staging(self):
        """Buffers the rows pass through: none when they are views on the device; one on the
        CPU; two on the device (and two pinned in host memory for files) on CUDA."""
        k = self.rows.count
        width = max([self.chunk, *(self._step(n) for n in self.targets.targets)])
        if isinstance(self.rows, StackRows) and self.rows.placement == "device":
            return None
        if self.device.type != "cuda":
            return {"cpu": torch.empty((k, width), dtype=self.dtype)}
        staging = {
            "device": [
                torch.empty((k, width), dtype=self.dtype, device=self.device) for _ in range(2)
            ],
            "stream": torch.cuda.Stream(self.device),
        }
        if isinstance(self.rows, FileRows):
            staging["host"] = [
                torch.empty((k, width), dtype=self.dtype, pin_memory=True) for _ in range(2)
            ]
        return staging

    # -- merging -----------------------------------------------------------------------

    @torch.no_grad()
    def set_linear(self, weights: Sequence[float], base_weight: float = 0.0) -> None:
        """``theta = base_weight * theta_base + sum_i weights_i * theta_i``, in place."""
        self._check_count(weights)
        self._merge([(0, self.layout.numel, list(weights))], base_weight)

    @torch.no_grad()
    def set_blockwise(self, block_weights: Sequence[Sequence[float]]) -> None:
        """One weight vector per contiguous block of layers (see :mod:`merging.architecture`)."""
        ranges = self.layout.block_ranges(len(block_weights))
        for w in block_weights:
            self._check_count(w)
        self._merge(
            [(lo, hi, list(w)) for (lo, hi), w in zip(ranges, block_weights, strict=True)], 0.0
        )

    def _merge(self, pieces: list[tuple[int, int, list[float]]], base_weight: float) -> None:
        """Write ``[lo, hi)`` of the working model for each ``(lo, hi, weights)``."""
        index = {n: i for i, n in enumerate(self.experts.names)}
        tasks = []
        for lo, hi, weights in pieces:
            if hi <= lo:
                continue
            full_w = [weights[index[n]] for n in self.full]
            lora_w = [float(weights[index[n]]) for n in self.lora]
            c_base = base_weight + sum(lora_w)
            rows = ([0] if c_base != 0 else []) + list(range(1, 1 + len(self.full)))
            c = coefficients(([c_base] if c_base != 0 else []) + full_w, self.device)
            for name in self.layout.names_in(lo, hi):
                for s, e in self._chunks(name):
                    tasks.append((name, s, e, rows, c, lora_w))
        scaled: dict[tuple[str, int], torch.Tensor | None] = {}
        for (name, s, e, _, c, lora_w), values in zip(tasks, self._stream(tasks), strict=True):
            out = self.flat[s:e]
            acc = out if self.dtype == torch.float32 else torch.empty(e - s, device=self.device)
            if values is None:
                acc.zero_()
            else:
                weighted_sum(values, c, acc)
            target = self.targets.targets.get(name)
            if target is not None and any(lora_w):
                key = (name, id(lora_w))
                if key not in scaled:
                    scaled[key] = target.scaled_left(lora_w)
                plo = self.layout.offsets[name][0]
                if target.left is not None:
                    cols = self.layout.shapes[name][1]
                    r0, r1 = (s - plo) // cols, (e - plo) // cols
                    acc.view(r1 - r0, cols).addmm_(scaled[key][r0:r1], target.right)
                for i, delta in target.dense:
                    if lora_w[i]:
                        acc.add_(delta[s - plo : e - plo], alpha=lora_w[i])
            if acc is not out:
                out.copy_(acc)

    def _chunks(self, name: str) -> Iterator[tuple[int, int]]:
        """Flat ranges of parameter ``name``, at most :attr:`chunk` values each; whole rows of
        a weight that LoRA experts change (so each chunk is a slab of its rows)."""
        lo, hi = self.layout.offsets[name]
        step = self._step(name)
        for s in range(lo, hi, step):
            yield s, min(hi, s + step)

    def _step(self, name: str) -> int:
        target = self.targets.targets.get(name)
        if target is None or target.left is None:
            return self.chunk
        cols = self.layout.shapes[name][1]
        return max(1, self.chunk // cols) * cols

    def _stream(self, tasks) -> Iterator[torch.Tensor | None]:
        """Each task's rows on the device, in order (``None`` when it reads no row)."""
        if self._staging is None:
            for _, s, e, rows, _, _ in tasks:
                yield self.rows.view(rows, s, e) if rows else None
        elif "cpu" in self._staging:
            buffer = self._staging["cpu"]
            for _, s, e, rows, _, _ in tasks:
                if not rows:
                    yield None
                    continue
                values = buffer[: len(rows), : e - s]
                self.rows.gather(rows, s, e, values)
                yield values
        else:
            yield from self._stream_cuda(tasks)

    def _stream_cuda(self, tasks) -> Iterator[torch.Tensor | None]:
        """Double-buffered: while chunk ``j`` is summed on the compute stream, chunk ``j + 1``
        is copied on a copy stream and chunk ``j + 2`` read into pinned memory by the CPU."""
        device_buf, host_buf = self._staging["device"], self._staging.get("host")
        copy_stream = self._staging["stream"]
        copied = [torch.cuda.Event(), torch.cuda.Event()]
        freed: list[torch.cuda.Event | None] = [None, None]

        def stage(j: int) -> None:
            _, s, e, rows, _, _ = tasks[j]
            if not rows:
                return
            b, n = j % 2, e - s
            if host_buf is not None:
                copied[b].synchronize()  # the copy out of this host buffer (chunk j - 2) is done
                self.rows.gather(rows, s, e, host_buf[b][: len(rows), :n])
            with torch.cuda.stream(copy_stream):
                if freed[b] is not None:
                    copy_stream.wait_event(freed[b])  # chunk j - 2 has been summed
                for i, r in enumerate(rows):
                    if host_buf is not None:
                        device_buf[b][i, :n].copy_(host_buf[b][i, :n], non_blocking=True)
                    else:
                        device_buf[b][i, :n].copy_(self.rows.stack[r, s:e], non_blocking=True)
                copied[b].record(copy_stream)

        for j in range(min(2, len(tasks))):
            stage(j)
        for j, (_, s, e, rows, _, _) in enumerate(tasks):
            if not rows:
                yield None
            else:
                b = j % 2
                torch.cuda.current_stream(self.device).wait_event(copied[b])
                yield device_buf[b][: len(rows), : e - s]
                freed[b] = torch.cuda.Event()
                freed[b].record(torch.cuda.current_stream(self.device))
            if j + 2 < len(tasks):
                stage(j + 2)

    @torch.no_grad()
    def set_per_tensor(self, merge) -> None:
        """``merge(name, base, [theta_i]) -> tensor`` for every parameter (mergekit methods);
        a LoRA expert's ``theta_i`` is expanded for one tensor at a time."""
        position = {n: i for i, n in enumerate(self.full)}
        lora_index = {n: i for i, n in enumerate(self.lora)}
        rows = list(range(self.rows.count))
        for name in self.layout.names:
            lo, hi = self.layout.offsets[name]
            shape = self.layout.shapes[name]
            values = self.rows.view(rows, lo, hi)
            if values is None or values.device != self.device:
                values = torch.empty((len(rows), hi - lo), dtype=self.dtype, device=self.device)
                self.rows.gather(rows, lo, hi, values)
            base = values[0].float().view(shape)
            target = self.targets.targets.get(name)
            thetas = []
            for expert in self.experts.names:
                if expert in position:
                    thetas.append(values[1 + position[expert]].float().view(shape))
                    continue
                theta = base.clone()
                if target is not None:
                    i = lora_index[expert]
                    for index, start, end, scale in target.columns:
                        if index == i:
                            theta.addmm_(
                                target.left[:, start:end], target.right[start:end], alpha=scale
                            )
                    for index, delta in target.dense:
                        if index == i:
                            theta.add_(delta.view(shape))
                thetas.append(theta)
            out = merge(name, base, thetas)
            self.flat[lo:hi].copy_(out.reshape(-1))


def _load_buffers(model, base: Checkpoint) -> None:
    """Copy the base checkpoint's persistent buffers (few models store any) into ``model``."""
    keys = set(base.tensors)
    for name, buffer in model.named_buffers():
        key = match_key(name, keys)
        if key is not None:
            buffer.copy_(base.read(key))
