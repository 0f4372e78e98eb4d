"""A study's completed trials with where each stands: the one way ``study show``, ``export``
and the dashboard read and rank them, and the ``RUN#NUMBER`` names users give them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from merging.recipe import MergeRecipe
from pareto.run_spec import RunSpec
from pareto.trial_records import trial_key


@dataclass(frozen=True)
class TrialRecord:
    """A completed trial of a study with where it stands on the study's front."""

    study: str
    storage: str
    run: RunSpec
    number: int
    x: list
    """As the family takes it (one row per block for ``layerwise``)."""
    values: tuple[float, ...]
    stderrs: tuple[float, ...]
    attrs: dict[str, Any]
    rank: int
    """1 = Pareto-optimal over all the study's completed trials."""
    p_nondominated: float
    knee: bool
    reference: dict | None
    checkpoints: dict | None = None
    """Content hashes of the checkpoints the study evaluated (study attribute)."""
    uncertainty: str = ""
    """How ``p_nondominated`` and ``base_difference`` were computed, and from how many draws."""
    draws: int = 0
    base_difference: tuple | None = None
    """``(difference, low, high)`` per objective: this trial minus the base model, with the
    paired 95% interval (None without per-prompt scores)."""

    @property
    def key(self) -> str:
        return trial_key(self.run.label, self.number)

    @property
    def slug(self) -> str:
        return trial_slug(self.run.label, self.number)

    def recipe(self) -> MergeRecipe:
        return MergeRecipe.model_validate(self.attrs["recipe"])

    def study_spec(self):
        from merging.study.spec import parse_study_spec

        return parse_study_spec(self.run.details["study_spec"], f"study {self.study!r} (stored)")


def trial_slug(label: str, number: int) -> str:
    """A trial's folder name: ``RUN-NUMBER`` with anything unsafe in a path replaced."""
    return folder_name(f"{label}-{number}")


def folder_name(text: str) -> str:
    """``text`` with anything but letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


@dataclass(frozen=True)
class RankedStudy:
    """A study's runs read once: each run's results, the report (fronts and hypervolumes), the
    base model's reference evaluation and every completed trial's standing, in the order of
    :attr:`order`."""

    runs: list
    results: list
    report: Any
    reference: dict | None
    standing: Any

    @property
    def order(self) -> list[tuple[str, int]]:
        """``(run, trial number)`` of every completed trial, run by run."""
        return [(r.spec.label, int(n)) for r in self.results for n in r.numbers]


def rank_study(
    storage_url: str,
    study: str,
    *,
    runs: list | None = None,
    trials: list | None = None,
    draws: int | None = None,
) -> RankedStudy:
    """Read and rank ``study`` (``runs``: its ``RunStore``s when already open; ``trials``: each
    run's trials when already read; ``draws``: bootstrap draws, the report's default if None)."""
    from pareto.report import study_report, trial_standing
    from pareto.runs import open_runs
    from pareto.storage import open_storage

    runs = runs or open_runs(open_storage(storage_url), study)
    if trials is None:
        results = [r.results() for r in runs]
    else:
        results = [r.results(t) for r, t in zip(runs, trials, strict=True)]
    report = study_report(results)
    found = (r.study.user_attrs.get("reference") for r in runs)
    reference = next((ref for ref in found if ref is not None), None)
    extra = {} if draws is None else {"n_samples": draws}
    standing = trial_standing(results, report, reference=reference, **extra)
    return RankedStudy(runs, results, report, reference, standing)


def study_trials(storage_url: str, study: str, runs: list | None = None) -> list[TrialRecord]:
    """Every completed trial of ``study``, with its front rank, P(non-dominated) and knee
    (``runs``: the study's ``RunStore``s, when already open)."""
    from merging.study.runner import CHECKPOINTS_ATTR

    ranked = rank_study(storage_url, study, runs=runs)
    runs, results, standing = ranked.runs, ranked.results, ranked.standing
    values = np.vstack([r.values for r in results])
    errs = np.nan_to_num(np.vstack([r.stderrs for r in results]))
    records, i = [], 0
    for run, res in zip(runs, results, strict=True):
        reference = run.study.user_attrs.get("reference")
        checkpoints = run.study.user_attrs.get(CHECKPOINTS_ATTR)
        for number, x, attrs in zip(res.numbers, res.x, res.attrs, strict=True):
            records.append(
                TrialRecord(
                    study=study,
                    storage=storage_url,
                    run=res.spec,
                    number=int(number),
                    x=np.asarray(x, dtype=float).tolist(),
                    values=tuple(float(v) for v in values[i]),
                    stderrs=tuple(float(v) for v in errs[i]),
                    attrs=attrs,
                    rank=int(standing.rank[i]),
                    p_nondominated=float(standing.p_nondominated[i]),
                    knee=bool(standing.knee[i]),
                    reference=reference,
                    checkpoints=checkpoints,
                    uncertainty=standing.method,
                    draws=standing.draws,
                    base_difference=None
                    if standing.base_difference is None
                    else (
                        tuple(standing.base_difference[i].tolist()),
                        tuple(standing.base_low[i].tolist()),
                        tuple(standing.base_high[i].tolist()),
                    ),
                )
            )
            i += 1
    return records


def select_trial(storage_url: str, study: str, trial: str | None, *, knee: bool = False):
    """The trial ``RUN#NUMBER`` (or ``NUMBER`` when the study has one run), or the knee.

    Raises ``ValueError`` with one line naming what is wrong: an unknown run or trial, or a
    trial that did not complete.
    """
    from pareto.runs import open_runs
    from pareto.storage import open_storage

    opened = open_runs(open_storage(storage_url), study)
    runs = {r.spec.label: r for r in opened}
    records = study_trials(storage_url, study, opened)
    if knee:
        found = [r for r in records if r.knee]
        if not found:
            raise ValueError(f"study {study!r} has no completed trial yet: no knee to export")
        return found[0]
    if trial is None:
        raise ValueError("say which trial: --trial RUN#NUMBER, --knee or --front")
    label, sep, number_text = trial.strip().rpartition("#")
    label, number_text = label.strip(), number_text.strip()
    if not sep:  # "NUMBER", or "RUN NUMBER" as older versions of 'study show' printed it
        words = trial.split()
        label, number_text = (words[0], words[1]) if len(words) == 2 else ("", trial.strip())
    if not label:
        if len(runs) > 1:
            raise ValueError(
                f"--trial {trial!r}: study {study!r} has runs {', '.join(runs)}; write "
                f"RUN#NUMBER, e.g. {next(iter(runs))}#"
                f"{number_text if number_text.isdigit() else 0}"
            )
        label = next(iter(runs))
    if label not in runs:
        raise ValueError(f"study {study!r} has no run {label!r}; runs: {', '.join(runs)}")
    try:
        number = int(number_text)
    except ValueError:
        raise ValueError(f"--trial {trial!r}: write RUN#NUMBER, e.g. {label}#0") from None
    for record in records:
        if record.run.label == label and record.number == number:
            return record
    states = {t.number: t for t in runs[label].trials()}
    if number not in states:
        span = f"trials 0-{max(states)}" if states else "no trials"
        key = trial_key(label, number)
        raise ValueError(f"study {study!r} has no trial {key} ({label} has {span})")
    t = states[number]
    why = t.user_attrs.get("error")
    raise ValueError(
        f"trial {trial_key(label, number)} is {t.state.name}, not COMPLETE: only completed "
        "trials can be exported" + (f" (it failed with {why})" if why else "")
    )
