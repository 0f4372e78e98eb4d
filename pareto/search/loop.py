"""The search loop: a driver proposes, the store records, an evaluation callback measures.

``drive(run, evaluate)`` runs one run of a study to its budget in this process, evaluating
trials itself; ``work(runs, evaluate)`` is a worker that takes whatever trials are waiting or
may be asked for across a study's runs. Both resume: everything they know lives in the store.

* Optuna samplers: every process asks the run's sampler for a new trial while fewer than the
  budget are complete, running or waiting; a trial asked beyond the budget, or at a point
  another process holds (two processes whose samplers share a seed), is set aside (pruned)
  before it is evaluated, so the budget is met exactly.
* Batched drivers: the driving process enqueues each generation as waiting trials with their
  generation and slot, evaluates them alongside any workers, and tells the driver the values
  once every slot is complete. Two driving processes may both enqueue a generation: the
  lower-numbered trial of a slot is the slot's, a copy is set aside when claimed. On a
  restart the stored generations are replayed through a fresh driver with the same seed, so
  the search continues where it stopped.

``evaluate(run_spec, x)`` returns a :class:`~pareto.trial_records.Outcome`; it is the only
place that knows about models, with ``learner(run_spec)``, given to drivers that learn their
points on the models (:mod:`pareto.search.learned`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from pareto._arrays import sign_vector
from pareto.run_spec import RunSpec
from pareto.run_store import RunStore
from pareto.search.base import make_driver
from pareto.search.evolutionary import default_population
from pareto.search.samplers import SAMPLER_SETTINGS, is_optuna_sampler, make_sampler
from pareto.settings import reject_unknown_settings
from pareto.storage import MAX_RETRY
from pareto.trial_records import BULKY_PREFIX, Outcome

Evaluate = Callable[[RunSpec, np.ndarray], Outcome]
Learners = Callable[[RunSpec], Callable]
Log = Callable[[str], None]
POLL_SECONDS = 1.0


def sampler_for(spec: RunSpec, seed: int | None):
    """The Optuna sampler a process uses for ``spec`` (None for batched drivers)."""
    if not is_optuna_sampler(spec.driver):
        return None
    settings = dict(spec.driver_settings)
    reject_unknown_settings(f"driver {spec.driver!r}", settings, SAMPLER_SETTINGS)
    population = settings.pop("population", None) or default_population(spec.driver_budget)
    if not isinstance(population, int) or population < 2:
        raise ValueError(f"population must be a whole number of at least 2; got {population!r}")
    return make_sampler(spec.driver, seed, len(spec.objectives), population)


def check_settings(spec: RunSpec) -> None:
    """Build ``spec``'s driver (or sampler) once and drop it, so that bad search settings fail
    in one line before anything is stored."""
    try:
        if is_optuna_sampler(spec.driver):
            sampler_for(spec, spec.seed)
        else:
            make_driver(
                spec.driver,
                spec.search_space(),
                len(spec.objectives),
                spec.driver_budget,
                spec.seed,
                **spec.driver_settings,
            )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{spec.label}: search settings {spec.driver_settings}: {err}") from None


def evaluate_trial(run: RunStore, trial, evaluate: Evaluate, log: Log | None = None) -> None:
    """Evaluate one claimed or asked trial and record it (failed, with the error, if it
    raises; the error is raised again)."""
    u = run.unit_point(trial)
    x = run.space.from_unit_cube(u)
    start = time.perf_counter()
    try:
        with run.heartbeat(trial):
            outcome = evaluate(run.spec, x)
    except BaseException as err:
        run.fail(trial, err)
        raise
    if not run.complete(trial, x, outcome):
        if log is not None:
            log(
                f"{run.spec.label}: trial {trial.number} was finished by another process while "
                "this one evaluated it (its heartbeat went stale): result dropped, the retry counts"
            )
        return
    if log is not None:
        values = ", ".join(
            f"{n} {outcome.values[n]:.4g}±{outcome.stderrs[n]:.2g}" for n in run.spec.objectives
        )
        log(
            f"{run.spec.label}: trial {trial.number} x={np.round(x, 3).tolist()} -> {values} "
            f"({time.perf_counter() - start:.1f} s)"
        )


def _take(run: RunStore, allow_ask: bool):
    """A trial for this process: a waiting one, else (Optuna samplers) a new one if the
    budget allows; None when there is nothing to take now."""
    trial = run.claim()
    if trial is not None or not allow_ask:
        return trial
    counts = run.counts()
    if counts.scheduled < run.spec.budget:
        return run.ask()
    return None


def drive(
    run: RunStore,
    evaluate: Evaluate,
    *,
    log: Log | None = None,
    poll: float = POLL_SECONDS,
    learner: Learners | None = None,
) -> None:
    """Run ``run`` to its budget, evaluating in this process (workers may help);
    ``learner(spec)`` gives a driver that learns its points the function that learns them."""
    run.reap()
    if is_optuna_sampler(run.spec.driver):
        _drive_sampler(run, evaluate, log, poll)
    else:
        _drive_batched(run, evaluate, log, poll, learner)
    run.set_aside_duplicates()
    run.mark_finished()


def _drive_sampler(run: RunStore, evaluate: Evaluate, log: Log | None, poll: float) -> None:
    while run.counts().complete < run.spec.budget:
        run.reap()
        trial = _take(run, allow_ask=True)
        if trial is None:
            time.sleep(poll)
            continue
        evaluate_trial(run, trial, evaluate, log)


def _generations(run: RunStore) -> dict[int, dict[int, list]]:
    """Stored trials of a batched run: generation -> slot -> trials (retries included)."""
    out: dict[int, dict[int, list]] = {}
    for t in run.trials():
        g, s = t.user_attrs.get("generation"), t.user_attrs.get("slot")
        if g is not None and s is not None:
            out.setdefault(int(g), {}).setdefault(int(s), []).append(t)
    return out


def _drive_batched(
    run: RunStore, evaluate: Evaluate, log: Log | None, poll: float, learner: Learners | None
) -> None:
    spec = run.spec
    driver = make_driver(
        spec.driver,
        run.space,
        len(spec.objectives),
        spec.driver_budget,
        spec.seed,
        **spec.driver_settings,
    )
    if driver.learns and learner is not None:
        driver.use_learner(learner(spec))
    signs = sign_vector(tuple(spec.senses))
    generation, scheduled = 0, 0
    while scheduled < spec.budget:
        stored = _generations(run).get(generation, {})
        asked = driver.ask()
        if asked is None and not stored:
            return
        size = max(
            min(len(asked), spec.budget - scheduled) if asked is not None else 0, len(stored)
        )
        notes = driver.annotations()
        for slot in range(size):
            if slot not in stored:  # a new generation, or one cut short by a crash
                note = notes[slot] if slot < len(notes) else {}
                run.enqueue(asked[slot], {"generation": generation, "slot": slot, **note})
        scheduled += size
        done = _complete_generation(run, generation, size, evaluate, log, poll)
        if asked is not None and len(asked) == size:
            u = np.array([run.unit_point_of(done[s]) for s in range(size)])
            f = np.array([done[s].values for s in range(size)]) * signs
            driver.tell(u, f)
        generation += 1


def _complete_generation(
    run: RunStore, generation: int, size: int, evaluate: Evaluate, log: Log | None, poll: float
) -> dict[int, object]:
    """Evaluate (or wait for workers to finish) every slot of a generation; returns the
    complete trial of each slot. A slot left with no live trial is enqueued again, at most
    ``MAX_RETRY`` times."""
    from optuna.trial import TrialState

    while True:
        run.reap()
        slots = _generations(run).get(generation, {})
        done, missing = {}, []
        for s in range(size):
            trials = slots.get(s, [])
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            if complete:
                done[s] = complete[0]
            elif not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials):
                missing.append((s, trials))
        if len(done) == size:
            return done
        for s, trials in missing:
            failures = sum(t.state == TrialState.FAIL for t in trials)
            if failures > MAX_RETRY:
                raise RuntimeError(
                    f"{run.spec.label}: generation {generation} slot {s} failed {failures} "
                    "times; see the trials' 'error' attribute"
                )
            last = trials[-1]
            attrs = {k: v for k, v in last.user_attrs.items() if k not in ("error", "worker")}
            attrs.update(  # what the driver noted that is kept apart (a learning curve)
                (k[len(BULKY_PREFIX) :], v)
                for k, v in last.system_attrs.items()
                if k.startswith(BULKY_PREFIX)
            )
            run.enqueue(run.unit_point_of(last), attrs)
        trial = run.claim()
        if trial is None:
            time.sleep(poll)
            continue
        evaluate_trial(run, trial, evaluate, log)


def work(
    runs: Sequence[RunStore],
    evaluate: Evaluate,
    *,
    log: Log | None = None,
    poll: float = POLL_SECONDS,
    max_trials: int | None = None,
) -> int:
    """A worker: evaluate trials of any of ``runs`` until every run is finished; returns how
    many trials this worker evaluated. Optuna-sampler runs are asked for new trials here;
    batched runs only hand out the generations their driving process enqueued."""
    evaluated = 0
    while max_trials is None or evaluated < max_trials:
        active = [r for r in runs if not r.is_finished()]
        if not active:
            return evaluated
        took = False
        for run in active:
            run.reap()
            run.refresh_spec()
            trial = _take(run, allow_ask=is_optuna_sampler(run.spec.driver))
            if trial is None:
                continue
            evaluate_trial(run, trial, evaluate, log)
            evaluated, took = evaluated + 1, True
            break
        if not took:
            time.sleep(poll)
    return evaluated
