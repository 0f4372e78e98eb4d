"""What ``study show`` and the dashboard report about a study: fronts, hypervolumes, the knee.

Hypervolumes of a study's runs are comparable: all use one reference point (the nadir of every
completed trial of the study plus 10% of each objective's range) and one normalisation (each
objective scaled by the study's observed range), as METHODS.md asks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pareto.choice import knee_point
from pareto.dominance import nondominated_sort, pareto_mask
from pareto.hypervolume import hypervolume
from pareto.prompt_scores import PromptScores
from pareto.reference import reference_point
from pareto.trial_records import RunResults, trial_scores
from pareto.uncertainty import (
    DEFAULT_DRAWS,
    DEFAULT_SAMPLES,
    dominance_probability,
    joint_bootstrap,
)

PAIRED = "paired bootstrap over prompts"
INDEPENDENT = "independent normal errors (this study kept no per-prompt scores)"


@dataclass(frozen=True)
class RunRow:
    label: str
    family: str
    driver: str
    budget: int
    completed: int
    hypervolume: float
    front_size: int


@dataclass(frozen=True)
class FrontRow:
    label: str
    trial: int
    x: list
    values: tuple[float, ...]
    stderrs: tuple[float, ...]
    knee: bool


@dataclass(frozen=True)
class StudyReport:
    study: str
    objectives: tuple[str, ...]
    senses: tuple[str, ...]
    runs: tuple[RunRow, ...]
    front: tuple[FrontRow, ...]
    """The study's non-dominated trials over all runs, knee marked."""
    reference_point: tuple[float, ...] | None
    bounds: tuple[tuple[float, ...], tuple[float, ...]] | None
    """``(low, high)`` per objective used to normalise before the hypervolume."""

    def as_dict(self) -> dict:
        return {
            "study": self.study,
            "objectives": [
                {"name": n, "sense": s} for n, s in zip(self.objectives, self.senses, strict=True)
            ],
            "reference_point": list(self.reference_point) if self.reference_point else None,
            "normalisation": {"low": list(self.bounds[0]), "high": list(self.bounds[1])}
            if self.bounds
            else None,
            "runs": [r.__dict__ for r in self.runs],
            "front": [
                {**r.__dict__, "values": list(r.values), "stderrs": list(r.stderrs)}
                for r in self.front
            ],
        }


def study_report(results: list[RunResults], *, margin: float = 0.1) -> StudyReport:
    """Summarise the completed trials of a study's runs."""
    if not results:
        raise ValueError("no runs to report")
    objectives, senses = results[0].spec.objectives, results[0].spec.senses
    for r in results:
        if r.spec.objectives != objectives or r.spec.senses != senses:
            raise ValueError(
                f"run {r.spec.label!r} has objectives {r.spec.objectives}, not {objectives}"
            )
    study = results[0].spec.study
    all_values = np.vstack([r.values for r in results])
    if len(all_values) == 0:
        runs = tuple(_row(r, 0.0, 0) for r in results)
        return StudyReport(study, objectives, senses, runs, (), None, None)
    ref = reference_point(all_values, senses, margin=margin)
    low, high = all_values.min(axis=0), all_values.max(axis=0)  # the observed range
    # an objective every trial scored alike has no range to normalise by: give it the width
    # the reference point policy gives it (max(|v|, 1)); every trial then scores the same
    # there, which leaves the hypervolumes' order to the other objectives
    high = np.where(high > low, high, low + np.maximum(np.abs(low), 1.0))
    bounds = (low, high)
    runs = []
    for r in results:
        if len(r.values):
            hv = hypervolume(r.values, ref, senses, bounds=bounds)
            size = int(pareto_mask(r.values, senses).sum())
        else:
            hv, size = 0.0, 0
        runs.append(_row(r, hv, size))
    labels = [r.spec.label for r in results for _ in range(len(r.values))]
    trials = np.concatenate([r.numbers for r in results])
    xs = [x for r in results for x in r.x]
    errs = np.vstack([r.stderrs for r in results])
    mask = pareto_mask(all_values, senses)
    front_idx = np.flatnonzero(mask)
    knee = int(front_idx[knee_point(all_values[front_idx], senses)])
    front = tuple(
        FrontRow(
            label=labels[i],
            trial=int(trials[i]),
            x=np.asarray(xs[i]).tolist(),
            values=tuple(float(v) for v in all_values[i]),
            stderrs=tuple(float(v) for v in errs[i]),
            knee=bool(i == knee),
        )
        for i in front_idx
    )
    return StudyReport(
        study,
        objectives,
        senses,
        tuple(runs),
        front,
        tuple(float(v) for v in ref),
        (tuple(float(v) for v in low), tuple(float(v) for v in high)),
    )


@dataclass(frozen=True)
class Standing:
    """Where each completed trial of a study stands, in run order then trial order (the
    order of ``study_report``'s runs and of ``RunResults``)."""

    rank: np.ndarray
    """Non-dominated sorting rank over the whole study, from 1 (Pareto-optimal)."""
    p_nondominated: np.ndarray
    """Probability of being non-dominated under the noise of the means (NaN counts as 0)."""
    knee: np.ndarray
    """True for the study's knee."""
    method: str = INDEPENDENT
    """How ``p_nondominated`` and the intervals were computed: :data:`PAIRED` when every
    trial kept its per-prompt scores, else :data:`INDEPENDENT`."""
    prompts_used: np.ndarray | None = None
    """Prompts each trial was scored on (fewer than the study's: raced out), when known."""
    base_difference: np.ndarray | None = None
    """``(n, m)`` each trial minus the base model, with its paired 95% interval
    ``base_low``/``base_high`` (None without the base's per-prompt scores)."""
    base_low: np.ndarray | None = None
    base_high: np.ndarray | None = None
    draws: int = 0
    """Monte-Carlo or bootstrap draws behind ``p_nondominated``."""


def trial_standing(
    results: list[RunResults],
    report: StudyReport,
    *,
    reference: dict | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> Standing:
    """Rank, P(non-dominated), knee and differences from the base of every completed trial
    of ``report``'s study: what ``study show``, the dashboard and an export's model card
    state, computed in one place.

    When every trial kept its per-prompt scores (all on one prompt order), the probabilities
    and intervals come from the joint bootstrap over prompts, with ``reference`` (the study's
    ``reference`` attribute: the base model's evaluation) as the anchor; otherwise from
    independent normal errors, and ``method`` says so."""
    values = np.vstack([r.values for r in results])
    if not len(values):
        empty = np.zeros(0)
        return Standing(empty.astype(int), empty, empty.astype(bool))
    senses = report.senses
    knee_keys = {(r.label, r.trial) for r in report.front if r.knee}
    rank = nondominated_sort(values, senses) + 1
    knee = np.array([(r.spec.label, int(n)) in knee_keys for r in results for n in r.numbers])
    scores = paired_scores(results, reference)
    if scores is None:
        errs = np.nan_to_num(np.vstack([r.stderrs for r in results]))
        p = dominance_probability(values, errs, senses, n_samples=n_samples, seed=seed)
        return Standing(rank, p, knee, draws=n_samples)
    draws = min(n_samples, DEFAULT_DRAWS)
    boot = joint_bootstrap(scores, senses, n_draws=draws, seed=seed)
    diff = low = high = None
    if scores.anchor is not None:
        diff, low, high = boot.anchor_differences()
    return Standing(
        rank,
        boot.p_nondominated(),
        knee,
        method=PAIRED,
        prompts_used=scores.used.copy(),
        base_difference=diff,
        base_low=low,
        base_high=high,
        draws=draws,
    )


def hypervolume_intervals(
    results: list[RunResults],
    report: StudyReport,
    *,
    reference: dict | None = None,
    draws: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict | None:
    """Each run's hypervolume with its ``level`` percentile interval from the joint bootstrap
    over prompts, and every pair's paired difference, at the report's reference point and
    normalisation: ``{"runs": {label: (hv, low, high)}, "differences": {(a, b): (d, low,
    high)}}``; None where the trials kept no per-prompt scores."""
    scores = paired_scores(results, reference)
    if scores is None or report.reference_point is None:
        return None
    from pareto.uncertainty import hypervolume_draws, percentile_interval

    boot = joint_bootstrap(scores, report.senses, n_draws=draws, seed=seed)
    starts = np.cumsum([0] + [len(r.values) for r in results])
    runs = [range(a, b) for a, b in itertools.pairwise(starts)]
    hv = hypervolume_draws(boot, runs, report.reference_point, report.bounds)
    labels = [r.spec.label for r in results]
    point = {row.label: row.hypervolume for row in report.runs}
    low, high = percentile_interval(hv, level)
    out: dict = {"runs": {}, "differences": {}}
    for i, a in enumerate(labels):
        out["runs"][a] = (point[a], float(low[i]), float(high[i]))
        for j, b in enumerate(labels):
            if j > i:
                d_low, d_high = percentile_interval(hv[:, i] - hv[:, j], level)
                out["differences"][(a, b)] = (point[a] - point[b], float(d_low), float(d_high))
    return out


def format_difference(diff: float, low: float, high: float) -> str:
    """A difference from the base with its paired interval, as every view prints it:
    ``+0.12 [+0.05, +0.2]``."""
    return f"{diff:+.3g} [{low:+.3g}, {high:+.3g}]"


def paired_scores(results: list[RunResults], reference: dict | None) -> PromptScores | None:
    """Every trial's per-prompt scores as one :class:`PromptScores`, anchored on the base's
    when ``reference`` holds them; None when any trial lacks them, or their prompt counts
    disagree with the base's."""
    rows = [s for r in results for s in r.prompt_scores]
    if not rows or any(s is None for s in rows) or len(rows) != sum(len(r.values) for r in results):
        return None
    objectives = results[0].spec.objectives
    anchor = trial_scores(reference or {}, objectives)
    if anchor is not None and max(len(s) for s in rows) > len(anchor):
        anchor = None
    return PromptScores.from_rows(rows, anchor)


def _row(r: RunResults, hv: float, size: int) -> RunRow:
    return RunRow(
        label=r.spec.label,
        family=r.spec.family,
        driver=r.spec.driver,
        budget=r.spec.budget,
        completed=len(r.values),
        hypervolume=float(hv),
        front_size=size,
    )


def hypervolume_history(
    values: object,
    reference: object,
    senses,
    *,
    bounds: tuple | None = None,
    points: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Hypervolume of the first ``k`` evaluations, for up to ``points`` values of ``k``.

    ``values`` are in evaluation order. The counts ``k`` are spread evenly over ``1..n`` and
    always include ``n``, so a convergence curve of any length costs at most ``points``
    hypervolume computations.

    Returns:
        ``(counts, hypervolumes)``, both of length ``min(n, points)``.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    if points < 1:
        raise ValueError(f"points must be >= 1; got {points}")
    counts = np.unique(np.r_[np.linspace(1, n, min(n, points)).round(), n].astype(int))
    if len(counts) > points:  # points == 1: the whole run only
        counts = counts[-points:]
    hvs = np.array([hypervolume(v[:k], reference, senses, bounds=bounds) for k in counts])
    return counts, hvs
