"""A throwaway PostgreSQL server on loopback for tests (Debian's ``postgresql`` package).

``initdb`` into a temporary folder and ``pg_ctl`` on a free port. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user (or ``nobody``) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CANDIDATE_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in CANDIDATE_BINS:
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


@contextlib.contextmanager
def postgres_server(database: str = "paretomerge") -> Iterator[str]:
    """Start a server, create ``database``, yield its SQLAlchemy URL, stop and delete it."""
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise RuntimeError("PostgreSQL is not installed (Debian package 'postgresql')")
    user = None
    if os.geteuid() == 0:
        for candidate in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(candidate)
                user = candidate
                break
    folder = Path(tempfile.mkdtemp(prefix="paretomerge-pg-", dir="/tmp"))
    data = folder / "data"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run(
            _as_user(
                user, [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
            env=env,
        )
        options = f"-p {port} -k {folder} -h 127.0.0.1 -c max_connections=200 -c fsync=off"
        subprocess.run(
            _as_user(
                user,
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
            ),
            check=True,
            capture_output=True,
            env=env,
        )
        import psycopg

        for _ in range(50):
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
                ) as conn:
                    conn.execute(f"CREATE DATABASE {database}")
                break
            except psycopg.OperationalError:
                time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_user(user, [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                env=env,
            )
        shutil.rmtree(folder, ignore_errors=True)
