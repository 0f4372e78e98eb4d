"""The study runner: connects a study's search (``pareto.search``) to merging and evaluation.

``run_study`` drives every run of a study to its budget, evaluating through one
:class:`~merging.study.session.StudySession`; ``run_worker`` helps any process driving it,
from any machine. Both resume what the storage holds.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from merging.study.session import Log, StudySession
from merging.study.spec import StudySpec, parse_study_spec
from pareto.run_spec import SEPARATOR
from pareto.run_store import RunConflict, RunStore
from pareto.runs import open_runs
from pareto.storage import new_storage, open_storage, sqlite_url
from pareto.trial_records import SCORES_ATTR

CHECKPOINTS_ATTR = "checkpoints"
"""Study attribute: content hashes of the checkpoints the study evaluates."""
STUDY_FILE = "study.db"


def default_out(spec: StudySpec) -> Path:
    """Where a study's outputs go by default: ``./runs/NAME``."""
    return Path("runs") / spec.name


def storage_url(spec: StudySpec, given: str | None, out: str | Path | None) -> str:
    """``--storage``, else the study file's ``storage``, else ``OUT/study.db`` (SQLite)."""
    if given:
        return given
    if spec.storage:
        return spec.storage
    return sqlite_url(Path(out or default_out(spec)) / STUDY_FILE)


def open_study_runs(session: StudySession, storage) -> list[RunStore]:
    from pareto.search import sampler_for

    runs = []
    for run_spec in session.run_specs():
        run = RunStore.create_or_open(storage, run_spec, sampler_for(run_spec, run_spec.seed))
        runs.append(run)
    return runs


def run_study(
    spec: StudySpec,
    *,
    storage_url: str,
    data: str | None = None,
    device: str | None = None,
    heartbeat: tuple[int, int] | None = None,
    log: Log = print,
    memory: dict | None = None,
) -> list[RunStore]:
    """Run every family of ``spec`` to its budget (resuming what the storage holds).

    ``memory``: the memory plan's options (``placement``, ``device_memory``, ``host_memory``)."""
    from pareto.search import check_settings

    session = StudySession(spec, data=data, device=device, log=log, **(memory or {}))
    specs = session.run_specs()
    for run_spec in specs:
        check_settings(run_spec)  # before anything is stored
    with new_storage(storage_url, **_heartbeat_kwargs(heartbeat)) as storage:
        check_checkpoints(session, storage, [s.optuna_name for s in specs])
        return _run_study(session, storage, log)


def _run_study(session: StudySession, storage, log: Log) -> list[RunStore]:
    runs = open_study_runs(session, storage)
    _record_checkpoints(session, runs)
    session.attach(runs)
    _record_reference(session, runs, log)
    for run in runs:
        _drive_run(run, session, log)
    return runs


def check_checkpoints(session: StudySession, storage, names: list[str]) -> None:
    """Stop with :class:`RunConflict` when a run that has trials recorded other content hashes
    for the checkpoints it evaluates (its family's, the base and the heads' folders) than this
    machine's: resumed, it would mix trials of a rebuilt zoo, a retrained expert or a retrained
    head with the old ones. Runs not stored yet, without trials or without recorded hashes are
    not checked."""
    from optuna.trial import TrialState

    from merging.paths import changed_checkpoints

    for name in names:
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            continue
        stored = storage.get_study_user_attrs(study_id).get(CHECKPOINTS_ATTR)
        if not stored:
            continue
        done = storage.get_n_trials(study_id, state=TrialState.COMPLETE)
        if not done:
            continue
        used = session.run_checkpoints(name.split(SEPARATOR, 1)[1])
        changed = changed_checkpoints(stored, used)  # hashed once per process (cached)
        if changed:
            raise RunConflict(
                f"study {name!r} evaluated its {done} trials on other checkpoints: "
                f"{', '.join(changed)} changed since (content hash; a rebuilt zoo, a retrained "
                "expert or head): give the study another name, or run it in another storage "
                "(--storage URL)"
            )


def _record_checkpoints(session: StudySession, runs: list[RunStore]) -> None:
    """Store the checkpoints' content hashes with the runs that have no trial yet, whether
    or not an earlier start stored some (a run created, then stopped before its first trial,
    and its zoo rebuilt: its trials will be of this machine's checkpoints). A run with trials
    keeps its record: a resumed old study must not vouch for checkpoints that may have changed
    since its trials were evaluated (:func:`check_checkpoints` compares them)."""
    fresh = [run for run in runs if not run.trials()]
    if fresh:
        hashes = session.checkpoint_hashes()
        for run in fresh:
            if run.study.user_attrs.get(CHECKPOINTS_ATTR) != hashes:
                run.study.set_user_attr(CHECKPOINTS_ATTR, hashes)


def _record_reference(session: StudySession, runs: list[RunStore], log: Log) -> None:
    """Evaluate the base model for the runs whose reference has no per-prompt scores (new
    runs, or an older study's): the paired comparisons and racing need the base's scores."""
    missing = [
        run for run in runs if SCORES_ATTR not in (run.study.user_attrs.get("reference") or {})
    ]
    if missing:
        log("evaluating the base model (the reference for every trial's generations)")
        reference = session.evaluate_base()
        for run in missing:
            run.study.set_user_attr("reference", reference)


def _drive_run(run: RunStore, session: StudySession, log: Log) -> None:
    """Drive one run to its budget, with a progress bar when the log is ``print``."""
    from pareto.search import drive

    done, budget = run.counts().complete, run.spec.budget
    state = "done" if done >= budget else "resuming" if done else "starting"
    log(f"{run.spec.label}: {run.spec.driver}, {done}/{budget} evaluations done ({state})")
    if done >= budget:
        return
    with tqdm(
        total=budget,
        initial=done,
        desc=run.spec.label,
        unit="trial",
        dynamic_ncols=True,
        disable=log is not print,  # callers with their own log (tests, benchmarks)
    ) as bar:

        def progress(message: str) -> None:
            if log is print:
                bar.write(message)  # above the bar, not through it
            else:
                log(message)
            bar.update(1)

        drive(run, session.evaluate, log=progress, learner=session.learner)


def run_worker(
    storage_url: str,
    study: str,
    *,
    data: str | None = None,
    device: str | None = None,
    heartbeat: tuple[int, int] | None = None,
    max_trials: int | None = None,
    wait: float = 0.0,
    log: Log = print,
    memory: dict | None = None,
) -> int:
    """Evaluate trials of ``study`` until all its runs are finished; returns how many.

    ``wait`` seconds: how long to wait for the study to appear in the storage (workers may be
    started before the process that creates it)."""
    from pareto.search import sampler_for, work

    deadline = time.monotonic() + wait
    while True:
        try:  # the storage itself may not exist yet either
            runs = open_runs(open_storage(storage_url, **_heartbeat_kwargs(heartbeat)), study)
            break
        except ValueError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
    spec = parse_study_spec(runs[0].spec.details["study_spec"], f"study {study!r} (stored)")
    session = StudySession(spec, data=data, device=device, log=log, **(memory or {}))
    check_checkpoints(session, runs[0].storage, [run.spec.optuna_name for run in runs])
    for run in runs:
        run.use_sampler(sampler_for(run.spec, None))
    session.attach(runs)
    return work(runs, session.evaluate, log=log, max_trials=max_trials)


def _heartbeat_kwargs(heartbeat: tuple[int, int] | None) -> dict:
    if heartbeat is None:
        return {}
    return {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1]}
