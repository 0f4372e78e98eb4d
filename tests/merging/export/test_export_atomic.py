"""An export killed at any moment leaves its folder absent, as it was, or complete.

``paretomerge export`` is SIGKILLed at many points of its run, fresh and with ``--force`` over
an earlier export. To afford many runs, one helper process runs a first export itself (so that
every lazy import is done), then forks a child per run that runs the command line
(``merging.cli.main``) as ``paretomerge export`` would, and kills it at the chosen moment: a
share of the time the run takes before it starts writing, or a delay after its "merging ...
and writing" line (the writing takes tens of milliseconds on the tiny study).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from merging.export import MARKER_FILE, export_marker, is_finished_export

OLD, NEW = "interpolation#0", "interpolation#11"
LOADING, WRITING = 4, 12
"""Kills per series while loading and spread over the writing."""

SERVER = r"""
import contextlib, io, json, os, signal, sys, threading, time
from merging.cli import main

out = sys.stdout
for line in sys.stdin:
    job = json.loads(line)
    if job.get("here"):  # in this process: the first run imports what the children use
        with contextlib.redirect_stdout(io.StringIO()) as text:
            code = main(job["argv"])
        out.write(json.dumps({"code": code, "lines": text.getvalue().splitlines()}) + "\n")
        out.flush()
        continue
    read, write = os.pipe()
    out.flush(); sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the command, as 'paretomerge export' runs it
        os.close(read)
        os.dup2(write, 1); os.dup2(write, 2)
        sys.stdout.reconfigure(line_buffering=True)
        code = 1
        try:
            code = main(job["argv"])
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    os.close(write)
    lines, writing = [], threading.Event()
    times = {}

    def follow():
        with os.fdopen(read) as pipe:
            for text in pipe:
                lines.append(text.rstrip())
                if " and writing " in text:
                    times["write"] = time.monotonic() - start
                    writing.set()
        times["end"] = time.monotonic() - start

    reader = threading.Thread(target=follow)
    reader.start()
    killed = False
    if job.get("anchor") == "start":
        time.sleep(job["delay"])
        killed = True
    elif job.get("anchor") == "write":
        killed = writing.wait(60)
        time.sleep(job["delay"])
    if killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            killed = False
    _, status = os.waitpid(pid, 0)
    reader.join()
    signalled = os.WIFSIGNALED(status)
    code = None if signalled else os.WEXITSTATUS(status)
    out.write(json.dumps({"killed": signalled, "code": code, "lines": lines, **times}) + "\n")
    out.flush()
"""


class Exporter:
    """The helper process: ``run(argv, anchor, delay)`` runs one export, killed as told."""

    def __init__(self, cwd: Path):
        # one thread each: the helper forks after its first export has run
        threads = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
        env = {**os.environ, **dict.fromkeys(threads, "1"), "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            env=env,
            text=True,
        )

    def run(
        self, argv: list[str], anchor: str | None = None, delay: float = 0.0, here: bool = False
    ) -> dict:
        job = {"argv": argv, "anchor": anchor, "delay": delay, "here": here}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the export helper died"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def snapshot(folder: Path) -> dict[str, str] | None:
    """Every file's content hash (the marker without its time); None when absent."""
    if not folder.exists():
        return None
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.name == MARKER_FILE:
                marker = json.loads(data)
                marker.pop("exported_at")
                data = json.dumps(marker, sort_keys=True).encode()
            out[str(f.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


@pytest.fixture(scope="module")
def exporter(tiny_study, tmp_path_factory):
    helper = Exporter(tmp_path_factory.mktemp("atomic"))
    yield helper
    helper.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks")
def test_a_killed_export_leaves_the_old_folder_the_new_one_or_none(exporter, tiny_study, tmp_path):
    def argv(trial: str, out: Path, *force: str) -> list[str]:
        return ["export", "--study", "tiny", "--storage", tiny_study, "--trial", trial,
                "--out", str(out), "--max-shard-size", "100KB", *force]  # fmt: skip

    # once, uninterrupted: the two exports, and how long loading and writing take
    old_ref, new_ref = tmp_path / "old", tmp_path / "new"
    done = exporter.run(argv(OLD, old_ref), here=True)
    assert done["code"] == 0, done["lines"]
    done = exporter.run(argv(NEW, new_ref))
    assert done["code"] == 0, done["lines"]
    load, write = done["write"], done["end"] - done["write"]
    assert len(list(new_ref.glob("*.safetensors"))) > 1  # sharded: more moments to kill at
    old, new = snapshot(old_ref), snapshot(new_ref)
    assert old != new
    assert export_marker(new_ref)["trial"] == NEW
    moments = [("start", load * (i + 0.5) / LOADING) for i in range(LOADING)] + [
        ("write", write * 1.2 * i / (WRITING - 1)) for i in range(WRITING)
    ]

    for force in (False, True):
        target = tmp_path / ("replaced" if force else "fresh")
        states, partial_seen = [], 0
        for anchor, delay in moments:
            shutil.rmtree(target, ignore_errors=True)
            if force:
                shutil.copytree(old_ref, target)
            before = set(leftovers(target))
            result = exporter.run(argv(NEW, target, *(["--force"] if force else [])), anchor, delay)
            assert result["killed"] or result["code"] == 0, result["lines"]
            state = snapshot(target)
            allowed = {json.dumps(None): "absent", json.dumps(new): "new"}
            if force:
                allowed[json.dumps(old)] = "old"
            assert json.dumps(state) in allowed, (anchor, delay, result["lines"])
            states.append(allowed[json.dumps(state)])
            assert is_finished_export(target) == (state is not None)
            assert is_finished_export(target, trial=NEW) == (state == new)
            partial_seen += any(".partial-" in n for n in set(leftovers(target)) - before)
        # some runs were killed while writing (their partial folder is left beside the target)
        assert partial_seen >= 1, states
        assert states[0] == ("old" if force else "absent"), states
        # the next export removes what killed ones left, and finishes
        shutil.rmtree(target)
        if force:
            shutil.copytree(old_ref, target)
        result = exporter.run(argv(NEW, target, *(["--force"] if force else [])))
        assert result["code"] == 0, result["lines"]
        assert snapshot(target) == new
        assert leftovers(target) == []


def _export(folder: Path, trial: str, payload: bytes) -> dict[str, str]:
    """A stand-in finished export (no model): one file and the marker."""
    from merging.export import write_marker

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(payload)
    write_marker(folder, "s", trial=trial, weights=True)
    return snapshot(folder)


def test_every_step_of_a_replacement_leaves_the_old_folder_the_new_one_or_none(
    tmp_path, monkeypatch
):
    """Each rename is one atomic step; after each, the target is old, absent or new."""
    import merging.export.folder as export

    target = tmp_path / "out"
    old = _export(target, "r#1", b"old")
    new = _export(tmp_path / "want", "r#2", b"new")
    seen = []
    rename = os.rename

    def watched(a, b):
        rename(a, b)
        seen.append(snapshot(target))

    monkeypatch.setattr(export.os, "rename", watched)
    with export.staged(export.check_out(target, force=True), force=True) as path:
        assert path.parent == target.parent
        assert path.name.startswith(".out.partial-")
        (path / "model.safetensors").write_bytes(b"new")
        export.write_marker(path, "s", trial="r#2", weights=True)
        assert snapshot(target) == old
    # the rename onto the old folder fails (not empty); the old one goes aside (the target is
    # absent for an instant), then the new one takes its place
    assert seen == [None, new]
    assert leftovers(target) == []


def test_a_failed_export_writes_nothing_and_force_replaces_only_exports(tmp_path):
    from merging.export.folder import check_out, is_export_folder, staged

    target = tmp_path / "a" / "b" / "out"

    def fail() -> None:
        with staged(target, force=False) as path:
            (path / "config.json").write_text("{}")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert not (tmp_path / "a").exists()  # nor the folders made to hold it

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not empty; choose another folder, or pass --force"):
        check_out(mine)
    with pytest.raises(ValueError, match=r"not a paretomerge export \(notes.txt\)"):
        check_out(mine, force=True)
    assert not is_export_folder(tmp_path / "absent")
    old = _export(tmp_path / "old", "r#1", b"old")
    assert is_export_folder(tmp_path / "old")
    assert snapshot(tmp_path / "old") == old
    assert check_out(tmp_path / "old", force=True) == tmp_path / "old"
    assert check_out(tmp_path / "empty") == tmp_path / "empty"


def test_leftovers_of_dead_exports_are_removed_and_live_ones_kept(tmp_path):
    from merging.export.folder import is_finished_export, staged

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(done.stdout)
    target = tmp_path / "out"
    me = os.getpid()
    names = [f".out.partial-{dead}-00ab", f".out.old-{dead}-00cd", f".out.partial-{me}-ef01"]
    for name in [*names, f".other.partial-{dead}-00ab"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    with staged(target, force=False) as path:
        _export(path, "r#1", b"w")
    assert is_finished_export(target, study="s", trial="r#1")
    assert not is_finished_export(target, trial="r#2")
    assert not is_finished_export(target, study="t")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".other.partial-{dead}-00ab", f".out.partial-{me}-ef01", "out"
    ]  # fmt: skip
