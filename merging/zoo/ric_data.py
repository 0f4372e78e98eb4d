"""Training examples for the rewards-in-context model: responses with their scores in the prompt."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from merging.data import PreferencePair
from merging.ric import RiCSpec, condition

REWARDS = ("helpfulness", "harmlessness", "verbosity")
PROMPT_CENTRED = ("helpfulness", "harmlessness")
"""Rewards whose scores are centred per prompt before normalisation (see build_ric_examples)."""


def centre_per_prompt(chosen: np.ndarray, rejected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's two scores minus their mean: ``(+d/2, -d/2)`` with ``d = chosen - rejected``.

    A Bradley-Terry head is trained on score differences between responses to the same prompt,
    so its absolute score carries an arbitrary per-prompt offset. On HH-RLHF that offset is most
    of the variance (85-88% for both zoo heads: red-team prompts score low whatever the answer),
    and a RiC model trained on raw scores learns that the number describes the prompt, not the
    response it should write. Centring keeps only what the head identifies.
    """
    mid = (chosen + rejected) / 2
    return chosen - mid, rejected - mid


def build_ric_examples(
    helpful: list[PreferencePair],
    harmless: list[PreferencePair],
    heads: dict[str, Path],
    base: Path,
    n: int,
    seed: int = 0,
):
    """``(examples, spec)``: ``n`` (conditioned prompt, response) pairs and the normalisation.

    ``n / 2`` preference pairs are drawn, half from each data set, and both of each pair's
    responses are kept, so that every prompt is seen with a better and a worse answer. Each
    response is scored by the helpfulness and harmlessness heads (centred per prompt, see
    :func:`centre_per_prompt`) and by its length in the base's tokens; the scores are then
    normalised and rounded as in the RiC paper.
    """
    from merging.heads import BTHead, LengthTokens
    from merging.policy import load_tokenizer

    rng = random.Random(seed)
    pairs: list[PreferencePair] = []
    for source in (helpful, harmless):
        pairs += rng.sample(source, min(len(source), max(1, n // 4)))
    prompts = [p.prompt for p in pairs]
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
    columns = []
    for name in REWARDS:
        if name == "verbosity":
            scorer = LengthTokens(load_tokenizer(base))
        else:
            scorer = BTHead.load(heads[name], device="cpu")
        c, r = scorer.score(prompts, chosen), scorer.score(prompts, rejected)
        if name in PROMPT_CENTRED:
            c, r = centre_per_prompt(np.asarray(c), np.asarray(r))
        columns.append(np.concatenate([c, r]))
    raw = np.column_stack(columns)
    spec = RiCSpec.fit(REWARDS, raw)
    z = spec.normalise(raw)
    rows = [(p, r) for p, r in zip(prompts + prompts, chosen + rejected, strict=True)]
    order = list(range(len(rows)))
    rng.shuffle(order)
    examples = [(condition(rows[i][0], REWARDS, z[i]), rows[i][1]) for i in order]
    return examples, spec
