"""The dashboard's exports: into the study's own folder, never elsewhere, replacing only an
earlier export and only when told."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from merging.export import (
    MERGEKIT_FILE,
    export_command,
    export_in_study,
    export_marker,
    exports_folder,
    is_finished_export,
    study_export,
    write_marker,
)


def test_exports_folder_is_beside_the_study():
    assert exports_folder("sqlite:////data/runs/tiny/study.db", "tiny") == Path(
        "/data/runs/tiny/exports"
    )
    # a file that may hold several studies: one folder per study under its exports folder
    assert exports_folder("sqlite:////data/all.db", "a/b c") == Path("/data/exports/a_b_c")
    assert exports_folder("postgresql://u@h/db", "tiny") == Path("runs/tiny/exports")


def _there(root: Path, key: str = "interpolation#2"):
    return study_export(f"sqlite:///{root}/runs/tiny/study.db", "tiny", key, "interpolation", 2)


def test_study_export_tells_what_the_trial_folder_holds(tmp_path):
    folder = tmp_path / "runs" / "tiny" / "exports"
    target = folder / "interpolation-2"
    there = _there(tmp_path)
    assert (there.folder, there.target, there.status, there.present) == (
        folder, target, "absent", ()
    )  # fmt: skip
    assert not folder.exists()  # reading writes nothing
    target.mkdir(parents=True)
    assert _there(tmp_path).status == "absent"  # empty

    (target / "notes.txt").write_text("mine")
    there = _there(tmp_path)
    assert (there.status, there.present, there.marker) == ("foreign", ("notes.txt",), None)

    (target / "notes.txt").unlink()
    write_marker(target, "tiny", trial="layerwise#1", weights=True)
    there = _there(tmp_path)
    assert (there.status, there.present) == ("earlier", ("export.json",))
    assert there.marker["trial"] == "layerwise#1"
    assert _there(tmp_path, "layerwise#1").status == "exported"  # its own finished export

    (target / "export.json").unlink()
    (target / MERGEKIT_FILE).write_text("# paretomerge export of study tiny\n")
    there = _there(tmp_path)
    assert (there.status, there.marker) == ("earlier", None)  # from before the marker

    shutil.rmtree(target)
    target.write_text("a file")
    assert _there(tmp_path).status == "not_a_folder"


def test_a_link_is_never_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "runs" / "tiny" / "exports"
    folder.mkdir(parents=True)
    (folder / "interpolation-2").symlink_to(elsewhere)
    assert _there(tmp_path).status == "outside"
    # a finished export found through a link is shown as such, and still never replaced
    write_marker(elsewhere, "tiny", trial="interpolation#2", weights=False)
    assert _there(tmp_path).status == "exported"


@pytest.fixture
def study_copy(tiny_study, tmp_path) -> str:
    """The tiny study in ``TMP/runs/tiny/study.db``: its exports go to ``TMP/runs/tiny/exports``."""
    db = tmp_path / "runs" / "tiny" / "study.db"
    db.parent.mkdir(parents=True)
    shutil.copy(tiny_study.removeprefix("sqlite:///"), db)
    return f"sqlite:///{db}"


def test_export_in_study_refuses_what_is_not_an_earlier_export(study_copy, tmp_path):
    folder = tmp_path / "runs" / "tiny" / "exports"
    target = folder / "interpolation-2"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="a folder of files that are not an export"):
        export_in_study(study_copy, "tiny", "interpolation#2", replace=True)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]

    shutil.rmtree(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_marker(elsewhere, "tiny", trial="interpolation#2", weights=False)
    target.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="a link or outside the study's exports folder"):
        export_in_study(study_copy, "tiny", "interpolation#2", replace=True)
    assert [p.name for p in elsewhere.iterdir()] == ["export.json"]
    assert export_marker(elsewhere)["weights"] is False
    assert sorted(p.name for p in folder.iterdir()) == ["interpolation-2"]


def test_export_in_study_replaces_an_earlier_export_only_when_told(study_copy, tmp_path):
    target = tmp_path / "runs" / "tiny" / "exports" / "interpolation-2"
    target.mkdir(parents=True)
    write_marker(target, "tiny", trial="layerwise#1", weights=True)
    with pytest.raises(ValueError, match="not empty"):
        export_in_study(study_copy, "tiny", "interpolation#2")
    assert export_marker(target)["trial"] == "layerwise#1"
    assert export_in_study(study_copy, "tiny", "interpolation#2", replace=True) == target
    assert is_finished_export(target, study="tiny", trial="interpolation#2")
    assert (target / "config.json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["interpolation-2"]


def test_export_command_names_the_trial_without_secrets():
    command = export_command(
        "postgresql://me:secret@db.example/studies?sslkey=/k", "tiny", "interpolation#2", "OUT"
    )
    assert command == (
        "paretomerge export --study tiny --storage 'postgresql://me:***@db.example/studies' "
        "--trial 'interpolation#2' --out OUT"
    )
