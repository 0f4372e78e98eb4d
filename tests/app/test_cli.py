"""``paretomerge dashboard``: bad input in one line, localhost by default, the app it runs."""

from __future__ import annotations

import argparse

import pytest

import app
from merging.cli import build_parser, main
from merging.cli.dashboard import app_main, is_loopback, streamlit_command


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
    assert main(["dashboard", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "paretomerge dashboard --storage" in out
    assert isinstance(build_parser(), argparse.ArgumentParser)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        (None, False),
        ("192.168.1.20", False),
        ("10.0.0.5", False),
        ("fe80::1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_a_reachable_host_turns_browser_export_off_unless_allowed(tmp_path, monkeypatch, capsys):
    """One line on stdout says so; the app is told through its environment (and reads
    Streamlit's own server.address)."""
    import merging.cli.dashboard as dashboard
    from pareto.storage import open_storage, sqlite_url

    url = sqlite_url(tmp_path / "s.db")
    open_storage(url, create=True)
    launched = []
    monkeypatch.setattr(dashboard.os, "execve", lambda exe, cmd, env: launched.append((cmd, env)))
    monkeypatch.setenv(dashboard.ALLOW_EXPORT_ENV, "1")  # left over: only the option counts
    for extra, allowed in (([], None), (["--host", "0.0.0.0"], None),
                           (["--host", "0.0.0.0", "--allow-export"], "1")):  # fmt: skip
        assert main(["dashboard", "--storage", url, *extra]) == 0
        out = capsys.readouterr().out.splitlines()
        cmd, env = launched.pop()
        assert env.get(dashboard.ALLOW_EXPORT_ENV) == allowed
        if not extra:
            assert len(out) == 1  # localhost: nothing to say
            continue
        assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
        assert len(out) == 2
        assert "0.0.0.0 is reachable from other machines" in out[1]
        said = "--allow-export lets anyone" if allowed else "exporting from the browser is off"
        assert said in out[1]
