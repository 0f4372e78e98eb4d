"""``rewards_in_context``: one RiC model, steered by the desired rewards written in its prompt.

No weights change: the policy is the RiC model, and :meth:`prompt_transform` writes the desired
scores into every prompt. ``x`` is either the desired scores themselves (``mapping="rewards"``,
a box over each reward's training range) or a preference on the simplex mapped to desired
scores as the RiC paper does (``l2``, ``linf``, ``linear``; see :mod:`merging.ric`), each
weight moving its reward towards the end the study's objective of that name wants (a weight on
an objective to minimise asks for a lower score; a reward no objective names is maximised, as
in the paper). A RiC model with level words gets them written after its scores, as it was
trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from merging.families.base import Family, Row, WeightMerger, register
from merging.recipe import MergeRecipe
from merging.ric import (
    MAPPINGS,
    SENSES,
    RiCSpec,
    condition,
    condition_suffix,
    preference_to_rewards,
)
from pareto.spaces import Box, Simplex


@register("rewards_in_context")
class RewardsInContext(Family):
    """``experts`` are the names of the conditioned rewards, in the RiC model's order."""

    checkpoints = "ric"
    x_caption = "the rewards written in the prompt of the RiC model"

    def __init__(
        self,
        experts,
        ric: str | None = None,
        mapping: str = "rewards",
        low=None,
        high=None,
        senses: Mapping[str, str] | None = None,
    ):
        """``senses``: ``"max"`` or ``"min"`` by reward name (a study passes its objectives'),
        the end a preference weight moves each desired score towards; unnamed rewards are
        ``"max"``."""
        super().__init__(experts)
        senses = dict(senses or {})
        wrong = {k: v for k, v in senses.items() if v not in SENSES}
        if wrong:
            raise ValueError(f"senses: each is one of {', '.join(SENSES)}; got {wrong}")
        self.senses = tuple(senses.get(e, "max") for e in self.experts)
        self.words = None
        """The RiC model's level words (:class:`~merging.ric.RiCSpec`), if it has them."""
        if ric is not None:
            spec = RiCSpec.load(ric)
            if tuple(spec.rewards) != self.experts:
                raise ValueError(
                    f"the RiC model at {ric} conditions on {spec.rewards}; got {self.experts}"
                )
            low, high, self.words = spec.low, spec.high, spec.words
        if low is None or high is None:
            raise ValueError("rewards_in_context needs ric=FOLDER, or low and high per reward")
        if mapping not in ("rewards", *MAPPINGS):
            raise ValueError(f"mapping {mapping!r} is not rewards, {', '.join(MAPPINGS)}")
        self.low, self.high, self.mapping = tuple(low), tuple(high), mapping
        self._space = (
            Box(self.low, self.high) if mapping == "rewards" else Simplex(len(self.experts))
        )

    @classmethod
    def checkpoint_paths(cls, experts: Mapping[str, str], ric: str | None) -> dict[str, str]:
        """The RiC model alone: its weights are the policy's."""
        if ric is None:
            raise ValueError(f"families: {cls.name} needs a RiC model ('ric: FOLDER' or a zoo)")
        return {"ric": ric}

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The user's settings: ``senses`` comes from the study's objectives."""
        return tuple(s for s in super().settings() if s != "senses")

    @classmethod
    def from_checkpoints(cls, experts, ric, senses=None, **settings):
        """Over the rewards the RiC model was trained on."""
        (path,) = cls.checkpoint_paths(experts, ric).values()
        return cls(RiCSpec.load(path).rewards, ric=path, senses=senses, **settings)

    def run_settings(self) -> dict:
        """The sense of each reward, when a preference mapping uses them."""
        if self.mapping == "rewards":
            return {}
        return {"senses": dict(zip(self.experts, self.senses, strict=True))}

    @classmethod
    def x_rows(cls, recipe: Mapping, experts: Sequence[str]) -> list[Row]:
        """The desired reward per objective, and the preference weights when recorded."""
        params = recipe.get("parameters", {})
        rows: list[Row] = [("desired reward", e, float(params[f"desired.{e}"])) for e in experts]
        if recipe.get("weights"):
            rows += [
                ("preference", e, float(w)) for e, w in zip(experts, recipe["weights"], strict=True)
            ]
        return rows

    @property
    def space(self):
        return self._space

    def recipe(self, x: object) -> MergeRecipe:
        v = self._x(x)
        desired = (
            v
            if self.mapping == "rewards"
            else preference_to_rewards(v, self.low, self.high, self.mapping, self.senses)
        )
        params = {f"desired.{n}": float(d) for n, d in zip(self.experts, desired, strict=True)}
        weights = None if self.mapping == "rewards" else tuple(map(float, v))
        return MergeRecipe(
            family=self.name, experts=self.experts, weights=weights, parameters=params
        )

    @staticmethod
    def desired(recipe: MergeRecipe) -> list[float]:
        return [recipe.parameters[f"desired.{n}"] for n in recipe.experts]

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        """The RiC model's weights: the merger holds the RiC adapter as its only expert."""
        if len(merger.expert_names) != 1:
            raise ValueError(
                "a rewards_in_context merger holds one expert, the RiC model; "
                f"got {len(merger.expert_names)}"
            )
        merger.set_linear([1.0])

    def prompt_transform(self, recipe: MergeRecipe):
        values, words = self.desired(recipe), self.words
        return lambda prompt: condition(prompt, recipe.experts, values, words)

    def chat_suffix(self, recipe: MergeRecipe) -> str | None:
        """The desired rewards as the RiC model reads them after every user turn."""
        return condition_suffix(recipe.experts, self.desired(recipe), self.words)

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers=None
    ) -> dict:
        """The RiC model unchanged (``experts`` holds its one checkpoint)."""
        if len(experts) != 1:
            raise ValueError(
                "rewards_in_context changes the prompt, not the weights: its mergekit "
                f"configuration is the RiC model itself, one checkpoint; got {len(experts)}"
            )
        (model,) = experts.values()
        return {"merge_method": "passthrough", "models": [{"model": model}]}

    @staticmethod
    def export_notes(recipe: MergeRecipe) -> list[str]:
        return [
            "rewards_in_context changes the prompt, not the weights: this is the RiC model "
            "itself; the desired rewards are in the exported chat template"
        ]
