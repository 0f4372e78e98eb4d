"""The Family contract and its registry.

Everything that differs between families is said here, by the family: which checkpoints it
merges, how a recipe is written into a merger, its mergekit configuration and export notes, how
its ``x`` reads to people. Code outside ``merging/families/`` asks the family, never its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from merging.recipe import MergeRecipe
from pareto.registry import Registry
from pareto.settings import declared_settings, reject_unknown_settings
from pareto.spaces import SearchSpace

if TYPE_CHECKING:
    import torch

FAMILIES: Registry[Family] = Registry("family")
register = FAMILIES.register

Row = tuple[str, str, float]
"""One line of ``x`` as people read it: ``(group, name, value)``, e.g. ``("weight", "helpful",
0.6)``."""


class WeightMerger(Protocol):
    """What a family writes merged weights into: the resident and the streamed mergers."""

    @property
    def expert_names(self) -> tuple[str, ...]: ...

    def set_linear(self, weights: Sequence[float], base_weight: float = 0.0) -> None: ...

    def set_blockwise(self, block_weights: Sequence[Sequence[float]]) -> None: ...

    def set_per_tensor(
        self, merge: Callable[[str, torch.Tensor, list[torch.Tensor]], torch.Tensor]
    ) -> None: ...


def get_family(name: str) -> type[Family]:
    """The family class registered as ``name`` (``ValueError`` lists the known ones)."""
    return FAMILIES.get(name)


def make_family(name: str, experts: Sequence[str], **settings) -> Family:
    """Build family ``name`` over ``experts``; unknown settings are an error naming them."""
    cls = get_family(name)
    reject_unknown_settings(f"family {name!r}", settings, cls.settings())
    return cls(experts, **settings)


def family_for_checkpoints(
    name: str,
    experts: Mapping[str, str],
    ric: str | None,
    settings: Mapping,
    senses: Mapping[str, str] | None = None,
) -> Family:
    """Family ``name`` as a study builds it from its checkpoints (``experts`` by name, the RiC
    model or None) and its objectives' ``senses`` (``"max"``/``"min"`` by name); unknown
    settings are an error naming them."""
    cls = get_family(name)
    reject_unknown_settings(f"family {name!r}", settings, cls.settings())
    return cls.from_checkpoints(experts, ric, senses=senses or {}, **settings)


def x_rows(recipe: Mapping | None, x, experts: Sequence[str]) -> list[Row]:
    """``x`` the way its family means it (:meth:`Family.x_rows` of the stored recipe's family,
    a :class:`MergeRecipe` as JSON); without a recipe, the raw coordinates of ``x``."""
    if recipe and recipe.get("family") in FAMILIES:
        return get_family(recipe["family"]).x_rows(recipe, experts)
    if recipe and recipe.get("weights"):
        return Family.x_rows(recipe, experts)
    flat = [v for part in (x or []) for v in (part if isinstance(part, list) else [part])]
    return [("x", f"x{i}", float(v)) for i, v in enumerate(flat)]


def describe_rows(rows: Sequence[Row]) -> str:
    """:func:`x_rows` on one line: ``weight: helpful 0.62, harmless 0.38; ...``."""
    groups: dict[str, list[str]] = {}
    for group, name, value in rows:
        groups.setdefault(group, []).append(f"{name} {value:.3g}")
    return "; ".join(f"{group}: {', '.join(parts)}" for group, parts in groups.items())


class Family(ABC):
    """A way to turn a vector ``x`` into a merged policy.

    Contract: ``space`` is the :class:`~pareto.spaces.SearchSpace` of ``x``;
    :meth:`recipe` validates ``x`` (raising ``ValueError`` that says what is wrong, never
    renormalising) and returns a :class:`MergeRecipe`; :meth:`apply` writes the recipe's
    weights into a :class:`~merging.resident.ResidentMerger` in place;
    :meth:`mergekit_config` gives the mergekit configuration that reproduces them. The class
    attributes and the methods with a default say the rest (checkpoints, export, display).
    """

    name: ClassVar[str]
    min_experts: ClassVar[int] = 1
    max_experts: ClassVar[int | None] = None
    whole_tensors: ClassVar[bool] = False
    """Whether a merge needs every expert's whole tensor at once (mergekit's methods): the
    memory plan then sets aside room for one tensor of every expert in float32."""
    per_block: ClassVar[bool] = False
    """Whether its weights differ between blocks of layers: its mergekit configuration then
    needs the model's :class:`~merging.architecture.LayerMap` to filter tensors by name."""
    checkpoints: ClassVar[str] = "experts"
    """Which of a study's checkpoint sets it merges (:meth:`checkpoint_paths`); families with
    the same set share one merger."""
    x_caption: ClassVar[str] = "weights per expert"
    """What ``x`` is, in a few words for people (the dashboard's trial detail)."""
    merged_checkpoint: ClassVar[bool] = True
    """Whether its policy is one network whose weights :meth:`apply` writes (an export saves
    them, mergekit reproduces them); False for a decoding-time mixture (:meth:`policy`)."""
    placement: ClassVar[str | None] = None
    """The memory plan's way its experts must be held (``"resident"``: a mixture runs every
    expert's own weights), or None for whichever fits."""

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
        return declared_settings(cls.__init__, skip=("experts",))

    @classmethod
    def checkpoint_paths(cls, experts: Mapping[str, str], ric: str | None) -> dict[str, str]:
        """The checkpoints it merges, by name, from a study's experts and RiC model."""
        return dict(experts)

    @classmethod
    def from_checkpoints(
        cls,
        experts: Mapping[str, str],
        ric: str | None,
        senses: Mapping[str, str] | None = None,
        **settings,
    ) -> Family:
        """The family over a study's checkpoints (``experts`` by name, the RiC model or None);
        ``senses``, the study's objectives' (``"max"``/``"min"`` by name), for a family whose
        ``x`` means something about them (most ignore it)."""
        return cls(list(experts), **settings)

    def run_settings(self) -> dict:
        """What the family took from its study beyond the user's settings, recorded with the
        run so that a resume under another meaning of ``x`` is refused (most: nothing)."""
        return {}

    @classmethod
    def x_from_groups(
        cls, groups: list[list[float]], blocks: int | None
    ) -> tuple[object, dict[str, int]]:
        """``(x, settings)`` from ``merge --weights`` (groups split by ``;``) and ``--blocks``."""
        if len(groups) != 1:
            raise ValueError("--weights: ';' separates blocks, which only layerwise has")
        if blocks is not None:
            raise ValueError("--blocks applies to the layerwise family only")
        return groups[0], {}

    @classmethod
    def x_rows(cls, recipe: Mapping, experts: Sequence[str]) -> list[Row]:
        """A stored recipe's ``x`` as rows for people: the weight per expert, then any method
        parameter."""
        weights = recipe.get("weights") or ()
        rows: list[Row] = [("weight", e, float(w)) for e, w in zip(experts, weights, strict=True)]
        return rows + [("parameter", k, float(v)) for k, v in recipe.get("parameters", {}).items()]

    @property
    @abstractmethod
    def space(self) -> SearchSpace: ...

    @abstractmethod
    def recipe(self, x: object) -> MergeRecipe: ...

    @staticmethod
    @abstractmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None: ...

    @staticmethod
    @abstractmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        """A mergekit configuration (as a dict for YAML) that reproduces the recipe, from the
        base's and the checkpoints' references (``layers``: the model's LayerMap, given to
        families with ``per_block``)."""

    @staticmethod
    def mergekit_reproduces(recipe: MergeRecipe) -> bool:
        """Whether mergekit's run of :meth:`mergekit_config` gives these very weights (False
        where mergekit draws its own random numbers)."""
        return True

    @staticmethod
    def export_notes(recipe: MergeRecipe) -> list[str]:
        """What an export of this recipe must tell its reader, one line each."""
        return []

    @staticmethod
    def policy(recipe: MergeRecipe, merger):
        """The model to evaluate once :meth:`apply` has written ``recipe`` into ``merger``: the
        merger's working model, unless the family combines the experts some other way."""
        return merger.model

    @classmethod
    def placement_for(cls, asked: str) -> str:
        """The memory plan's way for this family when ``asked`` was given: the one it needs
        (:attr:`placement`) where ``auto`` or that way was asked; anything else is an error."""
        if cls.placement is None or asked == cls.placement:
            return asked
        if asked != "auto":
            raise ValueError(
                f"family {cls.name!r} needs its experts held {cls.placement} (every expert runs "
                f"at every step); got --placement {asked}"
            )
        return cls.placement

    def prompt_transform(self, recipe: MergeRecipe):
        """A function rewriting each prompt for this recipe, or None (weights-only families)."""
        return None

    def chat_suffix(self, recipe: MergeRecipe) -> str | None:
        """Text an exported chat template appends to every user turn, or None."""
        return None

    def _x(self, x: object) -> np.ndarray:
        return self.space.validate(x)
