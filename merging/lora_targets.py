"""LoRA experts kept factorised: every adapted weight's factors, all experts side by side.

A LoRA expert ``i`` changes weight ``W`` by ``s_i * L_i @ R_i`` (``B_i @ A_i``, transposed for
embeddings and ``fan_in_fan_out`` layers). Merging with weights ``w`` adds
``sum_i w_i s_i L_i @ R_i``, which is one product ``L' @ R'`` with ``L' = [w_1 s_1 L_1 | ...]``
and ``R' = [R_1; ...]``: ``r_1 + r_2 + ...`` inner values instead of a full delta per expert.
Memory per expert and weight: ``r * (d_in + d_out)`` float32 values, not ``d_in * d_out``.
``modules_to_save`` weights (whole replacements) are kept as dense deltas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from merging.checkpoints import check_finite
from merging.errors import CheckpointError
from merging.expert_set import ExpertSet
from merging.layout import FlatLayout, match_key
from merging.lora import lora_factors, lora_saved


@dataclass
class Target:
    """One weight that LoRA experts change."""

    name: str
    left: torch.Tensor | None = None
    """``(d_out, sum of ranks)``: every expert's ``L_i`` side by side, float32."""
    right: torch.Tensor | None = None
    """``(sum of ranks, d_in)``: every expert's ``R_i`` stacked, float32."""
    columns: list[tuple[int, int, int, float]] = field(default_factory=list)
    """``(expert index, first column, end column, scale)`` of each expert's factor."""
    dense: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    """``(expert index, flat delta)`` of ``modules_to_save`` replacements."""

    def scaled_left(self, weights: Sequence[float]) -> torch.Tensor | None:
        """``L'`` for expert weights ``weights`` (one per LoRA expert): column block ``i``
        times ``w_i * s_i``."""
        if self.left is None:
            return None
        scale = torch.empty(self.left.shape[1], dtype=torch.float32, device=self.left.device)
        for index, start, end, s in self.columns:
            scale[start:end] = float(weights[index]) * s
        return self.left * scale


class LoraTargets:
    """The factors of LoRA experts ``names`` of ``experts``, on ``device``, by parameter.

    ``base_flat(name)`` gives the base's values of a parameter (for ``modules_to_save``).
    """

    def __init__(
        self,
        experts: ExpertSet,
        names: Sequence[str],
        layout: FlatLayout,
        device: torch.device,
        base_flat: Callable[[str], torch.Tensor],
    ):
        self.names = tuple(names)
        self.targets: dict[str, Target] = {}
        params = set(layout.names)
        lefts: dict[str, list[torch.Tensor]] = {}
        rights: dict[str, list[torch.Tensor]] = {}
        for index, expert in enumerate(self.names):
            ckpt = experts.experts[expert]
            who = experts.who(expert)
            for f in lora_factors(ckpt):
                name = match_key(f.weight, params)
                if name is None:
                    continue  # a weight the model does not hold as a parameter (tied copy)
                if (f.left.shape[0], f.right.shape[1]) != layout.shapes[name]:
                    raise CheckpointError(
                        f"{who}: LoRA factors of {f.weight} give shape "
                        f"{(f.left.shape[0], f.right.shape[1])}, the model has "
                        f"{layout.shapes[name]}"
                    )
                check_finite(who, f.weight + " (lora_A)", f.a)
                check_finite(who, f.weight + " (lora_B)", f.b)
                target = self.targets.setdefault(name, Target(name))
                start = sum(t.shape[1] for t in lefts.get(name, []))
                target.columns.append((index, start, start + f.rank, f.scale))
                lefts.setdefault(name, []).append(f.left)
                rights.setdefault(name, []).append(f.right)
            for weight, saved in lora_saved(ckpt):
                name = match_key(weight, params)
                if name is None:
                    continue
                delta = saved.reshape(-1).float() - base_flat(name).float()
                check_finite(who, weight, delta)
                self.targets.setdefault(name, Target(name)).dense.append((index, delta.to(device)))
        for name, target in self.targets.items():
            if name in lefts:
                target.left = torch.cat(lefts[name], dim=1).contiguous().to(device)
                target.right = torch.cat(rights[name], dim=0).contiguous().to(device)

    def nbytes(self) -> int:
        """Device memory the factors take."""
        total = 0
        for t in self.targets.values():
            for tensor in (t.left, t.right, *(d for _, d in t.dense)):
                if tensor is not None:
                    total += tensor.numel() * tensor.element_size()
        return total
