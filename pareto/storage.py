"""Opening Optuna storages: the factory every study, worker and page goes through.

A storage is named by a SQLAlchemy URL (``sqlite:///path/study.db``,
``postgresql+psycopg://user@host:port/db``) and opened as Optuna's ``RDBStorage`` with
heartbeats and retries of stale trials, so that a crashed worker's trial is run again. SQLite
needs two cares that live here too: transactions that take the write lock when they begin (so
two processes never take one waiting trial), and a failed start that leaves no empty database
behind.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_RETRY = 3
HEARTBEAT_INTERVAL, GRACE_PERIOD = 10, 60
SCHEMA_ATTEMPTS = 5


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
    try:
        return _rdb_storage(url, engine_kwargs, heartbeat_interval, grace_period)
    except ImportError as err:
        hint = " (pip install 'paretomerge[postgres]')" if url.startswith("postgresql") else ""
        raise ValueError(f"storage {safe_url(url)}: its database driver is missing{hint}") from err
    except Exception as err:  # SQLAlchemy's URL and connection errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"storage {safe_url(url)}: cannot open it ({reason})") from err


def _rdb_storage(url: str, engine_kwargs: dict, heartbeat_interval: int, grace_period: int):
    """Optuna's ``RDBStorage`` of ``url``, retried while another process writes its schema."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with quiet_experimental():
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
    raise AssertionError("unreachable: the last attempt returns or raises")


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
            _remove_database(path.resolve(), made)
        raise


def _remove_database(target: Path, made: Path) -> None:
    """Delete the SQLite file ``target`` (and its journals), then the empty folders up to and
    including ``made``, the outermost one that was created for it."""
    for extra in ("", "-journal", "-wal", "-shm"):
        Path(f"{target}{extra}").unlink(missing_ok=True)
    for folder in [target.parent, *target.parent.parents]:
        if folder == made.parent or not folder.is_relative_to(made):
            break
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty folders


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
def quiet_experimental() -> Iterator[None]:
    """Optuna marks heartbeats and stale-trial retries experimental; we rely on them knowingly."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
