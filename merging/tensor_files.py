"""Safetensors files memory-mapped: any tensor's values read in place, pages let go after use.

The streamed merger reads each expert a chunk at a time straight from its files. ``safetensors``
opens a file as one mapping but has no way to give a flat range of a tensor, nor to let the
pages already read go; so the header (8 bytes of length, then JSON: dtype, shape and byte
offsets of each tensor) is read here, the file mapped once, each tensor seen as a flat tensor
over the mapping, and the pages of a range dropped from this process (``MADV_DONTNEED``) once
they are used. The operating system's page cache may keep them; this process's resident memory
does not grow with the files it reads.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import torch

from merging.errors import CheckpointError

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
PAGE = mmap.PAGESIZE


class SafetensorsFile:
    """One ``.safetensors`` file, mapped: :meth:`flat` gives a tensor's values without copying."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        size = self.path.stat().st_size
        with self.path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{self.path}: not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                raise CheckpointError(f"{self.path}: truncated safetensors header")
            header = json.loads(f.read(length))
        self.data_start = 8 + length
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int]] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            if self.data_start + end > size:
                raise CheckpointError(f"{self.path}: tensor {name} lies past the end of the file")
            if entry["dtype"] not in DTYPES:
                raise CheckpointError(f"{self.path}: tensor {name} has dtype {entry['dtype']}")
            self.entries[name] = (DTYPES[entry["dtype"]], tuple(entry["shape"]), begin)
        self._file = self.path.open("rb")
        # a private mapping: writable as torch wants its buffers, never written back
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_COPY)
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)

    def flat(self, name: str) -> torch.Tensor:
        """Tensor ``name``'s values as a 1-D tensor over the mapped file (no copy)."""
        dtype, shape, begin = self.entries[name]
        count = 1
        for d in shape:
            count *= d
        if count == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(self._map, dtype=dtype, count=count, offset=self.data_start + begin)

    def release(self, name: str, lo: int, hi: int) -> None:
        """Drop from this process the whole pages that hold values ``[lo, hi)`` of ``name``."""
        if not hasattr(mmap, "MADV_DONTNEED"):
            return
        dtype, _, begin = self.entries[name]
        size = torch.empty(0, dtype=dtype).element_size()
        start = self.data_start + begin + lo * size
        end = self.data_start + begin + hi * size
        first = -(-start // PAGE) * PAGE
        last = end // PAGE * PAGE
        if last > first:
            self._map.madvise(mmap.MADV_DONTNEED, first, last - first)

    def release_all(self) -> None:
        """Drop every page of the file from this process."""
        if hasattr(mmap, "MADV_DONTNEED") and len(self._map):
            self._map.madvise(mmap.MADV_DONTNEED, 0, len(self._map) // PAGE * PAGE)


def float32_bytes(folder: str | Path) -> int:
    """Bytes of a folder's safetensors weights once loaded in float32 (headers only), plus its
    ``*.bin`` files as stored."""
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        return 0
    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += 4 * n
    return total + sum(f.stat().st_size for f in folder.glob("*.bin"))
