"""Choosing the evaluation device and the dtype of resident weights."""

from __future__ import annotations

import os
import re

import torch

CPU_BFLOAT16_ENV = "PARETOMERGE_CPU_BFLOAT16"
"""``0`` (the default) builds the zoo in float32 on every CPU kind, ``1`` in bfloat16 on any
CPU, ``auto`` in bfloat16 where the CPU computes it natively (:func:`build_in_bfloat16`)."""
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device_name(name: str) -> str:
    """``name`` if it names a device paretomerge can use (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``), else ``ValueError`` in one line; whether it is present is checked
    when it is used (:func:`resolve_device`)."""
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    return name


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = device if isinstance(device, torch.device) else torch.device(check_device_name(device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` or ``"auto"``: bfloat16 on CUDA, float32 on CPU."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)} or auto")
    return DTYPES[dtype]


def build_in_bfloat16(device: str | torch.device) -> bool:
    """Whether the zoo builder trains, and writes its training answers, in bfloat16 autocast on
    ``device``: on a CUDA device that supports it; on a CPU only where
    ``PARETOMERGE_CPU_BFLOAT16`` asks for it (``1``, or ``auto`` where the CPU computes it
    natively). A float32 build is the same model on every CPU kind (a Xeon and an AMD EPYC
    ended RiC training with the same margins to two decimals), and its recipe is the one
    measured; a bfloat16 build trains on other answers and is another model, built in about two
    thirds of the time where the CPU computes bfloat16 natively (:func:`cpu_bfloat16_native`)
    and several times as long where it does not."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type != "cpu":
        return False
    asked = os.environ.get(CPU_BFLOAT16_ENV, "0").strip().lower()
    if asked not in ("", "0", "1", "auto"):
        raise ValueError(f"{CPU_BFLOAT16_ENV}={asked!r}: write 0 (float32), 1 (bfloat16) or auto")
    return asked == "1" or (asked == "auto" and cpu_bfloat16_native())


def build_dtype(device: str | torch.device) -> str:
    """``"bfloat16"`` or ``"float32"``: what the zoo builder trains in on ``device``
    (:func:`build_in_bfloat16`), as its step records and its answers' dtype name it."""
    return "bfloat16" if build_in_bfloat16(device) else "float32"


def cpu_bfloat16_native() -> bool:
    """Whether this CPU computes bfloat16 natively: AVX-512 BF16 or AMX tiles. oneDNN's own
    check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is not the test: it says yes on any
    AVX-512 CPU, where a bfloat16 matrix product is emulated (four times slower than float32 on
    a 2-core Xeon with AVX-512 but no BF16)."""
    return _cpu_has("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_avx512() -> bool:
    """Whether this CPU has AVX-512 (its float32 matrix products are about 1.5 times as fast as
    AVX2's: what the zoo builder's estimates go by)."""
    return _cpu_has("_is_avx512_supported")


def _cpu_has(*checks: str) -> bool:
    """Whether ``torch.cpu`` reports any of these instruction sets (its private checks; False
    where this torch lacks one)."""
    try:
        return any(bool(getattr(torch.cpu, check)()) for check in checks)
    except (AttributeError, RuntimeError):
        return False
