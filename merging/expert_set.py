"""The ExpertSet: a base plus named experts that share its architecture, checked together.

Every expert is inspected from its headers (:func:`merging.checkpoints.inspect_checkpoint`)
and compared with the base before any tensor is loaded, so that every disagreement
(architecture, vocabulary, a tensor's name, shape or dtype) is reported in one
:class:`~merging.errors.ExpertMismatchError`. The mergers then read each expert's weights or
deltas from it one tensor at a time, checked for NaN and Inf.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from merging.checkpoints import LORA, Checkpoint, check_finite, inspect_checkpoint
from merging.errors import CheckpointError, ExpertMismatchError
from merging.lora import lora_deltas

MAX_LISTED_PER_EXPERT = 12
"""Tensor differences listed per expert before the rest are counted."""


class ExpertSet:
    """A base checkpoint plus named experts that share its architecture.

    Build it with :meth:`from_paths`; construction checks everything that can be checked
    without loading tensors and raises :class:`ExpertMismatchError` listing every difference.
    """

    def __init__(self, base: Checkpoint, experts: Mapping[str, Checkpoint]):
        if base.kind == LORA:
            raise CheckpointError(f"the base {base.path} is a LoRA adapter; give a full model")
        if len(experts) < 1:
            raise ValueError("an ExpertSet needs at least one expert")
        self.base = base
        self.experts = dict(experts)
        self.validate()

    @classmethod
    def from_paths(
        cls,
        base: str | Path,
        experts: Mapping[str, str | Path],
        *,
        trust_remote_code: bool = False,
    ) -> ExpertSet:
        """Inspect ``base`` and each ``name -> path`` expert, then validate them together."""
        bad = [n for n in experts if not re.fullmatch(r"[A-Za-z0-9_.-]+", n)]
        if bad:
            raise ValueError(f"expert names must be letters, digits, '_', '-' or '.'; got {bad}")
        b = inspect_checkpoint("base", base, trust_remote_code=trust_remote_code)
        es = {
            n: inspect_checkpoint(n, p, trust_remote_code=trust_remote_code)
            for n, p in experts.items()
        }
        return cls(b, es)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.experts)

    @property
    def config(self):
        return self.base.config

    def validate(self) -> None:
        """Raise :class:`ExpertMismatchError` naming every difference from the base."""
        diffs: list[str] = []
        for name, expert in self.experts.items():
            diffs.extend(self._differences(f"expert {name!r}", expert))
        if diffs:
            raise ExpertMismatchError(str(self.base.path), diffs)

    def _differences(self, who: str, e: Checkpoint) -> list[str]:
        base = self.base
        found: list[str] = []
        if e.kind != LORA:
            if e.architecture != base.architecture:
                found.append(f"{who}: architecture {e.architecture}, expected {base.architecture}")
            if e.vocab_size != base.vocab_size:
                found.append(f"{who}: vocabulary size {e.vocab_size}, expected {base.vocab_size}")
        if e.vocab is not None and base.vocab is not None and e.vocab != base.vocab:
            changed = len(set(e.vocab.items()) ^ set(base.vocab.items()))
            found.append(
                f"{who}: tokenizer vocabulary differs from the base "
                f"({len(e.vocab)} vs {len(base.vocab)} tokens, {changed} entries differ)"
            )
        tensors = []
        for key, spec in e.tensors.items():
            want = base.tensors.get(key)
            if want is None:
                tensors.append(f"{who}: tensor {key} is not in the base")
            elif spec.shape != want.shape:
                tensors.append(f"{who}: tensor {key} has shape {spec.shape}, expected {want.shape}")
            elif e.kind != LORA and spec.dtype != want.dtype:
                tensors.append(f"{who}: tensor {key} has dtype {spec.dtype}, expected {want.dtype}")
        if e.kind != LORA:
            tensors.extend(
                f"{who}: tensor {key} is missing" for key in base.tensors if key not in e.tensors
            )
        if len(tensors) > MAX_LISTED_PER_EXPERT:
            extra = len(tensors) - MAX_LISTED_PER_EXPERT
            tensors = [
                *tensors[:MAX_LISTED_PER_EXPERT],
                f"{who}: ... and {extra} more tensor differences",
            ]
        return found + tensors

    def who(self, name: str | None = None) -> str:
        """How messages name expert ``name`` (the base when None): by name and folder."""
        if name is None:
            return f"base ({self.base.path})"
        return f"expert {name!r} ({self.experts[name].path})"

    def expert_weights(self, name: str) -> Iterator[tuple[str, torch.Tensor]]:
        """``(tensor name, theta_expert)`` of a full expert in float32, one tensor at a time.

        Raises :class:`CheckpointError` on NaN or Inf.
        """
        e = self.experts[name]
        if e.kind == LORA:
            raise ValueError(f"expert {name!r} is a LoRA adapter: it has deltas, not weights")
        for key in e.tensors:
            value = e.read(key).float()
            check_finite(self.who(name), key, value)
            yield key, value

    def expert_deltas(self, name: str, base_tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """``(tensor name, theta_expert - theta_base)`` in float32, one tensor at a time.

        For a LoRA expert only the adapted weights are yielded (the rest of its delta is 0).
        Raises :class:`CheckpointError` on NaN or Inf.
        """
        e = self.experts[name]
        if e.kind == LORA:
            pairs = lora_deltas(e, base_tensor)
        else:
            pairs = ((k, e.read(k).float() - base_tensor(k).float()) for k in e.tensors)
        for key, delta in pairs:
            check_finite(self.who(name), key, delta)
            yield key, delta
