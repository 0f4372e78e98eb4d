"""A trial's export into its study's own exports folder, as the dashboard makes it.

The folder is worked out from the study's storage and the stored trial, never taken from the
caller: whoever names a trial cannot read or write anywhere else. What is there already is
told apart before anything is written: this trial's finished export, an earlier export (which
is replaced only when told), or files that are not an export (never replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from merging.export.folder import export_marker, is_export_folder, is_finished_export
from merging.export.trial import Log, export_trial
from merging.study.trials import folder_name, trial_slug

Status = Literal["exported", "absent", "earlier", "outside", "not_a_folder", "foreign"]
"""What a trial's folder in the exports folder is now: this trial's finished export, absent
(or empty), an earlier export (another trial's, unfinished, or from an older paretomerge), a
link or a path outside the exports folder, a file, or a folder of files that are not an
export."""
WRITABLE: tuple[Status, ...] = ("absent", "earlier", "exported")
"""The states an export may write over (``earlier`` and ``exported`` only with ``replace``)."""


def exports_folder(storage_url: str, study: str) -> Path:
    """Where the dashboard writes a study's exports: ``runs/NAME/exports`` beside the study's
    own SQLite file, ``FOLDER/exports/NAME`` beside a file that may hold several studies, else
    ``./runs/NAME/exports``."""
    name = folder_name(study)
    if storage_url.startswith("sqlite:///"):
        folder = Path(storage_url.removeprefix("sqlite:///")).parent
        return folder / "exports" if folder.name == name else folder / "exports" / name
    return Path("runs") / name / "exports"


@dataclass(frozen=True)
class StudyExport:
    """The folder ``target`` (``RUN-NUMBER`` in the study's exports folder ``folder``) where
    trial ``key`` is exported, and what it holds now: ``status``, the names ``present`` in it
    and the ``marker`` of the export there (None when there is none)."""

    key: str
    folder: Path
    target: Path
    status: Status
    present: tuple[str, ...] = ()
    marker: dict | None = None


def study_export(storage_url: str, study: str, key: str, run: str, number: int) -> StudyExport:
    """Where trial ``key`` (``RUN#NUMBER``: run label ``run``, trial ``number``) of ``study``
    is exported (:func:`exports_folder`), and what is there now. Reads, writes nothing."""
    folder = exports_folder(storage_url, study)
    target = folder / trial_slug(run, number)
    if is_finished_export(target, study=study, trial=key):
        return StudyExport(key, folder, target, "exported", _names(target), export_marker(target))
    if _outside(folder, target):
        return StudyExport(key, folder, target, "outside")
    if target.exists() and not target.is_dir():
        return StudyExport(key, folder, target, "not_a_folder")
    present = _names(target) if target.is_dir() else ()
    if not present:
        return StudyExport(key, folder, target, "absent")
    if not is_export_folder(target):
        return StudyExport(key, folder, target, "foreign", present)
    return StudyExport(key, folder, target, "earlier", present, export_marker(target))


def _outside(folder: Path, target: Path) -> bool:
    """Whether writing ``target`` would write elsewhere than in ``folder``: a link is
    replaced by what it names."""
    return target.is_symlink() or target.parent.resolve() != folder.resolve()


def _names(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in folder.iterdir()))


_REFUSED = {  # why export_in_study writes nothing
    "outside": "a link or outside the study's exports folder",
    "not_a_folder": "a file",
    "foreign": "a folder of files that are not an export",
}


def export_in_study(
    storage_url: str,
    study: str,
    key: str,
    *,
    replace: bool = False,
    log: Log = lambda _: None,
) -> Path:
    """Export trial ``key`` of ``study`` (``RUN#NUMBER``) with :func:`export_trial` into its
    folder in the study's exports folder (:func:`study_export`), and nowhere else; returns
    the folder. An earlier export there is replaced only with ``replace``; a link, a file or
    files that are not an export, never (``ValueError``)."""
    from merging.study.trials import select_trial

    record = select_trial(storage_url, study, key)
    there = study_export(storage_url, study, record.key, record.run.label, record.number)
    # checked again: a finished export found through a link is shown, never written through
    status = "outside" if _outside(there.folder, there.target) else there.status
    if status not in WRITABLE:
        raise ValueError(
            f"trial {record.key} exports to {there.target}, which is {_REFUSED[status]} "
            f"(expected an absent folder or an earlier export in {there.folder}): move it away "
            "to export this trial there"
        )
    return export_trial(record, there.target, log=log, force=replace)
