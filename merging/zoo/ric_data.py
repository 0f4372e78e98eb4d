"""Training examples for the rewards-in-context model: answers with their scores in the prompt.

The answers are the zoo's own experts' (each alone, greedily, on training prompts), so that
every prompt has answers that differ the way the objectives do: the helpfulness expert's, the
harmlessness expert's, the concise expert's. Each answer is scored by the zoo's heads and by its
length; each head's score becomes the answer's rank among the answers to the same prompt (a
Bradley-Terry head's score is only meaningful against another answer to the same prompt: its
offset per prompt is most of its variance on HH-RLHF), while a length means the same for every
prompt; a head whose score of one answer is mostly noise has its rank replaced, in part or
whole, by its policy's mean rank on prompts of the same data set (``policy_weight``: the smol
preset does so for harmlessness, whose length-controlled head tells one answer from another
little better than chance); then all are normalised and rounded as in the RiC paper (zero
mean, unit variance, one decimal). Half of the examples show one marker
only, the others written as 0.0, as a sweep of one desired reward writes them. Each example
carries a counterfactual, its markers with one set to another answer's score for the same
prompt, for the contrastive term of :func:`merging.zoo.ric_training.train_ric_lora`. Measured,
these choices (the experts' answers, ranks, one-marker examples, the policy's mean for
harmlessness) made the smol zoo's RiC model follow its markers (docs/ric-investigation.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from merging.data import PreferencePair, Prompt
from merging.ric import RiCSpec

REWARDS = ("helpfulness", "harmlessness", "verbosity")
LEVEL_WORDS = (
    ("unhelpful", "adequate", "helpful"),
    ("edgy", "neutral", "safe"),
    ("short", "medium", "long"),
)
"""The zoo RiC model's level words (:mod:`merging.ric`), lowest to highest, in :data:`REWARDS`
order: a different set for each reward, so that a word says which reward it is about. Three
each, so that every word occurs in training: ranks give a head's score only three values."""


ANSWER_BATCH = 80
"""Prompts per batch when the experts answer on a CPU. Measured on 2 cores (160 training
prompts, 96 new tokens, float32): batch 32 took 120 s, 64 took 80 s, 80 took 65-78 s, 160 took
84 s (longer prompts pad every row); the greedy answers were the same at 32, 64 and 80."""


@dataclass(frozen=True)
class RiCExample:
    """One answer to train on, with what its prompt says and its counterfactual."""

    prompt: Prompt
    """The prompt without markers."""
    response: str
    finished: bool
    """The answer ended its turn (train on its end too) rather than running out of tokens."""
    scores: tuple[float, ...]
    """Normalised, rounded scores in :data:`REWARDS` order: the markers of its prompt."""
    counterfactual: tuple[float, ...]
    """``scores`` with one marker set to another answer's score for the same prompt."""


def answer_prompts(
    helpful: Sequence[PreferencePair], harmless: Sequence[PreferencePair], n: int, seed: int = 0
) -> list[Prompt]:
    """``n`` distinct training prompts, alternately from each data set."""
    rng = random.Random(seed)
    sets = []
    for pairs in (helpful, harmless):
        pool = list({p.prompt.text: p.prompt for p in pairs}.values())
        rng.shuffle(pool)
        sets.append(pool[: (n + 1) // 2])
    return [p for pair in zip(*sets, strict=False) for p in pair][:n]


def answer_sources(n: int) -> list[int]:
    """Which data set each of :func:`answer_prompts`'s ``n`` prompts comes from (0: the
    first, 1: the second): they alternate."""
    return [i % 2 for i in range(n)]


def policy_answers(
    base: Path,
    experts: dict[str, Path],
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    device: str = "cpu",
    mixes: Sequence[Sequence[float]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[list[str]], list[list[bool]]]:
    """Greedy answers of each expert alone: ``(responses, finished)``, each indexed
    ``[expert][prompt]``; in bfloat16 where the zoo builds in it (the answers are training data,
    not measurements). ``mixes``: the policies' weights on the experts (in ``experts`` order),
    one row a policy, each a linear merge; the identity (each expert alone) by default."""
    from merging.device import build_dtype
    from merging.expert_set import ExpertSet
    from merging.generation import GenerationSettings, generate_finished
    from merging.policy import load_tokenizer
    from merging.resident import ResidentMerger

    merger = ResidentMerger(
        ExpertSet.from_paths(base, experts), device=device, dtype=build_dtype(device)
    )
    tok = load_tokenizer(base)
    batch = ANSWER_BATCH if merger.device.type == "cpu" else "auto"
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch)
    responses, finished = [], []
    for weights in np.eye(len(merger.expert_names)) if mixes is None else mixes:
        merger.set_linear(list(weights))
        texts, ended = generate_finished(merger.model, tok, prompts, settings, progress=progress)
        responses.append(texts)
        finished.append(ended)
    return responses, finished


def rank_per_prompt(raw: np.ndarray, group: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """A copy of ``raw`` with each listed column replaced by its rank among the rows of the
    same group, from -1 (lowest) to +1 (highest); ties share their mean rank, and a group of
    one row is 0."""
    from scipy.stats import rankdata

    out = np.array(raw, dtype=float)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        for j in columns:
            if len(rows) == 1:
                out[rows, j] = 0.0
            else:
                out[rows, j] = 2 * (rankdata(out[rows, j]) - 1) / (len(rows) - 1) - 1
    return out


def one_marker_rows(
    z: np.ndarray, share: float, rng: np.random.Generator, weights: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(shown, varied)``: per row, the scores its prompt shows and the marker its
    counterfactual changes. A ``share`` of the rows show one marker, drawn at random (in
    proportion to ``weights``, uniformly by default), with the others written as 0.0 (their
    mean, as a sweep of one reward writes them), and vary that one; the other rows show every
    marker and vary one drawn the same way."""
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    varied = rng.choice(z.shape[1], size=len(z), p=p)
    alone = rng.random(len(z)) < share
    shown = np.where(alone[:, None] & (np.arange(z.shape[1]) != varied[:, None]), 0.0, z)
    return shown, varied


def counterfactual_scores(
    shown: np.ndarray, z: np.ndarray, group: np.ndarray, varied: np.ndarray, rng
) -> np.ndarray:
    """Per row, ``shown`` with marker ``varied`` set to the score another row of the same group
    has there (``z``), drawn among those that differ from the row's own (its negation, or 1.0
    for a 0.0, where none does)."""
    out = np.array(shown, dtype=float)
    for i, k in enumerate(varied):
        rivals = [z[j, k] for j in np.flatnonzero(group == group[i]) if z[j, k] != z[i, k]]
        out[i, k] = float(rng.choice(rivals)) if rivals else (-z[i, k] or 1.0)
    return out


def policy_blend(
    ranked: np.ndarray,
    policy: np.ndarray,
    source: np.ndarray,
    columns: Sequence[int],
    weight: float | Sequence[float],
) -> np.ndarray:
    """A copy of ``ranked`` with each listed column moved a ``weight`` of the way from the
    answer's own rank to its policy's mean rank over the prompts of the same source: a
    shrinkage estimate of what an answer scores, for heads whose score of one answer is mostly
    noise (which policy answered explains 2 to 13% of a length-controlled head's scores within
    a prompt, on the smol zoo's answers). ``weight``: one for every column, or one each.
    Measured in docs/ric-investigation.md ("Harmlessness labels from the policy's mean")."""
    out = np.array(ranked, dtype=float)
    weights = np.broadcast_to(np.asarray(weight, dtype=float), (len(columns),))
    for j, w in zip(columns, weights, strict=True):
        for key in {(a, b) for a, b in zip(policy, source, strict=True)}:
            rows = (policy == key[0]) & (source == key[1])
            out[rows, j] = (1 - w) * ranked[rows, j] + w * ranked[rows, j].mean()
    return out


def build_ric_examples(
    prompts: Sequence[Prompt],
    responses: Sequence[Sequence[str]],
    finished: Sequence[Sequence[bool]],
    heads: dict[str, Path],
    base: Path,
    *,
    one_marker: float = 0.5,
    marker_weights: Sequence[float] | None = None,
    policy_weight: float | Sequence[float] = 0.0,
    sources: Sequence[int] | None = None,
    seed: int = 0,
) -> tuple[list[RiCExample], RiCSpec]:
    """``(examples, spec)`` from the answers of several policies (``[policy][prompt]``, as
    :func:`policy_answers` gives them): each answer is scored by the helpfulness and
    harmlessness heads, each score replaced by its rank among the answers to the same prompt
    (:func:`rank_per_prompt`), and by its length in the base's tokens; then normalised and
    rounded as in the RiC paper. A ``one_marker`` share of the examples show one marker only
    (:func:`one_marker_rows`); which marker an example shows alone, or its counterfactual
    changes, is drawn in proportion to ``marker_weights`` (uniformly by default)."""
    from merging.heads import BTHead, LengthTokens
    from merging.policy import load_tokenizer

    n = len(prompts)
    rows = [(i, policy) for i in range(n) for policy in range(len(responses))]
    all_prompts = [prompts[i] for i, _ in rows]
    all_responses = [responses[policy][i] for i, policy in rows]
    group = np.array([i for i, _ in rows])
    raw = np.column_stack(
        [
            BTHead.load(heads["helpfulness"], device="cpu").score(all_prompts, all_responses),
            BTHead.load(heads["harmlessness"], device="cpu").score(all_prompts, all_responses),
            LengthTokens(load_tokenizer(base)).score(all_prompts, all_responses),
        ]
    )
    ranked = rank_per_prompt(raw, group, [0, 1])  # the heads' scores; lengths stay as they are
    source = np.array([(sources or [0] * n)[i] for i, _ in rows])
    ranked = policy_blend(ranked, np.array([q for _, q in rows]), source, [0, 1], policy_weight)
    spec = RiCSpec.fit(REWARDS, ranked, LEVEL_WORDS)
    z = spec.normalise(ranked)
    rng = np.random.default_rng(seed)
    shown, varied = one_marker_rows(z, one_marker, rng, marker_weights)
    counter = counterfactual_scores(shown, z, group, varied, rng)
    examples = [
        RiCExample(
            prompt=all_prompts[r],
            response=all_responses[r],
            finished=bool(finished[policy][i]),
            scores=tuple(map(float, shown[r])),
            counterfactual=tuple(map(float, counter[r])),
        )
        for r, (i, policy) in enumerate(rows)
    ]
    return examples, spec
