"""The full weights a streamed merge reads: the base and each full expert, by flat range.

Row 0 is the base, row ``i`` the ``i``-th full expert, each in the order of a
:class:`~merging.layout.FlatLayout`. The rows live where the memory plan puts them:

* :class:`StackRows` on the device, or in host memory (pinned on CUDA, so that copies to the
  device run beside the arithmetic), as one ``(rows, values)`` tensor;
* :class:`FileRows` in the checkpoints' own safetensors files, memory-mapped and read a chunk
  at a time (:mod:`merging.tensor_files`); checkpoints held in memory (GGUF) are read there.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

from merging.checkpoints import Checkpoint, check_finite
from merging.errors import CheckpointError
from merging.layout import FlatLayout, match_key
from merging.sizes import numel
from merging.tensor_files import SafetensorsFile

CHECK_CHUNK = 1 << 24
"""Values per step when rows are checked for NaN and Inf or copied into a stack."""


class RowSource:
    """One full checkpoint's parameters in layout order, each a flat tensor read in place."""

    def __init__(self, ckpt: Checkpoint, layout: FlatLayout, who: str):
        self.who, self.layout = who, layout
        keys = set(ckpt.tensors)
        self.keys: dict[str, str] = {}
        for name in layout.names:
            key = match_key(name, keys)
            if key is None:
                raise CheckpointError(f"{who}: no tensor for parameter {name}")
            want = layout.offsets[name][1] - layout.offsets[name][0]
            shape = ckpt.tensors[key].shape
            if numel(shape) != want:
                raise CheckpointError(
                    f"{who}: tensor {key} has shape {shape}, the model's {name} has "
                    f"{layout.shapes[name]}"
                )
            self.keys[name] = key
        self._files: dict[str, SafetensorsFile] = {}
        self._ckpt = ckpt
        self._memory: dict[str, torch.Tensor] = {}
        self.mapped = ckpt._loaded is None and all(
            ckpt._files.get(k, None) is not None and ckpt._files[k].suffix == ".safetensors"
            for k in self.keys.values()
        )

    def flat(self, name: str) -> torch.Tensor:
        """Parameter ``name``'s values as stored (1-D; mapped from its file where it can be)."""
        key = self.keys[name]
        if self.mapped:
            path = self._ckpt._files[key]
            f = self._files.get(str(path))
            if f is None:
                f = self._files[str(path)] = SafetensorsFile(path)
            return f.flat(key)
        if name not in self._memory:
            self._memory[name] = self._ckpt.read(key).reshape(-1)
        return self._memory[name]

    def release(self, name: str, lo: int, hi: int) -> None:
        """Let go of the pages holding values ``[lo, hi)`` of ``name`` (mapped files only)."""
        if self.mapped:
            key = self.keys[name]
            self._files[str(self._ckpt._files[key])].release(key, lo, hi)

    def check_finite(self) -> None:
        """Raise :class:`CheckpointError` if any value is NaN or Inf (one pass, in chunks)."""
        for name in self.layout.names:
            values = self.flat(name)
            for lo in range(0, values.numel(), CHECK_CHUNK):
                hi = min(values.numel(), lo + CHECK_CHUNK)
                check_finite(self.who, self.keys[name], values[lo:hi])
                self.release(name, lo, hi)


class FileRows:
    """Rows read from their checkpoints at each merge (``placement == "file"``)."""

    placement = "file"

    def __init__(self, sources: Sequence[RowSource], layout: FlatLayout):
        self.sources, self.layout = list(sources), layout
        self.count = len(self.sources)
        self._starts = [layout.offsets[n][0] for n in layout.names]

    def dtype(self) -> torch.dtype:
        """The stored dtype of the first parameter (what the files hold)."""
        return self.sources[0].flat(self.layout.names[0]).dtype

    def gather(self, rows: Sequence[int], lo: int, hi: int, out: torch.Tensor) -> None:
        """``out[j] = row rows[j]`` over ``[lo, hi)``, converted to ``out``'s dtype."""
        layout = self.layout
        i = bisect.bisect_right(self._starts, lo) - 1
        while i < len(layout.names) and self._starts[i] < hi:
            name = layout.names[i]
            plo, phi = layout.offsets[name]
            a, b = max(lo, plo), min(hi, phi)
            if b > a:
                for j, r in enumerate(rows):
                    source = self.sources[r]
                    out[j, a - lo : b - lo].copy_(source.flat(name)[a - plo : b - plo])
                    source.release(name, a - plo, b - plo)
            i += 1

    def view(self, rows: Sequence[int], lo: int, hi: int) -> torch.Tensor | None:
        return None


class StackRows:
    """Rows held in one ``(rows, values)`` tensor: on the device, or in host memory."""

    def __init__(self, stack: torch.Tensor, placement: str):
        self.stack, self.placement = stack, placement
        self.count = stack.shape[0]

    @classmethod
    def copy_of(
        cls, files: FileRows, *, device: torch.device, dtype: torch.dtype, pin: bool = False
    ) -> StackRows:
        """The rows of ``files`` copied into memory on ``device`` (pinned host memory if
        ``pin``), a chunk at a time."""
        values = files.layout.numel
        if pin:
            stack = torch.empty((files.count, values), dtype=dtype, pin_memory=True)
        else:
            stack = torch.empty((files.count, values), dtype=dtype, device=device)
        rows = list(range(files.count))
        for lo in range(0, values, CHECK_CHUNK):
            hi = min(values, lo + CHECK_CHUNK)
            files.gather(rows, lo, hi, stack[:, lo:hi])
        placement = (
            "host" if pin or (stack.device.type == "cpu" and device.type != "cpu") else ("device")
        )
        return cls(stack, placement)

    def dtype(self) -> torch.dtype:
        return self.stack.dtype

    def gather(self, rows: Sequence[int], lo: int, hi: int, out: torch.Tensor) -> None:
        for j, r in enumerate(rows):
            out[j].copy_(self.stack[r, lo:hi], non_blocking=True)

    def view(self, rows: Sequence[int], lo: int, hi: int) -> torch.Tensor | None:
        """The rows as a view when they are consecutive (no copy)."""
        rows = list(rows)
        if rows and rows == list(range(rows[0], rows[0] + len(rows))):
            return self.stack[rows[0] : rows[0] + len(rows), lo:hi]
        return None
