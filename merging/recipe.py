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


def recipe_rows(recipe: dict | None, x, experts) -> list[tuple[str, str, float]]:
    """``x`` the way its family means it, as rows ``(group, name, value)``, from a stored
    recipe (a :class:`MergeRecipe` as JSON): shown by ``study show`` and the dashboard.

    ``layerwise``: one row per block and expert; ``rewards_in_context``: the desired reward per
    objective (and the preference weights, when recorded); weight families: the weight per
    expert, then any searched method parameter; no recipe: the raw coordinates of ``x``.
    """
    recipe = recipe or {}
    rows: list[tuple[str, str, float]] = []
    if recipe.get("block_weights"):
        for b, weights in enumerate(recipe["block_weights"]):
            rows += [(f"block {b}", e, float(w)) for e, w in zip(experts, weights, strict=True)]
    elif recipe.get("family") == "rewards_in_context":
        params = recipe.get("parameters", {})
        rows += [("desired reward", e, float(params[f"desired.{e}"])) for e in experts]
        if recipe.get("weights"):
            rows += [
                ("preference", e, float(w)) for e, w in zip(experts, recipe["weights"], strict=True)
            ]
    elif recipe.get("weights"):
        rows += [("weight", e, float(w)) for e, w in zip(experts, recipe["weights"], strict=True)]
        rows += [("parameter", k, float(v)) for k, v in recipe.get("parameters", {}).items()]
    else:
        flat = [v for part in (x or []) for v in (part if isinstance(part, list) else [part])]
        rows += [("x", f"x{i}", float(v)) for i, v in enumerate(flat)]
    return rows


def describe_rows(rows: list[tuple[str, str, float]]) -> str:
    """:func:`recipe_rows` on one line: ``weight: helpful 0.62, harmless 0.38; ...``."""
    groups: dict[str, list[str]] = {}
    for group, name, value in rows:
        groups.setdefault(group, []).append(f"{name} {value:.3g}")
    return "; ".join(f"{group}: {', '.join(parts)}" for group, parts in groups.items())
