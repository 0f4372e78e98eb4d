"""The ``paretomerge`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` to a function ``(args) -> int``. Heavy imports happen inside the handlers.
Bad input exits with status 2 and one line on stderr that names the problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from merging import __version__
from merging.cli import (
    analyze,
    dashboard,
    evaluate,
    export,
    heads,
    merge,
    plan,
    quickstart,
    study,
    worker,
    zoo,
)
from merging.cli.options import OneLineParser, print_error

SUBCOMMANDS = (
    quickstart,
    analyze,
    merge,
    plan,
    evaluate,
    heads,
    zoo,
    study,
    worker,
    dashboard,
    export,
)

DESCRIPTION = """\
paretomerge: multi-objective alignment of language models by combining models.

Combine per-objective experts for any preference, search the trade-offs, record every trial,
explore Pareto fronts and hypervolume, and export the chosen checkpoint."""

EPILOG = """\
examples:
  paretomerge quickstart --data ../shared/data/hh-rlhf
  paretomerge study run studies/tiny.yaml --data ../shared/data/hh-rlhf
  paretomerge study show tiny
  paretomerge dashboard
  paretomerge export --study quickstart --knee --out knee/
  paretomerge analyze studies/examples/soups_sweep.csv \\
      --objectives helpfulness:max,harmlessness:max,verbosity:min
  paretomerge analyze results.jsonl --objectives helpfulness:max,verbosity:min --json
  paretomerge merge --base ./base --expert helpful=./helpful --expert harmless=./harmless \\
      --family interpolation --weights 0.7,0.3 --out merged/
  paretomerge plan --base ./base --expert helpful=./helpful --expert harmless=./harmless \\
      --prompts 200 --device cuda

Run 'paretomerge COMMAND --help' for the options and examples of each command."""


# Options whose value is a comma-separated list of numbers that may start with a minus sign
# ("--ref -0.5,120"): argparse would take "-0.5,120" for an option, so such pairs are joined
# into "--ref=-0.5,120" before parsing.
NUMBER_LIST_OPTIONS = frozenset({"--ref", "--weights"})


def join_number_lists(argv: Sequence[str]) -> list[str]:
    """Rewrite ``--ref -1,2`` as ``--ref=-1,2`` for the options in ``NUMBER_LIST_OPTIONS``."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in NUMBER_LIST_OPTIONS:
            value = next(it, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="paretomerge",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"paretomerge {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by the console script)."""
    parser = build_parser()
    try:
        args = parser.parse_args(join_number_lists(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # --help, --version, or a bad option (already printed)
        return stop.code if isinstance(stop.code, int) else 2
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except (UsageError, ValueError, KeyError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print_error(args.command, message)
        return 2
    except KeyboardInterrupt:
        print(f"paretomerge {args.command}: interrupted", file=sys.stderr)
        return 130
