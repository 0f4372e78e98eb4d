"""The trial store: every evaluation of a study is an Optuna trial in an Optuna storage.

A paretomerge study holds one Optuna study per *run* (a family searched by one driver), named
``STUDY/LABEL``, whose directions are the objectives' senses. A trial's parameters are the
unit-cube coordinates ``u0 ..`` (see :mod:`pareto.search.base`), its values the objective means;
its user attributes hold ``x``, the standard errors, the per-prompt scores, the family, the
driver, the generation and slot (batched drivers), timings, the evaluation hash, sample
generations and the worker that ran it (:mod:`pareto.trial_records`). Study-level facts
(family, driver, budget, space, objectives) are the Optuna study's user attribute
``paretomerge`` (:class:`~pareto.run_spec.RunSpec`). So Optuna's own API, dashboard and tools
open it. How processes share a run, and what a crash leaves, is :mod:`pareto.claims`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from pareto import claims
from pareto.prompt_scores import encode_scores
from pareto.run_spec import ATTRIBUTE, RunSpec
from pareto.storage import quiet_experimental
from pareto.trial_records import (
    BULKY_ATTRS,
    BULKY_PREFIX,
    SCORES_ATTR,
    Counts,
    Outcome,
    RunResults,
    param_name,
    trial_attrs,
    trial_scores,
)


class RunConflict(ValueError):
    """A run of that name is stored already, with settings that identify another run."""


class RunStore:
    """One run's Optuna study: create or open it, enqueue, claim, record, read back."""

    def __init__(self, storage, spec: RunSpec, study):
        self.storage, self.spec, self.study = storage, spec, study
        self.space = spec.search_space()
        self.study_id = storage.get_study_id_from_name(spec.optuna_name)

    def trial_id(self, trial) -> int:
        """The storage's id of a trial (``FrozenTrial`` or ``Trial``) of this run."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create_or_open(cls, storage, spec: RunSpec, sampler=None) -> RunStore:
        """Create the run's study, or open it when it exists with the same settings (a
        larger budget is allowed, to extend a finished study); anything else differing is an
        error naming the field."""
        import optuna

        directions = ["maximize" if s == "max" else "minimize" for s in spec.senses]
        study = optuna.create_study(
            study_name=spec.optuna_name,
            storage=storage,
            directions=directions,
            sampler=sampler or optuna.samplers.RandomSampler(seed=spec.seed),
            load_if_exists=True,
        )
        if study.metric_names is None:  # Optuna's tools then show the objectives' names
            with quiet_experimental():
                study.set_metric_names(list(spec.objectives))
        stored = study.user_attrs.get(ATTRIBUTE)
        if stored is None:
            spec = spec.model_copy(update={"design_budget": spec.design_budget or spec.budget})
            study.set_user_attr(ATTRIBUTE, spec.model_dump(mode="json"))
        else:
            spec = _reopened(study, RunSpec.model_validate(stored), spec)
        return cls(storage, spec, study)

    @classmethod
    def open(cls, storage, optuna_name: str, sampler=None) -> RunStore:
        import optuna

        study = optuna.load_study(study_name=optuna_name, storage=storage, sampler=sampler)
        stored = study.user_attrs.get(ATTRIBUTE)
        if stored is None:
            raise ValueError(f"Optuna study {optuna_name!r} was not written by paretomerge")
        return cls(storage, RunSpec.model_validate(stored), study)

    def refresh_spec(self) -> RunSpec:
        """Re-read the run's settings (another process may have raised the budget)."""
        self.spec = RunSpec.model_validate(
            self.storage.get_study_user_attrs(self.study_id)[ATTRIBUTE]
        )
        return self.spec

    # -- state ---------------------------------------------------------------------------
    def trials(self, states=None) -> list:
        return self.study.get_trials(deepcopy=False, states=states)

    def counts(self) -> Counts:
        from optuna.trial import TrialState

        c = Counts()
        for t in self.trials():
            if t.state == TrialState.COMPLETE:
                c.complete += 1
            elif t.state == TrialState.RUNNING:
                c.running += 1
            elif t.state == TrialState.WAITING:
                c.waiting += 1
            elif t.state == TrialState.FAIL:
                c.failed += 1
        return c

    def is_finished(self) -> bool:
        """The budget is met, or the driver said it has nothing more to propose."""
        attrs = self.storage.get_study_user_attrs(self.study_id)
        budget = RunSpec.model_validate(attrs[ATTRIBUTE]).budget
        return attrs.get("finished_at_budget") == budget or self.counts().complete >= budget

    def mark_finished(self) -> None:
        self.study.set_user_attr("finished_at_budget", self.spec.budget)

    # -- sharing the run among processes (pareto.claims) ---------------------------------
    def reap(self) -> int:
        """Fail (and so retry) running trials whose process is gone; returns how many
        (:func:`pareto.claims.reap`)."""
        return claims.reap(self)

    def claim(self):
        """A waiting trial taken atomically for this process (an ``optuna.Trial``), or None
        (:func:`pareto.claims.claim`)."""
        return claims.claim(self)

    def ask(self):
        """A new trial from the run's Optuna sampler (waiting retries come first), or None
        when another process asked for the budget's last trial at the same moment
        (:func:`pareto.claims.ask`)."""
        return claims.ask(self)

    def set_aside_duplicates(self) -> int:
        """Set aside the waiting copies of slots another trial holds; returns how many
        (:func:`pareto.claims.set_aside_duplicates`)."""
        return claims.set_aside_duplicates(self)

    def heartbeat(self, trial) -> contextlib.AbstractContextManager[None]:
        """Record the trial's heartbeat in the background while the block runs."""
        return claims.heartbeat(self, trial)

    # -- trials --------------------------------------------------------------------------
    def enqueue(self, u: np.ndarray, attrs: dict[str, Any]) -> None:
        """A waiting trial at ``u``, with ``attrs`` (bulky ones, :data:`BULKY_ATTRS`, as
        system attributes): ``Study.enqueue_trial``, which cannot take system attributes."""
        from optuna.trial import TrialState, create_trial

        params = {param_name(i): float(v) for i, v in enumerate(np.asarray(u, dtype=float))}
        bulky = {BULKY_PREFIX + k: v for k, v in attrs.items() if k in BULKY_ATTRS}
        self.study.add_trial(
            create_trial(
                state=TrialState.WAITING,
                system_attrs={"fixed_params": params, **bulky},
                user_attrs={k: v for k, v in attrs.items() if k not in BULKY_ATTRS},
            )
        )

    def unit_point(self, trial) -> np.ndarray:
        """The trial's unit-cube coordinates (suggested now, or fixed when enqueued)."""
        return np.array(
            [trial.suggest_float(param_name(i), 0.0, 1.0) for i in range(self.space.dim)]
        )

    def unit_point_of(self, frozen) -> np.ndarray:
        """The unit-cube coordinates of a stored trial."""
        return np.array([frozen.params[param_name(i)] for i in range(self.space.dim)])

    def use_sampler(self, sampler) -> None:
        """Ask new trials of this run from ``sampler`` (an Optuna sampler) in this process."""
        if sampler is not None:
            self.study.sampler = sampler

    def complete(self, trial, x: np.ndarray, outcome: Outcome) -> bool:
        """Record the trial's result; False when the trial was finished meanwhile by another
        process (failed as stale, and so retried, while this one was paused or starved long
        enough to miss its heartbeats): its values are not recorded, and attributes written
        before the failure was noticed stay on the failed trial."""
        import optuna
        from optuna.trial import TrialState

        try:
            trial.set_user_attr("x", np.asarray(x, dtype=float).tolist())
            trial.set_user_attr("stderr", [float(outcome.stderrs[n]) for n in self.spec.objectives])
            attrs = dict(outcome.attrs, family=self.spec.family, driver=self.spec.driver)
            if outcome.scores is not None:
                names = self.spec.objectives
                columns = np.array([outcome.scores[n] for n in names], dtype=float).T
                attrs[SCORES_ATTR] = encode_scores(columns, names)
            for key, value in attrs.items():
                if key in BULKY_ATTRS:
                    self.storage.set_trial_system_attr(trial._trial_id, BULKY_PREFIX + key, value)
                else:
                    trial.set_user_attr(key, value)
            values = [float(outcome.values[n]) for n in self.spec.objectives]
            told = self.study.tell(trial, values, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        return told.state == TrialState.COMPLETE

    def fail(self, trial, error: BaseException) -> None:
        """Record the trial as failed, with the error (nothing when it is finished already)."""
        from optuna.trial import TrialState

        with contextlib.suppress(Exception):
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:2000])
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    # -- reading -------------------------------------------------------------------------
    def results(self, trials: Sequence | None = None) -> RunResults:
        """The run's completed trials; ``trials`` (all of the run's, already read) saves a
        second read of the storage."""
        from optuna.trial import TrialState

        if trials is None:
            trials = self.trials(states=(TrialState.COMPLETE,))
        done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
        m = len(self.spec.objectives)
        return RunResults(
            spec=self.spec,
            numbers=np.array([t.number for t in done], dtype=int),
            values=np.array([t.values for t in done], dtype=float).reshape(len(done), m),
            stderrs=np.array(
                [t.user_attrs.get("stderr", [np.nan] * m) for t in done], dtype=float
            ).reshape(len(done), m),
            x=[np.asarray(t.user_attrs["x"]) for t in done],
            prompt_scores=[trial_scores(trial_attrs(t), self.spec.objectives) for t in done],
            attrs=[trial_attrs(t) for t in done],
            completed_at=[t.datetime_complete for t in done],
        )


def _reopened(study, old: RunSpec, spec: RunSpec) -> RunSpec:
    """``spec`` for a run that exists as ``old``: an error naming the first field that
    differs, else ``spec`` with the run's design budget (and stored, when its budget or
    details changed)."""
    if not (old.evaluation and spec.evaluation):
        # stored before the evaluation was recorded, or opened without prompts: not checked,
        # and the stored record (or its absence) stays
        spec = spec.model_copy(update={"evaluation": old.evaluation})
    old_id, new_id = _flat(old.identity()), _flat(spec.identity())
    for key in [*new_id, *(k for k in old_id if k not in new_id)]:
        if old_id.get(key) != new_id.get(key):
            raise RunConflict(
                f"study {spec.optuna_name!r} already exists in this storage with "
                f"{key} = {old_id.get(key)!r}, not {new_id.get(key)!r}: give the study another "
                "name, or run it in another storage (--storage URL)"
            )
    spec = spec.model_copy(update={"design_budget": old.driver_budget})
    if old.budget != spec.budget or old.details != spec.details:
        study.set_user_attr(ATTRIBUTE, spec.model_dump(mode="json"))
    return spec


def _flat(identity: dict) -> dict:
    """``identity`` with the evaluation's entries as keys of their own (``evaluation.prompts``),
    so that a conflict names the setting that changed."""
    out = {k: v for k, v in identity.items() if k != "evaluation"}
    out |= {f"evaluation.{k}": v for k, v in identity.get("evaluation", {}).items()}
    return out
