"""What a trial records, and how it is read back.

A trial of a run is an Optuna trial: its parameters are the unit-cube coordinates ``u0 ..``
(:func:`param_name`, see :mod:`pareto.search.base`), its values the objective means. Its user
attributes hold ``x``, the standard errors, the family, the driver, the generation and slot
(batched drivers), timings, the evaluation hash and the worker that ran it; the bulky ones
(per-prompt scores, samples, the recipe) are system attributes (:data:`BULKY_ATTRS`).
:class:`Outcome` is what an evaluation hands the store, :class:`RunResults` what a run's
completed trials read back as.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pareto.prompt_scores import decode_scores
from pareto.run_spec import RunSpec

SCORES_ATTR = "prompt_scores"
"""Trial (and reference) attribute: the per-prompt scores, compact (:mod:`pareto.prompt_scores`)."""
BULKY_ATTRS = (SCORES_ATTR, "samples", "recipe", "learning_curve")
"""Trial attributes kept as Optuna *system* attributes (under :data:`BULKY_PREFIX`): they are
long, and optuna-dashboard shows every user attribute on one unwrapped line, so the samples
made its trial page 9,000 px wide and a recipe 2,400 px. :func:`trial_attrs` reads both kinds
(old studies kept them as user attributes)."""
BULKY_PREFIX = "paretomerge:"


def trial_key(label: str, number: int) -> str:
    """A trial's name as users write it: ``RUN#NUMBER`` (its run's label, its number)."""
    return f"{label}#{number}"


def param_name(i: int) -> str:
    """The Optuna parameter holding unit-cube coordinate ``i`` of a trial."""
    return f"u{i}"


@dataclass
class Counts:
    complete: int = 0
    running: int = 0
    waiting: int = 0
    failed: int = 0

    @property
    def scheduled(self) -> int:
        """Trials done or on their way."""
        return self.complete + self.running + self.waiting


@dataclass
class Outcome:
    """What evaluating one ``x`` gave: objective means and standard errors, the per-prompt
    scores they summarise (objective -> one score per prompt used, in the study's prompt
    order), and attributes."""

    values: dict[str, float]
    stderrs: dict[str, float]
    attrs: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, list[float]] | None = None


@dataclass
class RunResults:
    """A run's completed trials, in trial order."""

    spec: RunSpec
    numbers: np.ndarray
    values: np.ndarray
    stderrs: np.ndarray
    x: list[np.ndarray]
    attrs: list[dict]
    completed_at: list
    prompt_scores: list[np.ndarray | None] = field(default_factory=list)
    """Each trial's ``(k, m)`` per-prompt scores (None where the study did not keep them)."""


def trial_attrs(trial) -> dict:
    """A finished trial's attributes: its user attributes and the bulky ones kept as system
    attributes (:data:`BULKY_ATTRS`), under their own names."""
    attrs = dict(trial.user_attrs)
    for key, value in trial.system_attrs.items():
        if key.startswith(BULKY_PREFIX) and key[len(BULKY_PREFIX) :] in BULKY_ATTRS:
            attrs[key[len(BULKY_PREFIX) :]] = value
    return attrs


def trial_scores(attrs: dict, objectives: Sequence[str]) -> np.ndarray | None:
    """The ``(k, m)`` per-prompt scores in a trial's (or the reference's) attributes."""
    record = attrs.get(SCORES_ATTR)
    return None if record is None else decode_scores(record, objectives)
