"""Option types that check a value where it is parsed, and a parser whose errors are one line.

Every numeric option of the command line goes through one of these types, so a value that
cannot be right (``nan``, ``inf``, ``--limit -3``, ``--density 1.5``) stops the command
before anything is read or written, with exit status 2 and one line naming the option.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (``PROG: error: ...``), without
    the usage block, exit status 2. Subcommand parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def one_line(message: object) -> str:
    """``message`` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(message).split())


def _number(text: str, kind: Callable, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (not ``nan`` or ``inf``)."""
    return _number(text, float, "a finite number")


def positive_float(text: str) -> float:
    """A finite number above 0."""
    value = _number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1]: a share of something that keeps at least a little of it."""
    value = _number(text, float, "a number in (0, 1]")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not in (0, 1]")
    return value


def probability(text: str) -> float:
    """A number in (0, 1)."""
    value = _number(text, float, "a number between 0 and 1")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (exclusive)")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def count(text: str) -> int:
    """A whole number of at least 0."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0")
    return value


def batch_size(text: str) -> int | str:
    """``auto`` or a whole number of at least 1."""
    return "auto" if text == "auto" else positive_int(text)


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = _number(text, int, "a port number")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return value


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``: checked for its form here, for its
    presence when it is used."""
    from merging.device import check_device_name

    try:
        return check_device_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def memory_amount(text: str) -> str:
    """An amount of memory (``20GB``, ``16GiB``, ``2e10``), kept as written."""
    from merging.merger import parse_bytes

    try:
        parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def print_error(command: str, message: object) -> None:
    """The one line a command prints for bad input."""
    print(f"paretomerge {command}: error: {one_line(message)}", file=sys.stderr)
