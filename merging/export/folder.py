"""An export's folder: written beside its target and moved into place complete, its marker
written last, so that a killed export leaves the target absent or as it was."""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pareto.claims import pid_alive

MERGEKIT_FILE = "mergekit_config.yml"
CARD_FILE = "README.md"
MARKER_FILE = "export.json"
"""Written last into a finished export: study, trial, time and paretomerge version."""
SPARE_BYTES = 64 << 20


def write_marker(path: Path, study: str, **fields: Any) -> None:
    """``MARKER_FILE`` in ``path``: written last, it makes the folder a finished export."""
    from datetime import datetime, timezone

    from merging import __version__

    marker = {
        "paretomerge": __version__,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "study": study,
        **fields,
    }
    (path / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")


def export_marker(path: str | Path) -> dict | None:
    """The marker of the finished export in ``path`` (None when there is none)."""
    try:
        marker = json.loads((Path(path) / MARKER_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "paretomerge" in marker else None


def is_finished_export(
    path: str | Path, *, study: str | None = None, trial: str | None = None
) -> bool:
    """Whether ``path`` is a finished export (of ``study``'s trial ``trial``, when given): an
    export is moved into place complete, with its marker written last. ``--front`` folders
    are finished exports too (with no ``trial``)."""
    marker = export_marker(path)
    return (
        marker is not None
        and (study is None or marker.get("study") == study)
        and (trial is None or marker.get("trial") == trial)
    )


def is_export_folder(path: str | Path) -> bool:
    """Whether ``path`` holds an export of paretomerge, finished or from a version before the
    marker: the marker, a model card or mergekit YAML that export wrote, the recipe of
    ``paretomerge merge``, or only such folders (``--front``). Only these does ``force``
    replace: it deletes the folder."""
    from merging.save import RECIPE_FILE

    path = Path(path)
    if export_marker(path) is not None or (path / RECIPE_FILE).is_file():
        return True
    if _head(path / MERGEKIT_FILE).startswith("# paretomerge export of study"):
        return True
    card = _head(path / CARD_FILE)
    if card.startswith("---\n") and "\nExported by paretomerge from study " in card:
        return True
    entries = list(path.iterdir()) if path.is_dir() else []
    return bool(entries) and all(
        p.is_dir() and not p.is_symlink() and is_export_folder(p) for p in entries
    )


def _head(file: Path, size: int = 4096) -> str:
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            return f.read(size)
    except OSError:
        return ""


def check_out(out: str | Path, *, force: bool = False) -> Path:
    """The folder an export will be moved to, once checked: absent or empty, or with ``force``
    an earlier export (``is_export_folder``). Writes nothing."""
    path = Path(os.path.abspath(Path(out).expanduser()))
    if path.is_symlink():  # the folder it names is replaced, not the link
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} exists and is not a folder")
    if path.parent == path:
        raise ValueError(f"--out {path}: an export cannot replace the root folder")
    entries = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if entries and not force:
        raise ValueError(
            f"--out {path} is not empty; choose another folder, or pass --force to replace the "
            "earlier export there"
        )
    if entries and not is_export_folder(path):
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(
            f"--out {path} holds files that are not a paretomerge export ({shown}); --force "
            "replaces only an earlier export: choose another folder, or empty this one"
        )
    return path


STAGED = re.compile(r"\.(?P<name>.+)\.(?:partial|old)-(?P<pid>[0-9]+)-[0-9a-f]+")
"""The names of the folders an export keeps beside its target while it writes."""


@contextmanager
def staged(target: Path, *, force: bool) -> Iterator[Path]:
    """A new folder beside ``target`` to write into, moved to ``target`` when the block ends
    without error (``_publish``) and removed otherwise, with the folders made to hold it.

    Folders left beside ``target`` by exports whose process is gone (killed) are removed
    first. Their names hold the process id; a process on another machine sharing the folder
    is not seen, so two machines must not export to the same folder at once.
    """
    made = []
    parent = target.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    staging = _sibling(target, "partial")
    staging.mkdir()
    try:
        yield staging
        _publish(staging, target, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # the deepest first; one that is not empty anymore stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _publish(staging: Path, target: Path, *, force: bool) -> None:
    """Move the complete ``staging`` to ``target``: one atomic rename onto an absent or empty
    folder; an earlier export (``force``) is renamed aside first, then deleted. In between,
    for an instant, ``target`` is absent."""
    check_out(target, force=force)  # again: the folder may have changed meanwhile
    try:
        os.rename(staging, target)
        return
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not force:
            raise ValueError(
                f"--out {target} could not be written ({err.strerror}): was it filled while "
                "this export ran?"
            ) from None
    aside = _sibling(target, "old")
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove_stale(target: Path) -> None:
    """Remove the folders that killed exports to ``target`` left beside it."""
    for sibling in target.parent.glob(f".{glob.escape(target.name)}.*-*-*"):
        match = STAGED.fullmatch(sibling.name)
        ours = match is not None and match["name"] == target.name
        abandoned = ours and not pid_alive(int(match["pid"]))
        if abandoned and sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)


def ensure_space(out: Path, needed: int) -> None:
    """Refuse to start a write that cannot finish: ``needed`` bytes (plus a margin) must be
    free where ``out`` will be."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + SPARE_BYTES:
        raise ValueError(
            f"not enough free disk space for {out}: the weights need about "
            f"{(needed + SPARE_BYTES) / 1e9:.2f} GB, {free / 1e9:.2f} GB are free"
        )
