"""Preference pairs as a trained head sees them: the prompt-hash split it trains and is measured
on, its pairwise accuracy, and the length-matched pairs, on which preferring the longer answer
is no better than a coin."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from merging.data import PreferencePair, split_of
from merging.heads.length_trend import response_lengths

LENGTH_MATCHED_RATIO = 1.3
"""Pairs whose longer response has at most 30% more words than the shorter are
"length-matched": on them, preferring the longer answer is no better than a coin."""


def split_pairs(
    pairs: Sequence[PreferencePair],
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """``(training pairs, held-out pairs)`` by prompt hash; ``ValueError`` when either has
    fewer than 10 (checked before anything is encoded)."""
    sides = [split_of(p.prompt) for p in pairs]
    train = [p for p, side in zip(pairs, sides, strict=True) if side == "train"]
    heldout = [p for p, side in zip(pairs, sides, strict=True) if side != "train"]
    if len(train) < 10 or len(heldout) < 10:
        raise ValueError(
            f"need at least 10 training and 10 held-out pairs; got {len(train)} and {len(heldout)}"
        )
    return train, heldout


def pairwise_accuracy(margins: np.ndarray) -> float:
    """Fraction of pairs ranked right; a tie counts one half."""
    return float(((margins > 0) + 0.5 * (margins == 0)).mean())


def length_matched(pairs: Sequence[PreferencePair]) -> np.ndarray:
    """Which pairs are length-matched (:data:`LENGTH_MATCHED_RATIO`)."""
    lengths = response_lengths([r for p in pairs for r in (p.chosen, p.rejected)])[:, 0]
    longer = np.maximum(lengths[0::2], lengths[1::2])
    shorter = np.maximum(np.minimum(lengths[0::2], lengths[1::2]), 1)
    return longer <= LENGTH_MATCHED_RATIO * shorter
