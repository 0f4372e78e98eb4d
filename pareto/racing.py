"""Racing evaluation: spend prompts where the front is.

A candidate is scored on the study's prompts in batches, in one fixed order (the same for
every candidate, so comparisons stay paired). After each batch, the joint bootstrap over the
prompts scored so far asks how likely the candidate is dominated by some already evaluated
trial (in each draw, by any of them: one minus its P(non-dominated) among them); when that is
at least ``1 - epsilon``, the candidate stops there ("raced out") and keeps the prompts it
used. A candidate near the front gets every prompt.

Each peer is compared on the candidate's prompts only (every peer has at least as many: the
order is fixed), so the comparison is exactly paired. A raced-out trial's values are then
estimated through the anchor (the base model, scored on every prompt):
:meth:`pareto.prompt_scores.PromptScores.means`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pareto._arrays import sign_vector
from pareto.prompt_scores import PromptScores
from pareto.uncertainty import joint_bootstrap


class RacingSettings(BaseModel):
    """How a study races its candidates (``racing:`` in a study file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch: int = Field(8, ge=1, le=100_000)
    """Prompts scored between two decisions; the first decision comes after one batch."""
    epsilon: float = Field(0.05, gt=0.0, lt=0.5)
    """A candidate stops when some peer dominates it with probability at least
    ``1 - epsilon``."""
    draws: int = Field(400, ge=50, le=100_000)
    """Bootstrap draws per decision."""


@dataclass(frozen=True)
class RaceResult:
    scores: np.ndarray
    """``(k, m)`` the candidate's scores on the first ``k`` prompts."""
    raced_out: bool
    by: int | None
    """Index (into ``peers``) of the trial most likely to dominate it at the last decision."""
    p_dominated: float
    """The probability that some peer dominated it at the last decision."""
    decisions: list[tuple[int, float]]
    """``(prompts scored, P(dominated by some peer))`` at each decision."""


def dominance_draws(
    candidate: np.ndarray,
    peers: Sequence[np.ndarray],
    senses: Sequence[str],
    *,
    draws: int = 400,
    seed: int = 0,
) -> np.ndarray:
    """``(draws, len(peers))``: in each draw of one joint bootstrap over the candidate's
    prompts (``(k, m)``; each peer has at least ``k`` rows, compared on the same ``k``), whether
    each peer dominates the candidate."""
    k = len(candidate)
    if not peers:
        return np.zeros((draws, 0), dtype=bool)
    stacked = np.stack([candidate, *(np.asarray(p)[:k] for p in peers)])
    boot = joint_bootstrap(
        PromptScores(stacked, np.full(len(stacked), k)), senses, n_draws=draws, seed=seed
    )
    z = boot.draws * sign_vector(boot.senses)
    cand, others = z[:, :1], z[:, 1:]
    return (others <= cand).all(axis=2) & (others < cand).any(axis=2)


def p_dominated_by(
    candidate: np.ndarray,
    peers: Sequence[np.ndarray],
    senses: Sequence[str],
    *,
    draws: int = 400,
    seed: int = 0,
) -> np.ndarray:
    """For each peer, the probability that it dominates ``candidate`` (paired, on the
    candidate's prompts)."""
    return dominance_draws(candidate, peers, senses, draws=draws, seed=seed).mean(axis=0)


def race(
    score_batch: Callable[[int, int], np.ndarray],
    n_prompts: int,
    peers: Sequence[np.ndarray],
    senses: Sequence[str],
    settings: RacingSettings,
    *,
    seed: int = 0,
) -> RaceResult:
    """Score a candidate batch by batch (``score_batch(lo, hi)`` returns ``(hi - lo, m)``
    scores of prompts ``lo..hi``) until some peer dominates it with probability
    ``>= 1 - epsilon`` or every prompt is scored. Peers scored on fewer prompts than the
    candidate has reached stop counting from then on."""
    parts: list[np.ndarray] = []
    decisions: list[tuple[int, float]] = []
    done, best, by = 0, 0.0, None
    while done < n_prompts:
        hi = min(done + settings.batch, n_prompts)
        batch = np.asarray(score_batch(done, hi), dtype=float)
        if batch.shape[0] != hi - done:
            raise ValueError(f"score_batch({done}, {hi}) gave {batch.shape[0]} rows")
        parts.append(batch)
        done = hi
        if done == n_prompts:
            break
        scores = np.concatenate(parts)
        eligible = [j for j, p in enumerate(peers) if len(p) >= done]
        if not eligible:
            continue
        hits = dominance_draws(
            scores, [peers[j] for j in eligible], senses, draws=settings.draws, seed=seed + done
        )
        by = eligible[int(np.argmax(hits.mean(axis=0)))]
        best = float(hits.any(axis=1).mean())
        decisions.append((done, best))
        if best >= 1.0 - settings.epsilon:
            return RaceResult(scores, True, by, best, decisions)
    return RaceResult(np.concatenate(parts), False, by, best, decisions)


def raced_estimate(
    scores: np.ndarray, anchor: np.ndarray | None, *, draws: int = 400, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard errors of a candidate scored on a prefix of the prompts: through
    the anchor's paired differences when there is one (standard errors from the bootstrap)."""
    k = len(scores)
    if anchor is None or len(anchor) < k:
        sd = scores.std(axis=0, ddof=1) if k > 1 else np.zeros(scores.shape[1])
        return scores.mean(axis=0), sd / np.sqrt(k)
    ps = PromptScores.from_rows([scores], anchor)
    boot = joint_bootstrap(ps, "max", n_draws=draws, seed=seed)
    return ps.means()[0], boot.draws[:, 0].std(axis=0, ddof=1)


def front_recovered(
    full: np.ndarray, raced: np.ndarray, senses: Sequence[str]
) -> tuple[float, float, float]:
    """``(hypervolume of full, hypervolume of raced, IGD+ of raced to full's front)``: how much
    of a full evaluation's front racing recovers, both sets of ``(n, m)`` values on one
    normalisation (the reference point and bounds from both together)."""
    from pareto.dominance import pareto_mask
    from pareto.hypervolume import hypervolume
    from pareto.igd import igd_plus
    from pareto.reference import reference_point

    both = np.vstack([full, raced])
    ref = reference_point(both, senses)
    low, high = both.min(axis=0), both.max(axis=0)
    bounds = (low, np.where(high > low, high, low + 1.0))
    front = full[pareto_mask(full, senses)]
    return (
        hypervolume(full, ref, senses, bounds=bounds),
        hypervolume(raced, ref, senses, bounds=bounds),
        igd_plus(raced, front, senses, bounds=bounds),
    )
