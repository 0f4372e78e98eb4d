"""Every command's ``--help``: its own description, help text for every option, examples."""

from __future__ import annotations

import argparse

import pytest

from merging.cli import build_parser


def commands(parser: argparse.ArgumentParser, path=()):
    """``(words, parser, parent parser)`` for every command and sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub, parser
                yield from commands(sub, (*path, name))


COMMANDS = list(commands(build_parser()))


@pytest.mark.parametrize(
    ("words", "parser", "parent"), COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS]
)
def test_each_command_describes_itself_and_every_option(words, parser, parent):
    assert parser.description, words
    if len(words) > 1:  # a sub-command says what it does, not what its group does
        assert parser.description != parent.description, words
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            assert action.help, f"{' '.join(words)} {action.option_strings[0]} has no help"
    assert "examples:" in (parser.epilog or ""), words
