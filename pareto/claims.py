"""Sharing one run among processes: who evaluates which trial, and what a crash leaves.

Workers take waiting trials atomically through the storage (:func:`claim`), so no trial runs
twice; copies left by two processes that enqueued one generation at once, or asked for the
same point, are set aside (pruned, with the reason in ``set_aside``). Every running trial
records a heartbeat (:func:`heartbeat`); a trial whose heartbeat is older than the grace
period, or whose process on this machine is gone, is marked failed and retried
(:func:`reap`: Optuna's ``RetryFailedTrialCallback`` enqueues a copy with the same parameters
and attributes). :class:`~pareto.run_store.RunStore` exposes these as its methods.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from pareto.storage import quiet_experimental

if TYPE_CHECKING:
    from pareto.run_store import RunStore


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _live_states() -> tuple:
    """Trial states that hold or will hold a result: complete, running, waiting."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)


def claim(run: RunStore):
    """A waiting trial of ``run`` taken atomically for this process (an ``optuna.Trial``), or
    None.

    Two processes that enqueue the same generation at once leave two waiting trials for a
    slot: the one with the lower number is the slot's, and a copy is set aside (pruned,
    with ``duplicate_of``) by whoever claims it, so that every slot is evaluated once."""
    import optuna
    from optuna.trial import TrialState

    for t in run.trials(states=(TrialState.WAITING,)):
        trial_id = run.trial_id(t)
        try:
            taken = run.storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process took it and finished it since the list was read
        if not taken:
            continue
        original = _slot_taken_by(run, t)
        if original is not None:
            _set_aside(run, trial_id, f"duplicate of trial {original}")
            continue
        trial = optuna.trial.Trial(run.study, trial_id)
        trial.set_user_attr("worker", worker_id())
        return trial
    return None


def ask(run: RunStore):
    """A new trial from ``run``'s Optuna sampler (waiting retries come first), or None when
    another process asked for the budget's last trial at the same moment."""
    with warnings.catch_warnings():
        # we record heartbeats ourselves (see heartbeat), not through Study.optimize
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        trial = run.study.ask()
    u = run.unit_point(trial)  # the sampler proposes the point here
    live = run.trials(states=_live_states())
    if trial.number not in sorted(t.number for t in live)[: run.spec.budget]:
        _set_aside(run, run.trial_id(trial), "over the budget")
        return None
    me = worker_id()
    for t in live:
        theirs = t.number != trial.number and t.user_attrs.get("worker") != me
        if theirs and np.array_equal(_params_of(run, t), u):
            # another process whose sampler has the same seed proposed it too: this
            # process draws from another stream from now on (a point this process
            # proposes twice, as NSGA-II's crossover may, is its sampler's choice)
            _set_aside(run, run.trial_id(trial), f"duplicate of trial {t.number}")
            run.study.sampler.reseed_rng()
            return None
    trial.set_user_attr("worker", worker_id())
    return trial


def _params_of(run: RunStore, frozen) -> np.ndarray | None:
    """A stored trial's unit-cube point, None while it has not been proposed yet."""
    try:
        return run.unit_point_of(frozen)
    except KeyError:
        return None


def _slot_taken_by(run: RunStore, trial) -> int | None:
    """The number of a live trial of the same generation and slot as ``trial`` with a
    lower number (None when ``trial`` is its slot's, or not in a generation)."""
    g, s = trial.user_attrs.get("generation"), trial.user_attrs.get("slot")
    if g is None or s is None:
        return None
    for t in run.trials(states=_live_states()):
        same = t.user_attrs.get("generation") == g and t.user_attrs.get("slot") == s
        if same and t.number < trial.number:
            return t.number
    return None


def set_aside_duplicates(run: RunStore) -> int:
    """Set aside the waiting copies of slots another trial holds (left by two processes
    that enqueued one generation at once); returns how many."""
    from optuna.trial import TrialState

    count = 0
    for t in run.trials(states=(TrialState.WAITING,)):
        original = _slot_taken_by(run, t)
        if original is None:
            continue
        trial_id = run.trial_id(t)
        with contextlib.suppress(Exception):  # taken meanwhile by another process
            if run.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                _set_aside(run, trial_id, f"duplicate of trial {original}")
                count += 1
    return count


def _set_aside(run: RunStore, trial_id: int, reason: str) -> None:
    """Prune a trial this process took but must not evaluate (a duplicate, or one over
    the budget): it is neither a result nor a failure to retry."""
    from optuna.trial import TrialState

    run.storage.set_trial_user_attr(trial_id, "set_aside", reason)
    run.storage.set_trial_state_values(trial_id, TrialState.PRUNED)


def reap(run: RunStore) -> int:
    """Fail (and so retry) running trials of ``run`` whose process is gone; returns how many.

    Trials of this machine whose process id no longer exists fail at once; others once
    their heartbeat is older than the storage's grace period.
    """
    import optuna
    from optuna.trial import TrialState

    host, reaped = socket.gethostname(), 0
    for t in run.trials(states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get("worker", ""))
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not pid_alive(int(pid)):
            reaped += _fail_orphan(run, run.trial_id(t), owner)
    running = {t.number for t in run.trials(states=(TrialState.RUNNING,))}
    with quiet_experimental():
        optuna.storages.fail_stale_trials(run.study)
    if running:
        failed = {t.number for t in run.trials(states=(TrialState.FAIL,))}
        reaped += len(running & failed)
    return reaped


def _fail_orphan(run: RunStore, trial_id: int, owner: str) -> int:
    """Fail a running trial whose process ``owner`` is gone and queue its retry; 1 when this
    process failed it, 0 when another process reaped it first."""
    import optuna
    from optuna.trial import TrialState

    try:
        run.storage.set_trial_system_attr(trial_id, "fail_reason", f"process {owner} is gone")
        failed = run.storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return 0  # another process reaped it first
    if not failed:
        return 0
    callback = run.storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(run.study, run.storage.get_trial(trial_id))
    return 1


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (assumed so where that cannot be told)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def heartbeat(run: RunStore, trial) -> Iterator[None]:
    """Record the trial's heartbeat in the background while the block runs."""
    interval = run.storage.get_heartbeat_interval()
    if not interval:
        yield
        return
    stop, trial_id = threading.Event(), run.trial_id(trial)

    def beat():
        while not stop.is_set():
            with contextlib.suppress(Exception):
                run.storage.record_heartbeat(trial_id)
            stop.wait(interval)

    thread = threading.Thread(target=beat, daemon=True, name="paretomerge-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
