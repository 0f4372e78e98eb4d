"""LoRA adapters as experts: their factors, their full deltas and their saved whole weights.

An adapter's task vector is the full delta ``B @ A * scale`` of every adapted weight (never A
and B averaged separately), transposed for embeddings and ``fan_in_fan_out`` layers, plus its
``modules_to_save`` weights minus the base. Reading an adapter's header is
:func:`merging.checkpoints.inspect_checkpoint`'s; this module reads its tensors (an adapter is
small: they are read once and kept) and gives them to the mergers factorised
(:func:`lora_factors`) or expanded (:func:`lora_deltas`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from merging.checkpoints import Checkpoint

LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+?)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$"
)


def saved_module_name(key: str) -> str:
    """The model weight a saved whole tensor replaces: ``modules_to_save`` copies, and the
    ``base_layer`` of an adapted embedding (PEFT saves it when the vocabulary may have been
    resized, as with tied embeddings)."""
    key = key.removeprefix("base_model.model.")
    key = re.sub(r"\.modules_to_save(\.[^.]+)?", "", key)
    return key.replace(".base_layer.", ".")


def lora_modules(keys) -> dict[str, dict]:
    """``module -> {"A": key, "B": key, "embedding": bool}`` of an adapter's tensor keys."""
    modules: dict[str, dict] = {}
    for key in keys:
        m = LORA_KEY.match(key)
        if not m:
            continue
        entry = modules.setdefault(m["module"], {"embedding": False})
        entry[m["part"][-1]] = key
        entry["embedding"] = entry["embedding"] or "embedding" in m["part"]
    return modules


def lora_state(ckpt: Checkpoint) -> dict[str, torch.Tensor]:
    """Every tensor of a LoRA adapter (read once, then kept: an adapter is small)."""
    if ckpt.lora is None:
        raise ValueError(f"{ckpt.name}: not a LoRA adapter")
    if ckpt._loaded is None:
        from safetensors.torch import load_file

        ckpt._loaded = {}
        for path in sorted(set(ckpt._files.values())):
            ckpt._loaded.update(load_file(str(path)))
    return ckpt._loaded


def _pattern_value(patterns: Mapping[str, float], module: str, default: float) -> float:
    for pattern, value in patterns.items():
        if re.match(rf"^(.*\.)?{pattern}$", module):
            return value
    return default


@dataclass(frozen=True)
class LoraFactor:
    """One adapted weight of a LoRA expert: ``delta = scale * B @ A``, transposed for
    embeddings and ``fan_in_fan_out`` layers (GPT-2's Conv1D)."""

    weight: str
    b: torch.Tensor
    a: torch.Tensor
    scale: float
    transposed: bool

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])

    @property
    def left(self) -> torch.Tensor:
        """``L`` of ``delta = scale * L @ R`` in the weight's own layout."""
        return self.a.T if self.transposed else self.b

    @property
    def right(self) -> torch.Tensor:
        return self.b.T if self.transposed else self.a

    def expand(self) -> torch.Tensor:
        """The full delta, ``(B @ A) * scale`` (transposed where the layout is)."""
        delta = (self.b @ self.a) * self.scale
        return delta.T if self.transposed else delta


def lora_factors(ckpt: Checkpoint) -> Iterator[LoraFactor]:
    """The factors of every weight a LoRA adapter changes, in float32, unexpanded.

    ``scale = lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA, per module ``rank_pattern`` and
    ``alpha_pattern`` honoured).
    """
    cfg, raw = ckpt.lora, lora_state(ckpt)
    for module, parts in lora_modules(raw).items():
        a, b = raw[parts["A"]].float(), raw[parts["B"]].float()
        r = a.shape[0]
        alpha = _pattern_value(cfg.get("alpha_pattern") or {}, module, cfg.get("lora_alpha", r))
        scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        transposed = bool(parts["embedding"] or cfg.get("fan_in_fan_out"))
        yield LoraFactor(f"{module}.weight", b, a, scale, transposed)


def lora_saved(ckpt: Checkpoint) -> Iterator[tuple[str, torch.Tensor]]:
    """``(weight name, replacement)`` of an adapter's ``modules_to_save`` weights."""
    for key, tensor in lora_state(ckpt).items():
        if not LORA_KEY.match(key):
            yield saved_module_name(key), tensor


def lora_deltas(ckpt: Checkpoint, base_tensor) -> Iterator[tuple[str, torch.Tensor]]:
    """``(weight name, full delta)`` of every weight a LoRA adapter changes, in float32.

    ``delta = B @ A * scale`` (:class:`LoraFactor`), transposed for embeddings and for
    ``fan_in_fan_out`` layers. ``modules_to_save`` weights give ``saved - base``;
    ``base_tensor(name)`` returns the base weight.
    """
    if ckpt.lora is None:
        raise ValueError(f"{ckpt.name}: not a LoRA adapter")
    for f in lora_factors(ckpt):
        yield f.weight, f.expand()
    for target, tensor in lora_saved(ckpt):
        yield target, tensor.float() - base_tensor(target).float()
