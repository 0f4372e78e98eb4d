"""The trial store: every evaluation of a study is an Optuna trial in an Optuna storage.

A paretomerge study holds one Optuna study per *run* (a family searched by one driver), named
``STUDY/LABEL``, whose directions are the objectives' senses. A trial's parameters are the
unit-cube coordinates ``u0 ..`` (see :mod:`pareto.search.base`), its values the objective means;
its user attributes hold ``x``, the standard errors, the per-prompt scores, the family, the
driver, the generation and slot (batched drivers), timings, the evaluation hash, sample
generations and the worker that ran it. Study-level facts (family, driver, budget, space,
objectives) are the Optuna study's user attribute ``paretomerge``. So Optuna's own API,
dashboard and tools open it.

Crashes: every running trial records a heartbeat; a trial whose heartbeat is older than the
grace period, or whose process on this machine is gone, is marked failed and retried (Optuna's
``RetryFailedTrialCallback`` enqueues a copy with the same parameters and attributes).
Workers take waiting trials atomically through the storage, so no trial runs twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from pareto.prompt_scores import decode_scores, encode_scores
from pareto.spaces import SearchSpace, space_from_description

ATTRIBUTE = "paretomerge"
MAX_RETRY = 3
HEARTBEAT_INTERVAL, GRACE_PERIOD = 10, 60
SCHEMA_ATTEMPTS = 5
SEPARATOR = "/"
SCORES_ATTR = "prompt_scores"
"""Trial (and reference) attribute: the per-prompt scores, compact (:mod:`pareto.prompt_scores`)."""
BULKY_ATTRS = (SCORES_ATTR, "samples", "recipe")
"""Trial attributes kept as Optuna *system* attributes (under :data:`BULKY_PREFIX`): they are
long, and optuna-dashboard shows every user attribute on one unwrapped line, so the samples
made its trial page 9,000 px wide and a recipe 2,400 px. :func:`trial_attrs` reads both kinds
(old studies kept them as user attributes)."""
BULKY_PREFIX = "paretomerge:"


def trial_key(label: str, number: int) -> str:
    """A trial's name as users write it: ``RUN#NUMBER`` (its run's label, its number)."""
    return f"{label}#{number}"


def param_name(i: int) -> str:
    """The Optuna parameter holding unit-cube coordinate ``i`` of a trial."""
    return f"u{i}"


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def discover_storages(folder: str | Path = ".") -> list[str]:
    """SQLite URLs of the studies run in ``folder``: ``runs/*/study.db``, where studies are
    written by default."""
    return [sqlite_url(p) for p in sorted(Path(folder).glob("runs/*/study.db"))]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def open_storage(
    url: str,
    *,
    create: bool = False,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
):
    """An Optuna ``RDBStorage`` with heartbeats and retries of stale trials.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/study.db`` or
    ``postgresql+psycopg://user@host:port/db``. A SQLite file that does not exist is an error
    unless ``create`` (then it and its folder are made): a mistyped path given to a command
    that only reads must not leave an empty database behind.
    """
    import optuna

    path = sqlite_path(url)
    if path is not None and not path.is_file():
        if not create:
            raise ValueError(f"storage {url}: no such database file {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite:///"):
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from sqlalchemy.exc import IntegrityError, OperationalError

    try:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with _quiet_experimental():
                    storage = optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=(
                            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
                        ),
                    )
                if url.startswith("sqlite"):
                    _serialise_sqlite(storage.engine)
                return storage
            except (IntegrityError, OperationalError) as err:
                # two processes creating the same new database both write its schema; the one
                # that lost finds the schema there when it tries again
                racing = isinstance(err, IntegrityError) or "already exists" in str(err)
                if not racing or attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ImportError as err:
        hint = " (pip install 'paretomerge[postgres]')" if url.startswith("postgresql") else ""
        raise ValueError(f"storage {safe_url(url)}: its database driver is missing{hint}") from err
    except Exception as err:  # SQLAlchemy's URL and connection errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"storage {safe_url(url)}: cannot open it ({reason})") from err


def _serialise_sqlite(engine) -> None:
    """Make every SQLite transaction of ``engine`` take the write lock when it begins.

    Python's sqlite3 starts a transaction only at the first write, so the read that Optuna's
    ``set_trial_state_values`` checks (is the trial still waiting?) runs outside it: two
    processes could both take one waiting trial and evaluate it twice. With ``BEGIN
    IMMEDIATE`` the read and the write are one step (SQLAlchemy's recipe for SQLite
    transactions); PostgreSQL locks the row itself (``SELECT ... FOR UPDATE``)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners are dropped


@contextlib.contextmanager
def new_storage(url: str, **kwargs) -> Iterator[Any]:
    """``open_storage(url, create=True)`` for a block that starts a study: when the block raises
    before any trial is stored, a SQLite file (and folders) this call created are removed, so
    that a failed start leaves nothing behind."""
    path = sqlite_path(url)
    made = None
    if path is not None and not path.exists():
        made = path.resolve()
        while not made.parent.exists():
            made = made.parent  # the outermost folder this call creates
    storage = open_storage(url, create=True, **kwargs)
    try:
        yield storage
    except BaseException:
        if made is not None and not _has_trials(storage):
            storage.engine.dispose()
            target = path.resolve()
            for extra in ("", "-journal", "-wal", "-shm"):
                Path(f"{target}{extra}").unlink(missing_ok=True)
            for folder in [target.parent, *target.parent.parents]:
                if folder == made.parent or not folder.is_relative_to(made):
                    break
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only empty folders
        raise


def _has_trials(storage) -> bool:
    try:
        return any(
            storage.get_all_trials(s._study_id, deepcopy=False) for s in storage.get_all_studies()
        )
    except Exception:  # an unreadable database is kept for the user to look at
        return True


def safe_url(url: str) -> str:
    """The URL without its password, for messages and records."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return repr(url)


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Optuna marks heartbeats and stale-trial retries experimental; we rely on them knowingly."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class RunSpec(BaseModel):
    """What one run of a study is: its family, driver and budget, its space and objectives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str
    label: str
    family: str
    family_settings: dict[str, Any] = {}
    experts: tuple[str, ...]
    driver: str
    driver_settings: dict[str, Any] = {}
    budget: int
    design_budget: int | None = None
    """The budget when the run was created: drivers derive their defaults (population sizes,
    MAP's first batch) from it, so that raising ``budget`` later extends the same search."""
    seed: int = 0
    space: dict[str, Any]
    objectives: tuple[str, ...]
    senses: tuple[str, ...]
    details: dict[str, Any] = {}
    """Anything else worth keeping with the run (the study file's settings, ...)."""

    @property
    def optuna_name(self) -> str:
        return f"{self.study}{SEPARATOR}{self.label}"

    def search_space(self) -> SearchSpace:
        return space_from_description(self.space)

    @property
    def driver_budget(self) -> int:
        return self.design_budget or self.budget

    def identity(self) -> dict:
        """The fields that must match when a run is opened again (budget may grow)."""
        return self.model_dump(exclude={"budget", "design_budget", "details"})


def _live_states() -> tuple:
    """Trial states that hold or will hold a result: complete, running, waiting."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Counts:
    complete: int = 0
    running: int = 0
    waiting: int = 0
    failed: int = 0

    @property
    def scheduled(self) -> int:
        """Trials done or on their way."""
        return self.complete + self.running + self.waiting


@dataclass
class Outcome:
    """What evaluating one ``x`` gave: objective means and standard errors, the per-prompt
    scores they summarise (objective -> one score per prompt used, in the study's prompt
    order), and attributes."""

    values: dict[str, float]
    stderrs: dict[str, float]
    attrs: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, list[float]] | None = None


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
            with _quiet_experimental():
                study.set_metric_names(list(spec.objectives))
        stored = study.user_attrs.get(ATTRIBUTE)
        if stored is None:
            spec = spec.model_copy(update={"design_budget": spec.design_budget or spec.budget})
            study.set_user_attr(ATTRIBUTE, spec.model_dump(mode="json"))
        else:
            old = RunSpec.model_validate(stored)
            old_id, new_id = old.identity(), spec.identity()
            for key in new_id:
                if old_id[key] != new_id[key]:
                    raise ValueError(
                        f"study {spec.optuna_name!r} already exists in this storage with "
                        f"{key} = {old_id[key]!r}, not {new_id[key]!r}: use another study name "
                        "or storage"
                    )
            spec = spec.model_copy(update={"design_budget": old.driver_budget})
            if old.budget != spec.budget or old.details != spec.details:
                study.set_user_attr(ATTRIBUTE, spec.model_dump(mode="json"))
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

    # -- crashes -------------------------------------------------------------------------
    def reap(self) -> int:
        """Fail (and so retry) running trials whose process is gone; returns how many.

        Trials of this machine whose process id no longer exists fail at once; others once
        their heartbeat is older than the storage's grace period.
        """
        import optuna
        from optuna.trial import TrialState

        host, reaped = socket.gethostname(), 0
        for t in self.trials(states=(TrialState.RUNNING,)):
            owner = str(t.user_attrs.get("worker", ""))
            name, _, pid = owner.rpartition(":")
            if name == host and pid.isdigit() and not _alive(int(pid)):
                trial_id = self.trial_id(t)
                try:
                    self.storage.set_trial_system_attr(
                        trial_id, "fail_reason", f"process {owner} is gone"
                    )
                    failed = self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # another process reaped it first
                if failed:
                    callback = self.storage.get_heartbeat_stale_trial_callback()
                    if callback is not None:
                        callback(self.study, self.storage.get_trial(trial_id))
                    reaped += 1
        running = {t.number for t in self.trials(states=(TrialState.RUNNING,))}
        with _quiet_experimental():
            optuna.storages.fail_stale_trials(self.study)
        if running:
            failed = {t.number for t in self.trials(states=(TrialState.FAIL,))}
            reaped += len(running & failed)
        return reaped

    # -- trials --------------------------------------------------------------------------
    def enqueue(self, u: np.ndarray, attrs: dict[str, Any]) -> None:
        params = {param_name(i): float(v) for i, v in enumerate(np.asarray(u, dtype=float))}
        self.study.enqueue_trial(params, user_attrs=attrs)

    def claim(self):
        """A waiting trial taken atomically for this process (an ``optuna.Trial``), or None.

        Two processes that enqueue the same generation at once leave two waiting trials for a
        slot: the one with the lower number is the slot's, and a copy is set aside (pruned,
        with ``duplicate_of``) by whoever claims it, so that every slot is evaluated once."""
        import optuna
        from optuna.trial import TrialState

        for t in self.trials(states=(TrialState.WAITING,)):
            trial_id = self.trial_id(t)
            try:
                taken = self.storage.set_trial_state_values(trial_id, TrialState.RUNNING)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process took it and finished it since the list was read
            if not taken:
                continue
            original = self._slot_taken_by(t)
            if original is not None:
                self._set_aside(trial_id, f"duplicate of trial {original}")
                continue
            trial = optuna.trial.Trial(self.study, trial_id)
            trial.set_user_attr("worker", worker_id())
            return trial
        return None

    def ask(self):
        """A new trial from the run's Optuna sampler (waiting retries come first), or None
        when another process asked for the budget's last trial at the same moment."""
        with warnings.catch_warnings():
            # we record heartbeats ourselves (see heartbeat), not through Study.optimize
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = self.study.ask()
        u = self.unit_point(trial)  # the sampler proposes the point here
        live = self.trials(states=_live_states())
        if trial.number not in sorted(t.number for t in live)[: self.spec.budget]:
            self._set_aside(self.trial_id(trial), "over the budget")
            return None
        me = worker_id()
        for t in live:
            theirs = t.number != trial.number and t.user_attrs.get("worker") != me
            if theirs and np.array_equal(self._params_of(t), u):
                # another process whose sampler has the same seed proposed it too: this
                # process draws from another stream from now on (a point this process
                # proposes twice, as NSGA-II's crossover may, is its sampler's choice)
                self._set_aside(self.trial_id(trial), f"duplicate of trial {t.number}")
                self.study.sampler.reseed_rng()
                return None
        trial.set_user_attr("worker", worker_id())
        return trial

    def _params_of(self, frozen) -> np.ndarray | None:
        """A stored trial's unit-cube point, None while it has not been proposed yet."""
        try:
            return self.unit_point_of(frozen)
        except KeyError:
            return None

    def _slot_taken_by(self, trial) -> int | None:
        """The number of a live trial of the same generation and slot as ``trial`` with a
        lower number (None when ``trial`` is its slot's, or not in a generation)."""
        g, s = trial.user_attrs.get("generation"), trial.user_attrs.get("slot")
        if g is None or s is None:
            return None
        for t in self.trials(states=_live_states()):
            same = t.user_attrs.get("generation") == g and t.user_attrs.get("slot") == s
            if same and t.number < trial.number:
                return t.number
        return None

    def set_aside_duplicates(self) -> int:
        """Set aside the waiting copies of slots another trial holds (left by two processes
        that enqueued one generation at once); returns how many."""
        from optuna.trial import TrialState

        count = 0
        for t in self.trials(states=(TrialState.WAITING,)):
            original = self._slot_taken_by(t)
            if original is None:
                continue
            trial_id = self.trial_id(t)
            with contextlib.suppress(Exception):  # taken meanwhile by another process
                if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    self._set_aside(trial_id, f"duplicate of trial {original}")
                    count += 1
        return count

    def _set_aside(self, trial_id: int, reason: str) -> None:
        """Prune a trial this process took but must not evaluate (a duplicate, or one over
        the budget): it is neither a result nor a failure to retry."""
        from optuna.trial import TrialState

        self.storage.set_trial_user_attr(trial_id, "set_aside", reason)
        self.storage.set_trial_state_values(trial_id, TrialState.PRUNED)

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

    @contextlib.contextmanager
    def heartbeat(self, trial) -> Iterator[None]:
        """Record the trial's heartbeat in the background while the block runs."""
        interval = self.storage.get_heartbeat_interval()
        if not interval:
            yield
            return
        stop, trial_id = threading.Event(), self.trial_id(trial)

        def beat():
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)
                stop.wait(interval)

        thread = threading.Thread(target=beat, daemon=True, name="paretomerge-heartbeat")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

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


@dataclass
class RunResults:
    """A run's completed trials, in trial order."""

    spec: RunSpec
    numbers: np.ndarray
    values: np.ndarray
    stderrs: np.ndarray
    x: list[np.ndarray]
    attrs: list[dict]
    completed_at: list
    prompt_scores: list[np.ndarray | None] = field(default_factory=list)
    """Each trial's ``(k, m)`` per-prompt scores (None where the study did not keep them)."""


def trial_attrs(trial) -> dict:
    """A finished trial's attributes: its user attributes and the bulky ones kept as system
    attributes (:data:`BULKY_ATTRS`), under their own names."""
    attrs = dict(trial.user_attrs)
    for key, value in trial.system_attrs.items():
        if key.startswith(BULKY_PREFIX) and key[len(BULKY_PREFIX) :] in BULKY_ATTRS:
            attrs[key[len(BULKY_PREFIX) :]] = value
    return attrs


def trial_scores(attrs: dict, objectives: Sequence[str]) -> np.ndarray | None:
    """The ``(k, m)`` per-prompt scores in a trial's (or the reference's) attributes."""
    record = attrs.get(SCORES_ATTR)
    return None if record is None else decode_scores(record, objectives)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_names(storage, study: str) -> list[str]:
    """The Optuna study names of every run of paretomerge study ``study``, in creation order."""
    studies = sorted(storage.get_all_studies())  # FrozenStudy orders by creation
    return [s.study_name for s in studies if s.user_attrs.get(ATTRIBUTE, {}).get("study") == study]


def study_names(storage) -> list[str]:
    """Every paretomerge study in the storage, in creation order.

    Reads the studies' attributes only (``get_all_study_summaries`` would read every trial)."""
    seen: dict[str, None] = {}
    for s in sorted(storage.get_all_studies()):  # FrozenStudy orders by creation
        name = s.user_attrs.get(ATTRIBUTE, {}).get("study")
        if name:
            seen[name] = None
    return list(seen)


def open_runs(storage, study: str, samplers: Sequence | None = None) -> list[RunStore]:
    """Every run of ``study``; raises ``ValueError`` naming the studies present if none."""
    names = run_names(storage, study)
    if not names:
        known = study_names(storage)
        raise ValueError(
            f"no study {study!r} in this storage; studies here: {', '.join(known) or 'none'}"
        )
    return [RunStore.open(storage, n) for n in names]
