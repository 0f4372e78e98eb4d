"""Racing a study's candidates: stop scoring one once a completed trial surely dominates it.

:class:`Racing` keeps, per run, the completed trials that kept their per-prompt scores (read
from the attached runs as they complete) and the base model's scores (the anchor through
which a raced-out candidate's means are estimated), and turns a batch-by-batch evaluation
into an :class:`~pareto.trial_records.Outcome` (:func:`pareto.racing.race`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pareto.run_spec import RunSpec
from pareto.run_store import RunStore
from pareto.trial_records import Outcome, trial_attrs, trial_scores


class Racing:
    """The trials each run's candidates race against, for objectives ``objectives``."""

    def __init__(self, objectives: Sequence[str]):
        self.names = list(objectives)
        self._stores: dict[str, RunStore] = {}
        self._peer_scores: dict[str, dict[int, np.ndarray | None]] = {}
        self._anchor: np.ndarray | None = None

    def attach(self, runs: list[RunStore]) -> None:
        """The stored runs whose completed trials (and reference) the candidates race."""
        self._stores = {run.spec.label: run for run in runs}

    def race(
        self, run: RunSpec, evaluate: Callable, attrs: dict, *, prompts: int, settings: Any
    ) -> Outcome:
        """Score batch by batch until a completed trial of the run surely dominates the
        candidate, or every one of the ``prompts`` prompts is scored
        (:func:`pareto.racing.race`); ``evaluate(span)`` scores prompts ``span = (lo, hi)``,
        ``attrs`` are the trial's attributes so far (merge timing, recipe)."""
        from pareto.racing import race

        names, results = self.names, []

        def score_batch(lo: int, hi: int) -> np.ndarray:
            result = evaluate((lo, hi))
            results.append(result)
            return np.array([result.scores[n] for n in names], dtype=float).T

        # no base scores yet (a worker that started before the base was evaluated): a raced
        # out trial could not be estimated through them, so this one gets every prompt
        anchor = self._anchor_scores(run.label)
        peer_numbers, peers = self._peers(run.label) if anchor is not None else ([], [])
        outcome = race(score_batch, prompts, peers, run.senses, settings)
        means, errs = self._estimate(outcome, anchor)
        _add_timings(attrs["timings"], results)
        attrs.update(
            eval_hash=results[0].eval_hash,
            cached=all(r.cached for r in results),
            samples=results[0].samples,
            prompts_used=len(outcome.scores),
            raced_out=outcome.raced_out,
            p_dominated=round(outcome.p_dominated, 4),
        )
        if outcome.raced_out:
            attrs["raced_out_by"] = int(peer_numbers[outcome.by])
        return Outcome(
            values={n: float(means[j]) for j, n in enumerate(names)},
            stderrs={n: float(errs[j]) for j, n in enumerate(names)},
            attrs=attrs,
            scores={n: outcome.scores[:, j].tolist() for j, n in enumerate(names)},
        )

    def _estimate(self, outcome, anchor: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Objective means and standard errors of a race's scores: through the anchor when
        the candidate was raced out on a prefix of the prompts."""
        from merging.evaluate import mean_and_stderr
        from pareto.racing import raced_estimate

        scores = outcome.scores
        if outcome.raced_out:
            return raced_estimate(scores, anchor)
        pairs = [mean_and_stderr(scores[:, j]) for j in range(len(self.names))]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def _peers(self, label: str) -> tuple[list[int], list[np.ndarray]]:
        """The run's completed trials that kept their per-prompt scores: numbers, scores."""
        from optuna.trial import TrialState

        store = self._stores.get(label)
        if store is None:
            return [], []
        known = self._peer_scores.setdefault(label, {})
        for t in store.trials(states=(TrialState.COMPLETE,)):
            if t.number not in known:
                known[t.number] = trial_scores(trial_attrs(t), self.names)
        kept = [(n, s) for n, s in known.items() if s is not None]
        return [n for n, _ in kept], [s for _, s in kept]

    def _anchor_scores(self, label: str) -> np.ndarray | None:
        """The base model's per-prompt scores, from the run's reference."""
        if self._anchor is None and label in self._stores:
            reference = self._stores[label].study.user_attrs.get("reference") or {}
            self._anchor = trial_scores(reference, self.names)
        return self._anchor


def _add_timings(timings: dict, results: list) -> None:
    """Add each batch's evaluation timings to the trial's ``timings``."""
    for r in results:
        for key, value in r.timings.items():
            timings[key] = round(timings.get(key, 0.0) + value, 3)
