"""``paretomerge dashboard``: the Streamlit dashboard over one or more study storages."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

HELP = "Explore studies in the browser: fronts, hypervolumes, trials and their generations."

EPILOG = """\
Without --storage the dashboard reads every study run in this folder (./runs/*/study.db, where
'paretomerge study run' and 'paretomerge quickstart' write by default). It listens on
localhost only unless --host says otherwise; the browser can only choose among the storages
given here, never name files.

examples:
  paretomerge dashboard
  paretomerge dashboard --storage sqlite:///runs/tiny/study.db --port 8600
  paretomerge dashboard --storage postgresql+psycopg://me@db:5432/studies
  paretomerge dashboard --host 0.0.0.0      # reachable from other machines: mind who can"""

STORAGES_ENV = "PARETOMERGE_DASHBOARD_STORAGES"  # read by app.state


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "dashboard",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument(
        "--storage",
        action="append",
        metavar="URL",
        help="Optuna storage URL; repeat for several (default: ./runs/*/study.db)",
    )
    d.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.set_defaults(handler=run, command="dashboard")


def resolve_storages(given: list[str] | None, folder: Path) -> list[str]:
    """The storages to show; each is opened once here so that a bad one fails in one line."""
    from pareto.store import discover_storages, open_storage, sqlite_url

    if given:
        urls = []
        for url in given:
            if url.startswith("sqlite:///"):
                path = Path(url.removeprefix("sqlite:///"))
                if not path.is_file():
                    raise ValueError(f"--storage {url}: no such file {path}")
                url = sqlite_url(path)
            urls.append(url)
    else:
        urls = discover_storages(folder)
        if not urls:
            raise ValueError(
                f"no study found in {folder / 'runs'}: run 'paretomerge quickstart' or "
                "'paretomerge study run STUDY.yaml' first, or pass --storage URL"
            )
    for url in urls:
        open_storage(url)
    return urls


def app_main() -> Path:
    """The dashboard's Streamlit script, found without importing the ``app`` package."""
    spec = importlib.util.find_spec("app")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the dashboard package 'app' is not installed with paretomerge")
    return Path(next(iter(spec.submodule_search_locations))) / "main.py"


def streamlit_command(main: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(main),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: not a port number")
    urls = resolve_storages(args.storage, Path.cwd())
    env = {**os.environ, STORAGES_ENV: json.dumps(urls)}
    command = streamlit_command(app_main(), args.host, args.port)
    print(f"paretomerge dashboard: {len(urls)} storage(s); http://{args.host}:{args.port}")
    sys.stdout.flush()
    # this process becomes the Streamlit server: a signal that stops it stops the server (a
    # child process would outlive its parent's SIGTERM)
    os.execve(sys.executable, command, env)
    return 0  # not reached
