"""Training examples for the rewards-in-context model: responses with their scores in the prompt."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from merging.data import PreferencePair, Prompt
from merging.ric import RiCSpec, condition

REWARDS = ("helpfulness", "harmlessness", "verbosity")


def build_ric_examples(
    helpful: list[PreferencePair],
    harmless: list[PreferencePair],
    heads: dict[str, Path],
    base: Path,
    n: int,
    seed: int = 0,
):
    """``(examples, spec)``: ``n`` (conditioned prompt, response) pairs and the normalisation.

    Responses are drawn from both data sets, chosen and rejected alike, so that the scores span
    good and bad answers; each is scored by the helpfulness and harmlessness heads and by its
    length in the base's tokens, then normalised and rounded as in the RiC paper.
    """
    from merging.heads import BTHead, LengthTokens
    from merging.policy import load_tokenizer

    rng = random.Random(seed)
    pool: list[tuple[Prompt, str]] = []
    for pairs in (helpful, harmless):
        picked = rng.sample(pairs, min(len(pairs), n // 4 + 1))
        pool += [(p.prompt, p.chosen) for p in picked] + [(p.prompt, p.rejected) for p in picked]
    rng.shuffle(pool)
    pool = pool[:n]
    prompts, responses = [p for p, _ in pool], [r for _, r in pool]
    length = LengthTokens(load_tokenizer(base))
    raw = np.column_stack(
        [
            BTHead.load(heads["helpfulness"], device="cpu").score(prompts, responses),
            BTHead.load(heads["harmlessness"], device="cpu").score(prompts, responses),
            length.score(prompts, responses),
        ]
    )
    spec = RiCSpec.fit(REWARDS, raw)
    z = spec.normalise(raw)
    examples = [
        (condition(p, REWARDS, row), r) for p, r, row in zip(prompts, responses, z, strict=True)
    ]
    return examples, spec
