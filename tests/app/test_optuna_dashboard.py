"""Optuna's own dashboard on a paretomerge storage shows the objectives by name (the study's
metric names), not "Objective 0", and no long attribute widens its trial pages. Skipped where
optuna-dashboard is not installed (the test extra installs it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_optuna_dashboard_names_our_objectives(tiny_study, tmp_path):
    beside = Path(sys.executable).parent / "optuna-dashboard"  # the venv's, not on PATH
    command = str(beside) if beside.is_file() else shutil.which("optuna-dashboard")
    if command is None:
        pytest.skip("optuna-dashboard is not installed")
    from pareto.runs import open_runs
    from pareto.storage import open_storage

    runs = open_runs(open_storage(tiny_study), "tiny")
    objectives = list(runs[0].spec.objectives)
    port = _free_port()
    log = (tmp_path / "optuna-dashboard.log").open("w")
    server = subprocess.Popen(
        [command, tiny_study, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "optuna-dashboard.log").read_text()) from None
                time.sleep(0.5)
        ids = {s["study_name"]: s["study_id"] for s in studies}
        assert set(ids) == {f"tiny/{r.spec.label}" for r in runs}
        for name, study_id in ids.items():
            detail = _get(f"{base}/api/studies/{study_id}?after=0")
            assert detail["objective_names"] == objectives, name
            # its trial page shows each user attribute on one unwrapped line: none is long
            # (the samples, recipe and per-prompt scores are system attributes)
            for trial in detail["trials"]:
                shown = {a["key"]: a["value"] for a in trial["user_attrs"]}
                assert {"samples", "prompt_scores", "recipe"}.isdisjoint(shown), name
                assert max(len(v) for v in shown.values()) < 200, name
    finally:
        server.terminate()
        server.wait(20)
        log.close()
