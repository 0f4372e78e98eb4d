"""The Family contract and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from merging.recipe import MergeRecipe
from pareto.registry import Registry
from pareto.spaces import SearchSpace

FAMILIES: Registry[Family] = Registry("family")
register = FAMILIES.register


def get_family(name: str) -> type[Family]:
    """The family class registered as ``name`` (``ValueError`` lists the known ones)."""
    return FAMILIES.get(name)


def make_family(name: str, experts: Sequence[str], **settings) -> Family:
    """Build family ``name`` over ``experts``; unknown settings are an error naming them."""
    cls = get_family(name)
    allowed = cls.settings()
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"family {name!r} has no setting(s) {unknown}; its settings are: "
            f"{', '.join(allowed) or 'none'}"
        )
    return cls(experts, **settings)


class Family(ABC):
    """A way to turn a vector ``x`` into a merged policy.

    Contract: ``space`` is the :class:`~pareto.spaces.SearchSpace` of ``x``;
    :meth:`recipe` validates ``x`` (raising ``ValueError`` that says what is wrong, never
    renormalising) and returns a :class:`MergeRecipe`; :meth:`apply` writes the recipe's
    weights into a :class:`~merging.resident.ResidentMerger` in place;
    :meth:`mergekit_config` gives the mergekit configuration that reproduces them.
    """

    name: ClassVar[str]
    min_experts: ClassVar[int] = 1
    max_experts: ClassVar[int | None] = None
    whole_tensors: ClassVar[bool] = False
    """Whether a merge needs every expert's whole tensor at once (mergekit's methods): the
    memory plan then sets aside room for one tensor of every expert in float32."""

    def __init__(self, experts: Sequence[str]):
        experts = tuple(experts)
        if len(experts) < self.min_experts or (
            self.max_experts is not None and len(experts) > self.max_experts
        ):
            want = (
                f"exactly {self.min_experts}"
                if self.min_experts == self.max_experts
                else f"at least {self.min_experts}"
            )
            raise ValueError(f"family {self.name!r} needs {want} experts; got {len(experts)}")
        if len(set(experts)) != len(experts):
            raise ValueError(f"expert names must be unique; got {experts}")
        self.experts = experts

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """Names of the keyword settings the family accepts."""
        import inspect

        params = inspect.signature(cls.__init__).parameters
        return tuple(p for p in params if p not in {"self", "experts"})

    @property
    @abstractmethod
    def space(self) -> SearchSpace: ...

    @abstractmethod
    def recipe(self, x: object) -> MergeRecipe: ...

    @staticmethod
    @abstractmethod
    def apply(recipe: MergeRecipe, merger) -> None: ...

    @staticmethod
    @abstractmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        """A mergekit configuration (as a dict for YAML) that reproduces the recipe."""

    def prompt_transform(self, recipe: MergeRecipe):
        """A function rewriting each prompt for this recipe, or None (weights-only families)."""
        return None

    def _x(self, x: object) -> np.ndarray:
        return self.space.validate(x)
