"""Rewards-in-context (RiC, Yang et al. 2024): rewards written into the prompt.

Training responses are scored with each reward, each reward is normalised to zero mean and unit
variance over the training set and rounded to one decimal, and the scores are written after the
user's message, one marker per reward: ``... <helpfulness> 0.3 <harmlessness> -1.2``. A model
fine-tuned on such prompts is then steered at inference by the desired scores.

A RiC model may also have *level words*: an odd number of words per reward, from its lowest level
to its highest, one written after each score, ``<harmlessness> 1.2 (safe)``. The middle word is
for scores within ``±LEVEL_WIDTH / 2`` of 0, each next word for the next :data:`LEVEL_WIDTH`
outwards, the outermost words for everything beyond. They are our addition, not the paper's:
the same digits follow every tag, and a small model trained for a few steps learns slowly which
tag a number belongs to, whereas a word that belongs to one reward alone is read at once
(docs/ric-investigation.md). The score is still written, normalised and rounded as in the
paper; the word is a function of it.

A preference ``w`` becomes desired scores within each reward's training range ``[low_i, high_i]``:

* ``l2`` (the paper's default): ``r_i = w_i / ||w||_2 * (high_i - low_i) + low_i``;
* ``linf``: the largest weight's reward gets ``high``, every other
  ``min(n * w_i, 1) * (high_i - low_i) + low_i``;
* ``linear``: ``r_i = w_i * (high_i - low_i) + low_i``;

all rounded to one decimal. The paper's rewards are all to be maximised; a reward the user wants
low (the zoo's verbosity, whose marker is the answer's length) is mapped the other way,
``r_i = high_i - f_i * (high_i - low_i)`` for the same share ``f_i``, so that a weight on it
always asks for more of what the user wants (its ``senses``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from merging.data import Prompt

RIC_FILE = "ric.json"
MAPPINGS = ("l2", "linf", "linear")
SENSES = ("max", "min")
LEVEL_WIDTH = 0.6
"""How much of a normalised score each level word covers (the middle one: -0.3 to 0.3)."""
LevelWords = tuple[str, ...]


class RiCSpec(BaseModel):
    """The rewards a RiC model was trained with: names, normalisation and ranges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rewards: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    low: tuple[float, ...]
    """Lowest normalised, rounded training score of each reward."""
    high: tuple[float, ...]
    words: tuple[LevelWords, ...] | None = None
    """Per reward, its level words from lowest to highest (an odd number), or ``None``: scores
    only, as in the paper (and every RiC model saved before level words existed)."""

    @model_validator(mode="after")
    def _one_set_of_words_per_reward(self) -> RiCSpec:
        if self.words is None:
            return self
        if len(self.words) != len(self.rewards):
            n, m = len(self.words), len(self.rewards)
            raise ValueError(f"{n} sets of level words for {m} rewards")
        for name, words in zip(self.rewards, self.words, strict=True):
            if len(words) % 2 == 0:
                raise ValueError(f"{name} has {len(words)} level words; it needs an odd number")
        return self

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
    def fit(
        cls, rewards: Sequence[str], raw: np.ndarray, words: Sequence[LevelWords] | None = None
    ) -> RiCSpec:
        mean, std = raw.mean(0), raw.std(0) + 1e-8
        z = np.round((raw - mean) / std, 1)
        return cls(
            rewards=tuple(rewards),
            mean=tuple(map(float, mean)),
            std=tuple(map(float, std)),
            low=tuple(map(float, z.min(0))),
            high=tuple(map(float, z.max(0))),
            words=words,  # validated, and made tuples, by the model
        )


def score_text(value: float) -> str:
    """A desired score as a marker writes it: one decimal, never ``-0.0``."""
    return f"{round(float(value), 1) + 0.0:.1f}"


def level_word(value: float, words: LevelWords) -> str:
    """The word of a score's level (see :data:`LEVEL_WIDTH`), for the score as written."""
    written = float(score_text(value))
    half = len(words) // 2
    outward = round((abs(written) - LEVEL_WIDTH / 2) / LEVEL_WIDTH, 9)  # 0.9 is not above 0.9
    steps = min(half, math.ceil(outward)) if outward > 0 else 0
    return words[half + steps if written > 0 else half - steps]


def conditioning(
    rewards: Sequence[str],
    values: Sequence[float],
    words: Sequence[LevelWords] | None = None,
) -> str:
    """``<name> value`` for each reward (see :func:`score_text`), followed by ``(word)`` when
    the model has level words."""
    marks = [f"<{n}> {score_text(v)}" for n, v in zip(rewards, values, strict=True)]
    if words is not None:
        marks = [f"{m} ({level_word(v, w)})" for m, v, w in zip(marks, values, words, strict=True)]
    return " ".join(marks)


def condition_suffix(
    rewards: Sequence[str],
    values: Sequence[float],
    words: Sequence[LevelWords] | None = None,
) -> str:
    """What :func:`condition` appends to the last user message."""
    return f"\n\n{conditioning(rewards, values, words)}"


def condition(
    prompt: Prompt,
    rewards: Sequence[str],
    values: Sequence[float],
    words: Sequence[LevelWords] | None = None,
) -> Prompt:
    """The prompt with the desired scores (and their level words) written after the last user
    message."""
    messages = [dict(m) for m in prompt.messages]
    messages[-1]["content"] += condition_suffix(rewards, values, words)
    return Prompt(tuple(messages))


def preference_to_rewards(
    weights: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    mapping: str = "l2",
    senses: Sequence[str] | None = None,
) -> np.ndarray:
    """Desired scores for a preference ``weights`` (see the module docstring); ``senses``
    (``"max"`` or ``"min"`` per reward, default all ``"max"``) says which end a weight moves
    each reward towards."""
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
    if senses is None:
        senses = ("max",) * len(w)
    if len(senses) != len(w) or not set(senses) <= set(SENSES):
        raise ValueError(f"senses: one of {', '.join(SENSES)} per reward; got {list(senses)}")
    wanted_low = np.array([s == "min" for s in senses])
    return np.round(np.where(wanted_low, hi - frac * (hi - lo), lo + frac * (hi - lo)), 1)
