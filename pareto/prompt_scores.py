"""Per-prompt scores: what every objective value is the mean of, kept so comparisons stay paired.

Every candidate of a study is scored on the same prompts, in one fixed order, and most of a
score's variance lies between prompts. A trial therefore keeps its scores per prompt, not only
their means: ``(P, m)`` values, one row per prompt it was scored on. A trial raced out after
its first ``k`` prompts keeps those ``k`` rows (always a prefix of the study's prompt order).

In a store they are a compact JSON attribute: the raw little-endian bytes, base64-encoded,
as float32 when that loses nothing (scores computed in float32, lengths) and float64 otherwise,
in lines of :data:`LINE` characters (records written as one string still read). The lines
were for optuna-dashboard, which shows a user attribute on one unwrapped line; a trial's
scores are now a system attribute it does not show
(:data:`pareto.trial_records.BULKY_ATTRS`), and only the study's ``reference`` keeps them as a
user attribute.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FORMAT = "prompt-scores/1"
LINE = 76
"""Characters per line of the base64 data (MIME's line length)."""


def encode_scores(scores: object, objectives: Sequence[str]) -> dict:
    """``(k, m)`` per-prompt scores (``m`` = ``len(objectives)``) as a compact JSON dict."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(objectives):
        raise ValueError(
            f"per-prompt scores must have shape (prompts, {len(objectives)}); got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("per-prompt scores must be finite")
    small = arr.astype(np.float32)
    dtype = "<f4" if np.array_equal(small.astype(np.float64), arr) else "<f8"
    raw = arr.astype(dtype).tobytes()
    return {
        "format": FORMAT,
        "objectives": list(objectives),
        "prompts": int(arr.shape[0]),
        "dtype": dtype,
        "data": _lines(base64.b64encode(raw).decode("ascii")),
    }


def _lines(text: str) -> list[str]:
    return [text[i : i + LINE] for i in range(0, len(text), LINE)] or [""]


def decode_scores(record: dict, objectives: Sequence[str] | None = None) -> np.ndarray:
    """The ``(k, m)`` float64 array of :func:`encode_scores`' record, columns in the order of
    ``objectives`` when given (each must be in the record)."""
    if record.get("format") != FORMAT:
        raise ValueError(f"not a per-prompt score record (format {record.get('format')!r})")
    names = list(record["objectives"])
    data = record["data"]
    raw = base64.b64decode(data if isinstance(data, str) else "".join(data))
    arr = np.frombuffer(raw, dtype=record["dtype"]).astype(np.float64)
    arr = arr.reshape(int(record["prompts"]), len(names))
    if objectives is None:
        return arr
    missing = [o for o in objectives if o not in names]
    if missing:
        raise ValueError(f"per-prompt scores have no objective(s) {missing}; they have {names}")
    return arr[:, [names.index(o) for o in objectives]]


@dataclass(frozen=True)
class PromptScores:
    """Per-prompt scores of ``n`` trials on one ordered prompt set of ``P`` prompts.

    ``scores[i, :used[i]]`` are trial ``i``'s scores on the first ``used[i]`` prompts (the rest
    is NaN). ``anchor``, when given, holds a reference policy's scores on all ``P`` prompts
    (the base model's): a trial scored on a prefix is then estimated as the anchor's full mean
    plus its paired mean difference from the anchor on its prefix, which removes the prefix's
    prompt effect (a plain prefix mean is not comparable with full means)."""

    scores: np.ndarray
    used: np.ndarray
    anchor: np.ndarray | None = None

    def __post_init__(self):
        s = np.asarray(self.scores, dtype=np.float64)
        used = np.asarray(self.used, dtype=np.int64)
        if s.ndim != 3:
            raise ValueError(f"scores must have shape (trials, prompts, objectives); got {s.shape}")
        n, p, m = s.shape
        if used.shape != (n,) or (n and (used.min() < 1 or used.max() > p)):
            raise ValueError(f"used must hold {n} prompt counts in 1..{p}")
        inside = np.arange(p)[None, :] < used[:, None]
        if not np.isfinite(s[inside]).all():
            raise ValueError("scores must be finite on the prompts each trial used")
        s = np.where(inside[:, :, None], s, np.nan)
        anchor = self.anchor
        if anchor is not None:
            anchor = np.asarray(anchor, dtype=np.float64)
            if anchor.shape != (p, m) or not np.isfinite(anchor).all():
                raise ValueError(f"anchor must be finite with shape ({p}, {m}); got {anchor.shape}")
        object.__setattr__(self, "scores", s)
        object.__setattr__(self, "used", used)
        object.__setattr__(self, "anchor", anchor)

    @classmethod
    def from_rows(
        cls, rows: Sequence[np.ndarray], anchor: np.ndarray | None = None
    ) -> PromptScores:
        """From each trial's ``(k_i, m)`` scores (prefixes of one prompt order)."""
        if not rows:
            m = 0 if anchor is None else anchor.shape[1]
            return cls(np.zeros((0, 1 if anchor is None else len(anchor), m)), np.zeros(0, int))
        p = max(len(r) for r in rows)
        if anchor is not None:
            p = max(p, len(anchor))
        m = rows[0].shape[1]
        scores = np.full((len(rows), p, m), np.nan)
        for i, r in enumerate(rows):
            scores[i, : len(r)] = r
        return cls(scores, np.array([len(r) for r in rows]), anchor)

    @property
    def n_trials(self) -> int:
        return self.scores.shape[0]

    @property
    def n_prompts(self) -> int:
        return self.scores.shape[1]

    @property
    def n_objectives(self) -> int:
        return self.scores.shape[2]

    def means(self) -> np.ndarray:
        """``(n, m)`` point estimates: plain means for trials scored on every prompt; for a
        prefix, the anchor's full mean plus the paired prefix difference (plain prefix mean
        without an anchor)."""
        return estimate(self, np.ones((1, self.n_prompts)))[0]

    def strata(self) -> list[tuple[int, int]]:
        """Prompt ranges that every trial's prefix is a union of: resampling within each keeps
        every prefix's size, so each trial's bootstrap mean is over its own prompts."""
        cuts = sorted({0, self.n_prompts, *self.used.tolist()})
        return list(itertools.pairwise(cuts))

    def restrict(self, index: np.ndarray) -> PromptScores:
        """The trials at ``index``, same prompts and anchor."""
        return PromptScores(self.scores[index], self.used[index], self.anchor)


def estimate(ps: PromptScores, weights: np.ndarray) -> np.ndarray:
    """``(B, n, m)`` trial estimates under ``(B, P)`` prompt weights (bootstrap counts, or ones
    for the point estimate). Every stratum's weights sum to its size, so a prefix's weights
    sum to its length."""
    n, p, m = ps.scores.shape
    inside = ~np.isnan(ps.scores)
    if ps.anchor is None:
        centred = np.where(inside, ps.scores, 0.0)
        offset = np.zeros((weights.shape[0], 1, m))
    else:
        centred = np.where(inside, ps.scores - ps.anchor[None], 0.0)
        offset = (weights @ ps.anchor / p)[:, None, :]
    flat = centred.transpose(1, 0, 2).reshape(p, n * m)
    sums = (weights @ flat).reshape(weights.shape[0], n, m)
    return offset + sums / ps.used[None, :, None]
