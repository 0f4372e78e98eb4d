"""MergeRecipe: the bridge between a search vector ``x`` and the weights of a merged model.

Search code turns ``x`` into a recipe (through a family) and never touches tensors; the
merging code consumes recipes. A recipe is plain data: it is stored with each trial, turned
into a mergekit configuration, and applied in place to a resident model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class MergeRecipe(BaseModel):
    """What to merge and how: the family, its expert weights and its parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str
    experts: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    """One weight per expert (all families but ``layerwise``)."""
    block_weights: tuple[tuple[float, ...], ...] | None = None
    """One weight vector per block of layers (``layerwise``)."""
    parameters: dict[str, float] = {}
    """Method parameters: ``lambda``, ``density``, ``t``..."""
    seed: int = 0
    """Seed for methods that draw random masks (``dare_ties``)."""

    @field_validator("weights")
    @classmethod
    def _finite(cls, v):
        if v is not None and any(w != w or w in (float("inf"), float("-inf")) for w in v):
            raise ValueError(f"weights must be finite; got {v}")
        return v

    @field_validator("parameters")
    @classmethod
    def _finite_parameters(cls, v):
        bad = {k: p for k, p in v.items() if p != p or p in (float("inf"), float("-inf"))}
        if bad:
            raise ValueError(f"parameters must be finite; got {bad}")
        return v

    def weight_map(self) -> dict[str, float]:
        if self.weights is None:
            raise ValueError(f"a {self.family} recipe has no per-expert weights")
        return dict(zip(self.experts, self.weights, strict=True))
