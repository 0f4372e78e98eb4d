"""The zoo's training data, built from HH-RLHF files in their original layout.

* helpfulness pairs: helpful-base; harmlessness pairs: harmless-base (both: the ``train`` side
  of the prompt-hash split, the last user turn as the prompt, short enough to train on a CPU);
* an objective's expert trains on the pairs whose human label its reward head agrees with (the
  head scores the chosen response higher): DPO then moves the policy the way the objective is
  measured, instead of along whatever else the raw labels carry (in helpful-base, for example,
  many labels the head disagrees with prefer the *shorter* answer). The smol zoo's helpfulness
  and harmlessness experts take the pairs it agrees with by the widest margins: a
  length-controlled head is close to a coin toss on most pairs, and random agreeing pairs made
  a helpfulness expert the head found *less* helpful than the base (docs/zoo-builds.md);
* refusal pairs, for the harmlessness head: human labels of red-team dialogues teach a head
  that refusing is harmless, whatever was asked, and a search would then push every answer
  towards refusals. So the head also learns, on training prompts only, a harmless request's
  (helpful-base) chosen answer over a refusal, and a refusal over a red-team request's
  (harmless-base) rejected answer, in equal numbers;
* concise pairs: from the same helpfulness pairs, those where *both* responses are good (the
  helpfulness head scores each above its median over the pool) and one is at least 1.5 times
  longer than the other; the shorter is preferred. So "concise" means shorter at equal quality,
  not just shorter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from merging.data import PreferencePair, Prompt, read_pairs, select_split
from merging.hh_rlhf import subset_file

HH_FILES = {"helpful": subset_file("helpful-base"), "harmless": subset_file("harmless-base")}
"""The two subsets the zoo trains on, by the kind of pairs they give."""
MAX_PROMPT_CHARS, MAX_RESPONSE_CHARS = 300, 500


def short_pairs(path: Path, split: str = "train") -> list[PreferencePair]:
    """Pairs of one split, prompts cut to the last user turn, long ones dropped."""
    out = []
    for p in select_split(read_pairs(path), split):
        last = p.prompt.messages[-1]
        if len(last["content"]) > MAX_PROMPT_CHARS:
            continue
        if max(len(p.chosen), len(p.rejected)) > MAX_RESPONSE_CHARS:
            continue
        out.append(PreferencePair(Prompt((last,)), p.chosen, p.rejected))
    return out


REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I don't think I should help with that.",
    "Sorry, I won't be able to answer that.",
    "I'd rather not get into that.",
)
"""Refusals the harmlessness head trains on; :func:`refusal_checks` uses others."""
CHECK_REFUSALS = (
    "I'm sorry, I can't assist with that request.",
    "I'm not able to help with this.",
    "That's not something I can help you with.",
)


def refusal_pairs(
    helpful: list[PreferencePair], harmless: list[PreferencePair], n: int, *, seed: int = 0
) -> list[PreferencePair]:
    """Up to ``n`` pairs of each kind, on prompts of the ``train`` side of the prompt-hash
    split: a helpful answer over a refusal, and a refusal over a harmful answer."""
    from merging.data import split_of

    rng = np.random.default_rng(seed)

    def refusal() -> str:
        return REFUSALS[int(rng.integers(len(REFUSALS)))]

    def trained(pairs):
        return [p for p in pairs if split_of(p.prompt) == "train"][:n]

    return [PreferencePair(p.prompt, p.chosen, refusal()) for p in trained(helpful)] + [
        PreferencePair(p.prompt, refusal(), p.rejected) for p in trained(harmless)
    ]


def refusal_checks(
    helpful: list[PreferencePair], harmless: list[PreferencePair]
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Pairs that check how a head treats refusals, with refusals it never trained on (pass
    pairs of the ``evaluation`` split): a harmless request's chosen answer over a refusal,
    and a refusal over a red-team request's rejected answer."""
    pick = CHECK_REFUSALS
    return (
        [PreferencePair(p.prompt, p.chosen, pick[i % len(pick)]) for i, p in enumerate(helpful)],
        [PreferencePair(p.prompt, pick[i % len(pick)], p.rejected) for i, p in enumerate(harmless)],
    )


def refusal_metrics(head, checks: tuple[list, list]) -> dict:
    """How often ``head`` prefers a refusal to a helpful answer of a harmless request (lower
    is better) and to a harmful answer of a red-team request (higher is better)."""
    helpful_first, refusal_first = checks
    over_helpful = pair_scores(helpful_first, head)
    over_harmful = pair_scores(refusal_first, head)
    return {
        "refusal_over_helpful": float((over_helpful[1] > over_helpful[0]).mean()),
        "refusal_over_harmful": float((over_harmful[0] > over_harmful[1]).mean()),
        "refusal_check_pairs": [len(helpful_first), len(refusal_first)],
    }


def pair_scores(pairs: list[PreferencePair], head) -> tuple[np.ndarray, np.ndarray]:
    """The head's scores of every chosen and every rejected response."""
    prompts = [p.prompt for p in pairs]
    return (
        head.score(prompts, [p.chosen for p in pairs]),
        head.score(prompts, [p.rejected for p in pairs]),
    )


def agreeing_pairs(
    pairs: list[PreferencePair], scores: tuple[np.ndarray, np.ndarray]
) -> list[PreferencePair]:
    """The pairs whose chosen response the head scores higher."""
    chosen, rejected = scores
    return [p for p, c, r in zip(pairs, chosen, rejected, strict=True) if c > r]


def widest_margin_pairs(
    pairs: list[PreferencePair], scores: tuple[np.ndarray, np.ndarray], n: int
) -> list[PreferencePair]:
    """The ``n`` pairs whose chosen response the head prefers by the widest margins (fewer
    where fewer agree), widest first: what the head most clearly calls better, where a random
    pair it agrees with is often a near tie of its noise."""
    chosen, rejected = scores
    margin = np.asarray(chosen) - np.asarray(rejected)
    order = [int(i) for i in np.argsort(-margin, kind="stable") if margin[i] > 0]
    return [pairs[i] for i in order[:n]]


def concise_pairs(
    pairs: list[PreferencePair], scores: tuple[np.ndarray, np.ndarray], *, ratio: float = 1.5
) -> list[PreferencePair]:
    """Pairs of two good responses (both above the head's median) preferring the shorter."""
    chosen, rejected = scores
    median = float(np.median(np.concatenate([chosen, rejected])))
    out = []
    for p, c, r in zip(pairs, chosen, rejected, strict=True):
        if c <= median or r <= median:
            continue
        short, long = sorted((p.chosen, p.rejected), key=len)
        if len(long) >= ratio * max(1, len(short)):
            out.append(PreferencePair(p.prompt, short, long))
    return out
