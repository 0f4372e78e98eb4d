"""Rewards-in-context (RiC, Yang et al. 2024): rewards written into the prompt.

Training responses are scored with each reward, each reward is normalised to zero mean and unit
variance over the training set and rounded to one decimal, and the scores are written after the
user's message, one marker per reward: ``... <helpfulness> 0.3 <harmlessness> -1.2``. A model
fine-tuned on such prompts is then steered at inference by the desired scores. A preference
``w`` becomes desired scores within each reward's training range ``[low_i, high_i]``:

* ``l2`` (the paper's default): ``r_i = w_i / ||w||_2 * (high_i - low_i) + low_i``;
* ``linf``: the largest weight's reward gets ``high``, every other
  ``min(n * w_i, 1) * (high_i - low_i) + low_i``;
* ``linear``: ``r_i = w_i * (high_i - low_i) + low_i``;

all rounded to one decimal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from merging.data import Prompt

RIC_FILE = "ric.json"
MAPPINGS = ("l2", "linf", "linear")


class RiCSpec(BaseModel):
    """The rewards a RiC model was trained with: names, normalisation and ranges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rewards: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    low: tuple[float, ...]
    """Lowest normalised, rounded training score of each reward."""
    high: tuple[float, ...]

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """``(n, rewards)`` raw scores to rounded z-scores."""
        return np.round((raw - np.array(self.mean)) / np.array(self.std), 1)

    def save(self, folder: Path) -> None:
        (Path(folder) / RIC_FILE).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> RiCSpec:
        path = Path(folder) / RIC_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {RIC_FILE}: not a rewards-in-context model")
        return cls.model_validate(json.loads(path.read_text()))

    @classmethod
    def fit(cls, rewards: Sequence[str], raw: np.ndarray) -> RiCSpec:
        mean, std = raw.mean(0), raw.std(0) + 1e-8
        z = np.round((raw - mean) / std, 1)
        return cls(
            rewards=tuple(rewards),
            mean=tuple(map(float, mean)),
            std=tuple(map(float, std)),
            low=tuple(map(float, z.min(0))),
            high=tuple(map(float, z.max(0))),
        )


def score_text(value: float) -> str:
    """A desired score as a marker writes it: one decimal, never ``-0.0``."""
    return f"{round(float(value), 1) + 0.0:.1f}"


def conditioning(rewards: Sequence[str], values: Sequence[float]) -> str:
    """``<name> value`` for each reward (see :func:`score_text`)."""
    return " ".join(
        f"<{name}> {score_text(value)}" for name, value in zip(rewards, values, strict=True)
    )


def condition_suffix(rewards: Sequence[str], values: Sequence[float]) -> str:
    """What :func:`condition` appends to the last user message."""
    return f"\n\n{conditioning(rewards, values)}"


def condition(prompt: Prompt, rewards: Sequence[str], values: Sequence[float]) -> Prompt:
    """The prompt with the desired scores written after the last user message."""
    messages = [dict(m) for m in prompt.messages]
    messages[-1]["content"] += condition_suffix(rewards, values)
    return Prompt(tuple(messages))


def preference_to_rewards(
    weights: Sequence[float], low: Sequence[float], high: Sequence[float], mapping: str = "l2"
) -> np.ndarray:
    """Desired scores for a preference ``weights`` (see the module docstring)."""
    w = np.asarray(weights, dtype=float)
    lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if mapping == "l2":
        norm = np.linalg.norm(w)
        frac = w / norm if norm > 0 else np.zeros_like(w)
    elif mapping == "linf":
        frac = np.minimum(len(w) * w, 1.0)
        frac[int(np.argmax(w))] = 1.0
    elif mapping == "linear":
        frac = w
    else:
        raise ValueError(f"mapping {mapping!r} is not one of {', '.join(MAPPINGS)}")
    return np.round(frac * (hi - lo) + lo, 1)
