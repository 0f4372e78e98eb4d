"""What the dashboard shows, read from a study's Optuna storage into plain tables.

No Streamlit here: pages cache these functions, tests call them directly. One row per
completed trial of every run of a study, with the study-wide Pareto analysis attached
(front membership and rank, the knee, the probability of being non-dominated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pareto.dominance import pareto_mask
from pareto.report import (
    RunRow,
    Standing,
    StudyReport,
    format_difference,
    hypervolume_history,
    hypervolume_intervals,
)
from pareto.runs import open_runs, study_names
from pareto.storage import open_storage, safe_url
from pareto.trial_records import RunResults, trial_key
from pareto.uncertainty import DEFAULT_SAMPLES

RESERVED = (
    # columns of the trials table
    "key",
    "run",
    "family",
    "driver",
    "trial",
    "evaluation",
    "completed_at",
    "rank",
    "on_front",
    "knee",
    "p_nondominated",
    "prompts_used",
    # columns the charts add
    "selected",
    "order",
    "source",
    "x_lo",
    "x_hi",
    "y_lo",
    "y_hi",
)
"""Column names an objective may not take (the trials table's, and those charts add)."""

DOMINANCE_DRAWS = DEFAULT_SAMPLES  # as the model card of an export says
OBJECTIVE_COLUMNS = ("stderr", "vs_base", "vs_base_low", "vs_base_high", "vs_base_text")
"""Columns ``{objective}_{suffix}`` of the trials table: the standard error, and the paired
difference from the base with its 95% interval (NaN, text empty, without per-prompt scores)."""


def storage_label(url: str, parts: int = 2) -> str:
    """A short name for a storage: the SQLite file with its last folders, or the URL without
    its password."""
    if url.startswith("sqlite:///"):
        return "/".join(Path(url.removeprefix("sqlite:///")).parts[-parts:])
    return safe_url(url)


def storage_labels(urls: list[str]) -> dict[str, str]:
    """Distinct short names for distinct storages (more folders where two would clash)."""
    unique = list(dict.fromkeys(urls))
    for parts in range(2, 64):
        labels = {u: storage_label(u, parts) for u in unique}
        if len(set(labels.values())) == len(unique):
            return labels
    return {u: u for u in unique}


@dataclass(frozen=True)
class StudyRef:
    """A study in a storage; ``id`` is what the dashboard keeps in its URL."""

    storage: str
    name: str
    label: str = ""
    """The storage's short name (:func:`storage_labels`)."""

    @property
    def id(self) -> str:
        return f"{self.name} @ {self.label or storage_label(self.storage)}"


def list_studies(storages: list[str]) -> list[StudyRef]:
    """Every paretomerge study in the given storages (each once), in storage order then
    creation order."""
    labels = storage_labels(storages)
    return [
        StudyRef(url, name, label)
        for url, label in labels.items()
        for name in study_names(open_storage(url))
    ]


@dataclass(frozen=True)
class RunSummary(RunRow):
    """A run as ``study show`` reports it, with what the Studies page adds."""

    experts: tuple[str, ...]
    running: int
    waiting: int
    failed: int
    last_update: datetime | None
    hypervolume_interval: tuple[float, float] | None = None
    """The 95% interval of the hypervolume from the joint bootstrap over prompts (at the
    study's normalisation); None where the trials kept no per-prompt scores."""


@dataclass
class StudyData:
    """A study's completed trials and what the pages derive from them."""

    ref: StudyRef
    objectives: tuple[str, ...]
    senses: tuple[str, ...]
    runs: tuple[RunSummary, ...]
    trials: pd.DataFrame
    """One row per completed trial: ``key`` (``RUN#NUMBER``), ``run``, ``family``,
    ``driver``, ``trial``, ``evaluation``, ``completed_at``, ``rank`` (1 = Pareto-optimal),
    ``on_front``, ``knee``, ``p_nondominated``, ``prompts_used``, each objective and its
    ``{obj}_stderr`` and ``{obj}_vs_base*`` columns (:data:`OBJECTIVE_COLUMNS`)."""
    details: dict[str, dict] = field(default_factory=dict)
    """Per trial key: ``x``, ``recipe``, ``samples``, ``timings`` and the other attributes."""
    experts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per run label: the names of the experts (or conditioned rewards) ``x`` refers to."""
    reference: dict | None = None
    """The base model's ``values``, ``stderr`` and ``samples``, when the study recorded them."""
    uncertainty: str = ""
    """How P(non-dominated) and the intervals were computed (``pareto.report.PAIRED``, or the
    independent-normal fallback for studies without per-prompt scores)."""
    report: StudyReport | None = None
    history: pd.DataFrame | None = None
    """Hypervolume after each number of evaluations, per run (columns run, driver,
    evaluations, hypervolume)."""

    @property
    def last_update(self) -> datetime | None:
        times = [r.last_update for r in self.runs if r.last_update is not None]
        return max(times) if times else None

    def sense_of(self, objective: str) -> str:
        return self.senses[self.objectives.index(objective)]


def load_study(ref: StudyRef, *, draws: int = DOMINANCE_DRAWS) -> StudyData:
    """Read every run of ``ref`` and analyse the study's front."""
    from optuna.trial import TrialState

    from merging.study.trials import rank_study

    runs = open_runs(open_storage(ref.storage), ref.name)
    trials_of = [r.trials() for r in runs]  # one read per run, for results and counts
    objectives, senses = runs[0].spec.objectives, runs[0].spec.senses
    derived = [f"{o}_{suffix}" for o in objectives for suffix in OBJECTIVE_COLUMNS]
    clash = set(RESERVED) & {*objectives, *derived}
    if clash:
        raise ValueError(f"objective names {sorted(clash)} clash with the dashboard's columns")
    ranked = rank_study(ref.storage, ref.name, runs=runs, trials=trials_of, draws=draws)
    results, report, reference, standing = (
        ranked.results,
        ranked.report,
        ranked.reference,
        ranked.standing,
    )
    hv = {row.label: row for row in report.runs}
    intervals = hypervolume_intervals(results, report, reference=reference)

    summaries, frames, details, experts = [], [], {}, {}
    for run, res, all_trials in zip(runs, results, trials_of, strict=True):
        spec = run.spec
        experts[spec.label] = tuple(spec.experts)
        states = [t.state for t in all_trials]
        stamps = [t.datetime_complete or t.datetime_start for t in all_trials if t.datetime_start]
        summaries.append(
            RunSummary(
                **vars(hv[spec.label]),
                experts=tuple(spec.experts),
                running=states.count(TrialState.RUNNING),
                waiting=states.count(TrialState.WAITING),
                failed=states.count(TrialState.FAIL),
                last_update=max(stamps) if stamps else None,
                hypervolume_interval=None
                if intervals is None
                else intervals["runs"][spec.label][1:],
            )
        )
        frames.append(_run_frame(res))
        for number, x, attrs in zip(res.numbers, res.x, res.attrs, strict=True):
            details[trial_key(spec.label, int(number))] = {**attrs, "x": np.asarray(x).tolist()}

    trials = pd.concat(frames, ignore_index=True)
    _analyse(trials, standing, objectives)
    history = _history(results, report)
    return StudyData(
        ref=ref,
        objectives=tuple(objectives),
        senses=tuple(senses),
        runs=tuple(summaries),
        trials=trials,
        details=details,
        experts=experts,
        reference=reference,
        uncertainty=standing.method,
        report=report,
        history=history,
    )


def _run_frame(res: RunResults) -> pd.DataFrame:
    spec = res.spec
    frame = pd.DataFrame(
        {
            "key": [trial_key(spec.label, int(n)) for n in res.numbers],
            "run": spec.label,
            "family": spec.family,
            "driver": spec.driver,
            "trial": res.numbers.astype(int),
            "evaluation": np.arange(1, len(res.numbers) + 1),
            "completed_at": pd.to_datetime(res.completed_at),
        }
    )
    for j, name in enumerate(spec.objectives):
        frame[name] = res.values[:, j]
        frame[f"{name}_stderr"] = res.stderrs[:, j]
    return frame


def _analyse(trials: pd.DataFrame, standing: Standing, objectives) -> None:
    """Add rank, front membership, knee, P(non-dominated), prompts used and the paired
    differences from the base to ``trials`` in place."""
    trials["rank"] = standing.rank  # 1 = the front
    trials["on_front"] = standing.rank == 1
    trials["knee"] = standing.knee
    trials["p_nondominated"] = standing.p_nondominated
    n = len(trials)
    used = standing.prompts_used
    trials["prompts_used"] = pd.array(used if used is not None else [None] * n, dtype="Int64")
    for j, o in enumerate(objectives):
        if standing.base_difference is None:
            nan = np.full(n, np.nan)
            trials[f"{o}_vs_base"] = trials[f"{o}_vs_base_low"] = trials[f"{o}_vs_base_high"] = nan
            trials[f"{o}_vs_base_text"] = ""
            continue
        d = standing.base_difference[:, j]
        lo, hi = standing.base_low[:, j], standing.base_high[:, j]
        trials[f"{o}_vs_base"], trials[f"{o}_vs_base_low"], trials[f"{o}_vs_base_high"] = d, lo, hi
        trials[f"{o}_vs_base_text"] = [format_difference(*v) for v in zip(d, lo, hi, strict=True)]


HISTORY_POINTS = 200


def _history(results: list[RunResults], report: StudyReport) -> pd.DataFrame:
    rows = []
    if report.reference_point is None:
        return pd.DataFrame(columns=["run", "driver", "evaluations", "hypervolume"])
    for res in results:
        if not len(res.values):
            continue
        counts, hvs = hypervolume_history(
            res.values,
            report.reference_point,
            res.spec.senses,
            bounds=report.bounds,
            points=HISTORY_POINTS,
        )
        rows += [
            {"run": res.spec.label, "driver": res.spec.driver, "evaluations": c, "hypervolume": h}
            for c, h in zip(counts, hvs, strict=True)
        ]
    return pd.DataFrame(rows, columns=["run", "driver", "evaluations", "hypervolume"])


def pair_front(frame: pd.DataFrame, x: str, y: str, senses: tuple[str, str]) -> pd.DataFrame:
    """The trials non-dominated in objectives ``x`` and ``y`` alone, sorted along ``x``."""
    if frame.empty:
        return frame
    mask = pareto_mask(frame[[x, y]].to_numpy(float), list(senses))
    return frame[mask].sort_values([x, y])


def x_table(details: dict, experts: tuple[str, ...]) -> pd.DataFrame:
    """:func:`x_rows` as a table with columns ``group``, ``name``, ``value``."""
    return pd.DataFrame(x_rows(details, experts), columns=["group", "name", "value"])


def x_rows(details: dict, experts: tuple[str, ...]) -> list[tuple[str, str, float]]:
    """``x`` the way its family means it, as rows ``(group, name, value)``
    (:func:`merging.families.x_rows` on the trial's stored recipe)."""
    from merging.families import x_rows as family_x_rows

    return family_x_rows(details.get("recipe"), details.get("x", []), experts)


def x_caption(family: str) -> str:
    """What ``x`` of ``family`` is, in a few words (the family's own ``x_caption``)."""
    from merging.families import FAMILIES, Family, get_family

    return (get_family(family) if family in FAMILIES else Family).x_caption


def samples_table(details: dict, reference: dict | None, objectives) -> pd.DataFrame:
    """The trial's sample generations beside the base model's for the same prompts."""
    base = {s["prompt"]: s for s in (reference or {}).get("samples", [])}
    rows = []
    for s in details.get("samples", []):
        b = base.get(s["prompt"], {})
        row = {
            "prompt": s["prompt"],
            "response": shown_text(s["response"]),
            "base response": shown_text(b.get("response")),
        }
        for o in objectives:
            row[o] = s.get("scores", {}).get(o)
            row[f"base {o}"] = b.get("scores", {}).get(o)
        rows.append(row)
    return pd.DataFrame(rows)


def shown_text(text: str | None) -> str | None:
    """A generated answer as shown: "(empty)" for one with no visible character (a model that
    stops at once), None when nothing was recorded."""
    if text is None:
        return None
    return text if text.strip() else "(empty)"


def interval_text(interval: tuple[float, float] | None) -> str:
    """A hypervolume's interval as the pages print it, ``[0.412, 0.618]``; empty for none."""
    return "" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def format_value(value: float, stderr: float | None) -> str:
    if stderr is None or not math.isfinite(stderr):
        return f"{value:.4g}"
    return f"{value:.4g} ± {stderr:.2g}"
