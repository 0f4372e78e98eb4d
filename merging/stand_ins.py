"""Differentiable stand-ins for objectives: what a gradient learner (:mod:`merging.ama`)
minimises in place of an objective that is measured by generating and scoring.

A stand-in is preference pairs, whose DPO loss against the base says how far the policy has
moved towards the preferred answers, or reference text, whose negative log-likelihood is the
alignment tax itself. Sources, by name:

* an HH-RLHF subset (``helpful-base``, ``harmless-base``, ...) of the study's data folder;
* ``concise``: helpful-base pairs of clearly different length (1.5 times or more), the shorter
  answer preferred;
* ``reference``: the chosen answers of helpful-base, as text to predict;
* a path to a pairs file (HH-RLHF or TRL JSON lines).

Training rows come from the ``train`` side of the prompt-hash split, held-out ones from its
``evaluation`` side, which the evaluation prompts and the ``reference_nll`` head use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from merging.data import PreferencePair, read_pairs, select_split
from merging.hh_rlhf import SUBSETS, locate_hh_rlhf, subset_file

DEFAULT_SOURCES = {
    "helpfulness": "helpful-base",
    "harmlessness": "harmless-base",
    "verbosity": "concise",
    "reference_nll": "reference",
}
"""The zoo's objectives' stand-ins (``reference_nll:ARG`` objectives take ``reference``)."""
CONCISE_RATIO = 1.5
MAX_CHARS = 500


@dataclass(frozen=True)
class StandIn:
    """One objective's stand-in: pairs (``rejected`` answers set) or reference text."""

    objective: str
    source: str
    pairs: tuple[PreferencePair, ...]
    text_only: bool
    """True: the chosen answers are text to predict (NLL), no pairs."""


def source_for(objective: str, sources: dict, head: str | None = None) -> str:
    """The source named for ``objective`` in ``sources``, else its default by name (or by its
    head's kind, ``head``: ``tax=reference_nll`` is a reference_nll objective); a one-line
    error when it has neither."""
    if objective in sources:
        return str(sources[objective])
    kind = str(head or "").split(":")[0]
    for name, source in DEFAULT_SOURCES.items():
        if objective == name or objective.startswith(f"{name}:") or kind == name:
            return source
    raise ValueError(
        f"objective {objective!r} has no differentiable stand-in: name one in the driver's "
        "settings, pairs: {OBJECTIVE: SOURCE} (an HH-RLHF subset, concise, reference, or a "
        "pairs file)"
    )


def load_stand_in(
    objective: str, source: str, data: str | Path | None, split: str, n: int, seed: int = 0
) -> StandIn:
    """Up to ``n`` rows of ``source`` in ``split`` (shuffled with ``seed``, short ones only:
    at most :data:`MAX_CHARS` characters an answer)."""
    if source in SUBSETS or source in ("concise", "reference"):
        subset = "helpful-base" if source in ("concise", "reference") else source
        folder = locate_hh_rlhf(data, (subset,))
        pairs = read_pairs(folder / subset_file(subset))
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ValueError(f"stand-in of {objective!r}: {source!r} is no pairs file or source")
        pairs = read_pairs(path)
    pairs = [
        p for p in select_split(pairs, split) if max(len(p.chosen), len(p.rejected)) <= MAX_CHARS
    ]
    if source == "concise":
        pairs = [_shorter_preferred(p) for p in pairs if _clearly_different(p)]
    random.Random(seed).shuffle(pairs)
    if not pairs:
        raise ValueError(f"stand-in of {objective!r}: {source!r} has no {split} pairs")
    return StandIn(objective, source, tuple(pairs[:n]), text_only=source == "reference")


def _clearly_different(p: PreferencePair) -> bool:
    short, long = sorted((len(p.chosen), len(p.rejected)))
    return long >= CONCISE_RATIO * max(1, short)


def _shorter_preferred(p: PreferencePair) -> PreferencePair:
    short, long = sorted((p.chosen, p.rejected), key=len)
    return PreferencePair(p.prompt, short, long)
