"""``paretomerge dashboard``: the Streamlit dashboard over one or more study storages."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import json
import os
import socket
import sys
from pathlib import Path

from merging.cli import options

HELP = "Explore studies in the browser: fronts, hypervolumes, trials and their generations."

EPILOG = """\
Without --storage the dashboard reads every study run in this folder (./runs/*/study.db, where
'paretomerge study run' and 'paretomerge quickstart' write by default). It listens on
localhost only unless --host says otherwise; the browser can only choose among the storages
given here, never name files. On an address other machines can reach, exporting a trial from
the browser is off unless --allow-export says otherwise (anyone who reaches the dashboard could
then write exports into the studies' folders).

examples:
  paretomerge dashboard
  paretomerge dashboard --storage sqlite:///runs/tiny/study.db --port 8600
  paretomerge dashboard --storage postgresql+psycopg://me@db:5432/studies
  paretomerge dashboard --host 0.0.0.0      # reachable from other machines: mind who can
  paretomerge dashboard --host 0.0.0.0 --allow-export"""

STORAGES_ENV = "PARETOMERGE_DASHBOARD_STORAGES"  # read by app.state
ALLOW_EXPORT_ENV = "PARETOMERGE_DASHBOARD_ALLOW_EXPORT"  # read by app.state


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
    d.add_argument(
        "--port", type=options.port, default=8501, help="port to listen on (default 8501)"
    )
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument(
        "--allow-export",
        action="store_true",
        help="let the browser export trials even when --host is not a loopback address",
    )
    d.set_defaults(handler=run, command="dashboard")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or a name) listens on this machine only: ``localhost``,
    ``127.x.x.x``, ``::1``, or a name that resolves to such addresses only. ``0.0.0.0``, ``::``,
    an empty or unset host (every address) and anything that does not resolve are not."""
    if not host:
        return False
    host = host.strip().strip("[]").rstrip(".")
    if host.lower() == "localhost":
        return True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None)
        except (OSError, UnicodeError):
            return False
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    mapped = [getattr(a, "ipv4_mapped", None) or a for a in addresses]
    return bool(mapped) and all(a.is_loopback for a in mapped)


def export_notice(host: str, allow_export: bool) -> str | None:
    """The start-up line about exports from the browser (None on a loopback address)."""
    if is_loopback(host):
        return None
    if allow_export:
        return (
            f"paretomerge dashboard: {host} is reachable from other machines, and --allow-export "
            "lets anyone who reaches it export trials into the studies' folders"
        )
    return (
        f"paretomerge dashboard: {host} is reachable from other machines: exporting from the "
        "browser is off (pass --allow-export to turn it on)"
    )


def resolve_storages(given: list[str] | None, folder: Path) -> list[str]:
    """The storages to show; each is opened once here so that a bad one fails in one line."""
    from pareto.storage import discover_storages, open_storage, sqlite_url

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


def check_port_free(host: str, port: int) -> None:
    """Raise a one-line ValueError when ``host:port`` cannot be listened on (another server
    holds it, or the address is not this machine's), before anything is printed or started."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise ValueError(f"--host {host}: cannot resolve it ({err})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as err:
            reason = "in use" if err.errno == errno.EADDRINUSE else err.strerror
            raise ValueError(
                f"--port {port}: cannot listen on {host}:{port} ({reason}); pass another --port"
            ) from None


def run(args: argparse.Namespace) -> int:
    check_port_free(args.host, args.port)
    urls = resolve_storages(args.storage, Path.cwd())
    env = {**os.environ, STORAGES_ENV: json.dumps(urls)}
    env.pop(ALLOW_EXPORT_ENV, None)  # only --allow-export turns it on
    if args.allow_export:
        env[ALLOW_EXPORT_ENV] = "1"
    command = streamlit_command(app_main(), args.host, args.port)
    print(f"paretomerge dashboard: {len(urls)} storage(s); http://{args.host}:{args.port}")
    notice = export_notice(args.host, args.allow_export)
    if notice:
        print(notice)
    sys.stdout.flush()
    # this process becomes the Streamlit server: a signal that stops it stops the server (a
    # child process would outlive its parent's SIGTERM)
    os.execve(sys.executable, command, env)
    return 0  # not reached
