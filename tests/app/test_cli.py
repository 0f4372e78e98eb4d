"""``paretomerge dashboard``: bad input in one line, localhost by default, the app it runs."""

from __future__ import annotations

import argparse

import pytest

import app
from merging.cli import build_parser, main
from merging.cli.dashboard import app_main, streamlit_command


def test_bad_storages_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["dashboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no study found" in err
    assert "paretomerge quickstart" in err
    missing = tmp_path / "nope" / "study.db"
    assert main(["dashboard", "--storage", f"sqlite:///{missing}"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not missing.parent.exists()  # nothing created
    assert main(["dashboard", "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "cannot open" in err
    assert "secret" not in err
    assert main(["dashboard", "--storage", f"sqlite:///{missing}", "--port", "70000"]) == 2


def test_listens_on_localhost_unless_told(tmp_path):
    args = build_parser().parse_args(["dashboard"])
    assert (args.host, args.port) == ("127.0.0.1", 8501)
    cmd = streamlit_command(app_main(), args.host, args.port)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert app_main().resolve() == app.MAIN.resolve()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["dashboard", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "paretomerge dashboard --storage" in out
    assert isinstance(build_parser(), argparse.ArgumentParser)
