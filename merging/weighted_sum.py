"""The one arithmetic every linear merge does: a weighted sum of weight rows, in float32.

``out = sum_i c_i * rows[i]`` as one matrix-vector product. In float32 it writes ``out``
directly (on the CPU this is the resident merger's arithmetic since its first release). In
bfloat16 or float16 the rows are widened to float32 a chunk at a time, summed in float32 with
float32 coefficients, and rounded once when written: the only rounding is the storage's.
"""

from __future__ import annotations

import torch

CPU_CHUNK = 1 << 18
"""Values per matrix-vector call on the CPU: a chunk small enough for the L2 cache lets the
kernel stream each row once (about 20% faster than one call over the whole range)."""
DEVICE_CHUNK = 1 << 24
"""Values per call on a GPU when rows must be widened to float32 (64 MiB of float32 a row)."""


def coefficients(values, device: torch.device) -> torch.Tensor:
    """The weights as a float32 vector (never rounded to the storage dtype)."""
    return torch.tensor([float(v) for v in values], dtype=torch.float32, device=device)


def weighted_sum(rows: torch.Tensor, c: torch.Tensor, out: torch.Tensor) -> None:
    """``out = rows.T @ c`` for ``rows`` of shape ``(k, n)`` and ``out`` of ``n`` values.

    ``c`` is float32 (:func:`coefficients`); float32 rows and output are computed in one
    product, others through a float32 temporary.
    """
    if rows.dtype == torch.float32 and out.dtype == torch.float32:
        torch.mv(rows.T, c, out=out)
    else:
        out.copy_(torch.mv(rows.float().T, c))
