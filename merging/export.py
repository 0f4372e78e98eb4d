"""Export a study's trial: what users take home.

A trial becomes a folder with
- the merged weights as a Hugging Face folder (safetensors, sharded past ``max_shard_size``,
  config, tokenizer with its chat template, a generation config holding the study's
  generation settings); for ``rewards_in_context`` the RiC model with the desired rewards
  written into its chat template, so that plain generation sees what the study evaluated;
- ``mergekit_config.yml``, which ``mergekit-yaml`` turns into the same weights (LoRA experts
  are written ``BASE+ADAPTER``, mergekit's own syntax for an adapter merged into its base);
- ``README.md``, a model card with a Hugging Face metadata header: scores with standard errors
  and senses, rank on the study's front and the probability of being non-dominated, family and
  ``x``, the checkpoints with content hashes, the prompts, the generation settings, and how to
  reproduce it;
- ``export.json``, written last: the study, the trial, when and by which paretomerge.

The folder is written beside its target and moved into place complete, so that an export
that is killed leaves the target absent or as it was (``is_finished_export`` tells a finished
one). The weights are made by the same code the study evaluated with: the trial's stored recipe
applied to the study's expert set in place (``ResidentMerger``), then written out.
"""

from __future__ import annotations

import errno
import glob
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from merging.recipe import MergeRecipe
from merging.ric import condition_suffix
from pareto.store import RunSpec

MERGEKIT_FILE = "mergekit_config.yml"
CARD_FILE = "README.md"
MARKER_FILE = "export.json"
"""Written last into a finished export: study, trial, time and paretomerge version."""
DEFAULT_SHARD = "2GB"
HUB_BASES = {"smol": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Hub names of the embedded zoos' base models, for the model card's ``base_model``."""
SPARE_BYTES = 64 << 20
Log = Callable[[str], None]


@dataclass(frozen=True)
class TrialRecord:
    """A completed trial of a study with where it stands on the study's front."""

    study: str
    storage: str
    run: RunSpec
    number: int
    x: list
    """As the family takes it (one row per block for ``layerwise``)."""
    values: tuple[float, ...]
    stderrs: tuple[float, ...]
    attrs: dict[str, Any]
    rank: int
    """1 = Pareto-optimal over all the study's completed trials."""
    p_nondominated: float
    knee: bool
    reference: dict | None
    checkpoints: dict | None = None
    """Content hashes of the checkpoints the study evaluated (study attribute)."""
    uncertainty: str = ""
    """How ``p_nondominated`` and ``base_difference`` were computed, and from how many draws."""
    draws: int = 0
    base_difference: tuple | None = None
    """``(difference, low, high)`` per objective: this trial minus the base model, with the
    paired 95% interval (None without per-prompt scores)."""

    @property
    def key(self) -> str:
        return f"{self.run.label}#{self.number}"

    @property
    def slug(self) -> str:
        return trial_slug(self.run.label, self.number)

    def recipe(self) -> MergeRecipe:
        return MergeRecipe.model_validate(self.attrs["recipe"])

    def study_spec(self):
        from merging.study.spec import parse_study_spec

        return parse_study_spec(self.run.details["study_spec"], f"study {self.study!r} (stored)")


def trial_slug(label: str, number: int) -> str:
    """A trial's folder name: ``RUN-NUMBER`` with anything unsafe in a path replaced."""
    return _folder_name(f"{label}-{number}")


def _folder_name(text: str) -> str:
    """``text`` with anything but letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


# -- finding trials -------------------------------------------------------------------------
def study_trials(storage_url: str, study: str, runs: list | None = None) -> list[TrialRecord]:
    """Every completed trial of ``study``, with its front rank, P(non-dominated) and knee
    (``runs``: the study's ``RunStore``s, when already open)."""
    from merging.study.runner import CHECKPOINTS_ATTR
    from pareto.report import study_report, trial_standing
    from pareto.store import open_runs, open_storage

    runs = runs or open_runs(open_storage(storage_url), study)
    results = [r.results() for r in runs]
    standing = trial_standing(
        results, study_report(results), reference=runs[0].study.user_attrs.get("reference")
    )
    values = np.vstack([r.values for r in results])
    errs = np.nan_to_num(np.vstack([r.stderrs for r in results]))
    records, i = [], 0
    for run, res in zip(runs, results, strict=True):
        reference = run.study.user_attrs.get("reference")
        checkpoints = run.study.user_attrs.get(CHECKPOINTS_ATTR)
        for number, x, attrs in zip(res.numbers, res.x, res.attrs, strict=True):
            records.append(
                TrialRecord(
                    study=study,
                    storage=storage_url,
                    run=res.spec,
                    number=int(number),
                    x=np.asarray(x, dtype=float).tolist(),
                    values=tuple(float(v) for v in values[i]),
                    stderrs=tuple(float(v) for v in errs[i]),
                    attrs=attrs,
                    rank=int(standing.rank[i]),
                    p_nondominated=float(standing.p_nondominated[i]),
                    knee=bool(standing.knee[i]),
                    reference=reference,
                    checkpoints=checkpoints,
                    uncertainty=standing.method,
                    draws=standing.draws,
                    base_difference=None
                    if standing.base_difference is None
                    else (
                        tuple(standing.base_difference[i].tolist()),
                        tuple(standing.base_low[i].tolist()),
                        tuple(standing.base_high[i].tolist()),
                    ),
                )
            )
            i += 1
    return records


def select_trial(storage_url: str, study: str, trial: str | None, *, knee: bool = False):
    """The trial ``RUN#NUMBER`` (or ``NUMBER`` when the study has one run), or the knee.

    Raises ``ValueError`` with one line naming what is wrong: an unknown run or trial, or a
    trial that did not complete.
    """
    from pareto.store import open_runs, open_storage

    opened = open_runs(open_storage(storage_url), study)
    runs = {r.spec.label: r for r in opened}
    records = study_trials(storage_url, study, opened)
    if knee:
        found = [r for r in records if r.knee]
        if not found:
            raise ValueError(f"study {study!r} has no completed trial yet: no knee to export")
        return found[0]
    if trial is None:
        raise ValueError("say which trial: --trial RUN#NUMBER, --knee or --front")
    label, sep, number_text = trial.strip().rpartition("#")
    label, number_text = label.strip(), number_text.strip()
    if not sep:  # "NUMBER", or "RUN NUMBER" as older versions of 'study show' printed it
        words = trial.split()
        label, number_text = (words[0], words[1]) if len(words) == 2 else ("", trial.strip())
    if not label:
        if len(runs) > 1:
            raise ValueError(
                f"--trial {trial!r}: study {study!r} has runs {', '.join(runs)}; write "
                f"RUN#NUMBER, e.g. {next(iter(runs))}#"
                f"{number_text if number_text.isdigit() else 0}"
            )
        label = next(iter(runs))
    if label not in runs:
        raise ValueError(f"study {study!r} has no run {label!r}; runs: {', '.join(runs)}")
    try:
        number = int(number_text)
    except ValueError:
        raise ValueError(f"--trial {trial!r}: write RUN#NUMBER, e.g. {label}#0") from None
    for record in records:
        if record.run.label == label and record.number == number:
            return record
    states = {t.number: t for t in runs[label].trials()}
    if number not in states:
        span = f"trials 0-{max(states)}" if states else "no trials"
        raise ValueError(f"study {study!r} has no trial {label}#{number} ({label} has {span})")
    t = states[number]
    why = t.user_attrs.get("error")
    raise ValueError(
        f"trial {label}#{number} is {t.state.name}, not COMPLETE: only completed trials can be "
        "exported" + (f" (it failed with {why})" if why else "")
    )


# -- export ---------------------------------------------------------------------------------
def export_trial(
    record: TrialRecord,
    out: str | Path,
    *,
    weights: bool = True,
    force: bool = False,
    device: str = "cpu",
    max_shard_size: str = DEFAULT_SHARD,
    session=None,
    log: Log = print,
) -> Path:
    """Write ``record``'s export to the folder ``out``: absent or empty, or with ``force`` an
    earlier export (``is_export_folder``), which the new one replaces.

    The export is written into a new folder beside ``out`` (``.NAME.partial-PID-XXXX``),
    ``MARKER_FILE`` last, and moved into place only when complete: at every instant ``out`` is
    absent, the complete earlier folder or the complete new one, even if the process is
    killed (``is_finished_export`` tells a finished export). ``weights=False`` writes the
    recipe only (mergekit YAML and model card). ``session``: a ``StudySession`` of the trial's
    study already loaded (exports of one study share it).
    """
    from merging.study.runner import StudySession

    target = check_out(out, force=force)
    if session is None:
        log(f"loading the models of study {record.study!r}")
        # merge in the dtype the trial was evaluated in (bfloat16 when the study ran on CUDA)
        dtype = record.attrs.get("merge_dtype", "auto")
        session = StudySession(
            record.study_spec(), device=device, log=log, evaluate=False, build=False, dtype=dtype
        )
    # everything that can fail is worked out before anything is written
    plan = _TrialExport.make(record, session, weights, log)
    if weights:
        ensure_space(target, _weight_bytes(plan.experts))
    with _staged(target, force=force) as path:
        plan.write(path, session, max_shard_size, log, shown=target)
        write_marker(path, record.study, trial=record.key, weights=weights)
    log(f"exported {record.key} to {target} ({plan.contents})")
    return target


def export_front(
    storage_url: str, study: str, out: str | Path, *, force: bool = False, log: Log = print
) -> list[Path]:
    """The recipes (mergekit YAML and model card, no weights) of every Pareto-optimal trial,
    one folder each, ``OUT/RUN-NUMBER``.

    All or nothing, as ``export_trial`` for one trial: the folders are written under a new
    folder beside ``out``, which holds ``MARKER_FILE`` (listing the trials, written last) and is
    moved into place when every trial is written. Each trial's folder has its own marker.
    """
    from merging.study.runner import StudySession

    target = check_out(out, force=force)
    front = [r for r in study_trials(storage_url, study) if r.rank == 1]
    if not front:
        raise ValueError(f"study {study!r} has no completed trial yet")
    session = StudySession(front[0].study_spec(), log=log, evaluate=False, build=False)
    quiet: Log = lambda _: None  # noqa: E731
    plans = [  # every check before anything is written; a note about the study once
        _TrialExport.make(r, session, False, log if i == 0 else quiet) for i, r in enumerate(front)
    ]
    with _staged(target, force=force) as root:
        for plan in plans:
            folder = root / plan.record.slug
            folder.mkdir()
            plan.write(folder, session, DEFAULT_SHARD, log)
            write_marker(folder, study, trial=plan.record.key, weights=False)
        write_front_index(root, [p.record for p in plans])
        write_marker(root, study, front=[p.record.key for p in plans])
    for plan in plans:
        log(f"exported {plan.record.key} to {target / plan.record.slug} ({plan.contents})")
    return [target / p.record.slug for p in plans]


FRONT_INDEX = "front"
"""``front.csv`` and ``front.json`` in a ``--front`` export: one row per trial and folder."""


def write_front_index(root: Path, records: list[TrialRecord]) -> None:
    """The index of a front export: each trial's name, folder, values, standard errors,
    P(non-dominated) and whether it is the knee, as CSV (for a spreadsheet) and JSON."""
    import csv

    objectives = records[0].run.objectives
    rows = []
    for r in records:
        row: dict[str, Any] = {"trial": r.key, "folder": r.slug, "run": r.run.label}
        row["family"] = r.run.family
        for name, value, err in zip(objectives, r.values, r.stderrs, strict=True):
            row[name], row[f"{name}_stderr"] = float(value), float(err)
        row["p_nondominated"] = float(r.p_nondominated)
        row["knee"] = bool(r.knee)
        rows.append(row)
    (root / f"{FRONT_INDEX}.json").write_text(json.dumps(rows, indent=2) + "\n")
    with (root / f"{FRONT_INDEX}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@dataclass(frozen=True)
class _TrialExport:
    """What one trial's export writes, worked out (and checked) before anything is written."""

    record: TrialRecord
    weights: bool
    family: Any
    recipe: MergeRecipe
    experts: Any
    config: dict | None
    notes: list[str]
    card: str

    @classmethod
    def make(cls, record: TrialRecord, session, weights: bool, log: Log) -> _TrialExport:
        family, recipe, experts = check_trial(record, session, log)
        config, notes = mergekit_config(record, family, recipe, experts)
        spec = record.study_spec()
        card = model_card(record, spec, experts, recipe, notes, weights, config is not None)
        return cls(record, weights, family, recipe, experts, config, notes, card)

    @property
    def contents(self) -> str:
        return ("weights, " if self.weights else "") + (
            "mergekit YAML, " if self.config is not None else ""
        ) + "model card"  # fmt: skip

    def write(
        self, path: Path, session, max_shard_size: str, log: Log, shown: Path | None = None
    ) -> None:
        """Write the export into the existing folder ``path`` (``shown``: its name in logs)."""
        record, family, recipe = self.record, self.family, self.recipe
        spec = record.study_spec()
        if self.weights:
            from merging.save import save_merged

            merger = session.merger(family)
            log(f"merging {record.key} and writing {shown or path}")
            family.apply(recipe, merger)
            save_merged(merger, path, recipe=recipe, force=True, max_shard_size=max_shard_size)
            write_generation_config(path, spec.generation, merger.model)
            suffix = None
            if record.run.family == "rewards_in_context":
                suffix = condition_suffix(recipe.experts, family.desired(recipe), family.words)
            if suffix is not None or spec.generation.system_prompt is not None:
                bake_chat_template(
                    path, spec.generation.system_prompt, suffix, family.prompt_transform(recipe)
                )
        if self.config is not None:
            header = "".join(f"# {line}\n" for line in self.notes)
            (path / MERGEKIT_FILE).write_text(header + yaml.safe_dump(self.config, sort_keys=False))
        (path / CARD_FILE).write_text(self.card)


# -- the output folder ----------------------------------------------------------------------
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
def _staged(target: Path, *, force: bool) -> Iterator[Path]:
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
        if ours and sibling.is_dir() and not sibling.is_symlink() and not _alive(int(match["pid"])):
            shutil.rmtree(sibling, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (assumed so where that cannot be told)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def exports_folder(storage_url: str, study: str) -> Path:
    """Where the dashboard writes a study's exports: ``runs/NAME/exports`` beside the study's
    own SQLite file, ``FOLDER/exports/NAME`` beside a file that may hold several studies, else
    ``./runs/NAME/exports``."""
    name = _folder_name(study)
    if storage_url.startswith("sqlite:///"):
        folder = Path(storage_url.removeprefix("sqlite:///")).parent
        return folder / "exports" if folder.name == name else folder / "exports" / name
    return Path("runs") / name / "exports"


# -- parts ----------------------------------------------------------------------------------
def check_trial(record: TrialRecord, session, log: Log = print):
    """``(family, recipe, experts)`` of the trial, after checking that the study's checkpoints
    and the trial's recipe are what the study evaluated; ``ValueError`` otherwise."""
    family = session.families[record.run.label]
    recipe = record.recipe()
    try:
        again = family.recipe(np.asarray(record.x))
    except ValueError as err:
        raise ValueError(
            f"trial {record.key}: its x does not fit the study's models as they are now ({err}):"
            " the checkpoints changed since the study ran; not exporting"
        ) from None
    _check_recipe(recipe, again, record.key)
    experts = _expert_set(session, family)
    _check_checkpoints(record, experts, log)
    return family, recipe, experts


def _check_recipe(stored: MergeRecipe, again: MergeRecipe, key: str) -> None:
    """The stored recipe must be what the family makes of the stored ``x`` today."""
    a, b = stored.model_dump(), again.model_dump()
    same = a.keys() == b.keys() and all(
        np.allclose(np.asarray(a[k], float), np.asarray(b[k], float), atol=1e-9)
        if k in ("weights", "block_weights") and a[k] is not None and b[k] is not None
        else a[k] == b[k] or (k == "parameters" and _close_dicts(a[k], b[k]))
        for k in a
    )
    if not same:
        raise ValueError(
            f"trial {key}: its recorded recipe is not what its family makes of its x now "
            "(the study's models or settings changed): not exporting"
        )


def _check_checkpoints(record: TrialRecord, experts, log: Log) -> None:
    """The checkpoints must be, byte for byte, those the study evaluated (when it recorded
    them): a rebuilt zoo or a changed expert would export weights nobody evaluated."""
    from merging.paths import content_hash

    stored = record.checkpoints
    if not stored:
        log(
            f"note: study {record.study!r} recorded no checkpoint hashes (it ran before they "
            "were recorded): this export cannot check that its checkpoints are those evaluated"
        )
        return
    now = {"base": experts.base.path, **{n: c.path for n, c in experts.experts.items()}}
    changed = [n for n, p in now.items() if n in stored and content_hash(p) != stored[n]]
    if changed:
        raise ValueError(
            f"trial {record.key}: checkpoint(s) {', '.join(changed)} differ from those study "
            f"{record.study!r} evaluated (content hashes): a rebuilt zoo or changed expert would "
            "export weights nobody evaluated; not exporting"
        )


def _close_dicts(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-9) for k in a)


def _expert_set(session, family):
    """The family's checkpoints, inspected from their headers (no weights loaded)."""
    from merging.checkpoints import ExpertSet

    if family.name == "rewards_in_context":
        return ExpertSet.from_paths(session.base, {"ric": session.ric})
    return ExpertSet.from_paths(session.base, session.experts)


def _weight_bytes(experts) -> int:
    sizes = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
    return sum(
        int(np.prod(spec.shape)) * sizes.get(spec.dtype, 4)
        for spec in experts.base.tensors.values()
    )


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


def mergekit_config(record: TrialRecord, family, recipe: MergeRecipe, experts):
    """``(config, notes)``: the mergekit configuration that reproduces the trial's weights
    (None when mergekit cannot read a checkpoint: a GGUF file), and the notes about it."""
    from merging.checkpoints import GGUF, LORA

    notes = [
        f"paretomerge export of study {record.study!r}, trial {record.key} ({record.run.family})",
        f"reproduce the weights: mergekit-yaml {MERGEKIT_FILE} OUT --lora-merge-cache CACHE",
    ]
    checkpoints = [experts.base, *experts.experts.values()]
    gguf = [str(c.path) for c in checkpoints if c.kind == GGUF]
    if gguf:
        notes[1] = (
            f"no {MERGEKIT_FILE}: mergekit reads no GGUF file ({', '.join(gguf)}); convert it to "
            "a Hugging Face folder to reproduce the merge with mergekit"
        )
        return None, notes

    def reference(checkpoint) -> str:
        if checkpoint.kind == LORA:
            return f"{experts.base.path}+{checkpoint.path}"
        return str(checkpoint.path)

    base = reference(experts.base)
    paths = {name: reference(c) for name, c in experts.experts.items()}
    if any(c.kind == LORA for c in experts.experts.values()):
        notes.append(
            "the experts are LoRA adapters: each is written BASE+ADAPTER, which mergekit merges "
            "into the base before merging, so this recipe is against the experts' merged forms"
        )
    if record.run.family == "dare_ties" and recipe.parameters.get("density", 1.0) < 1.0:
        notes[1] = (
            f"approximately reproduce: mergekit-yaml {MERGEKIT_FILE} OUT --lora-merge-cache CACHE"
        )
        notes.append(
            "dare_ties drops parameters at random: mergekit draws its own masks, so its weights "
            "differ from this export's (whose masks paretomerge seeded); at density 1 they agree"
        )
    if record.run.family == "rewards_in_context":
        notes.append(
            "rewards_in_context changes the prompt, not the weights: this is the RiC model "
            "itself; the desired rewards are in the exported chat template"
        )
        config = {"merge_method": "passthrough", "models": [{"model": paths["ric"]}]}
    else:
        layers = None
        if record.run.family == "layerwise":
            from merging.architecture import layer_map

            layers = layer_map(experts.config)
        config = family.mergekit_config(recipe, base, paths, layers=layers)
    from merging.save import stored_dtype_name

    config["dtype"] = stored_dtype_name(experts)  # the exported tensors' dtype
    return config, notes


def write_generation_config(path: Path, settings, model) -> None:
    """The study's generation settings as the folder's ``generation_config.json``: length,
    greedy or sampling, and the end-of-turn tokens the study stopped at."""
    from transformers import GenerationConfig

    from merging.generation import stop_token_ids
    from merging.policy import load_tokenizer

    try:
        config = GenerationConfig.from_pretrained(path)
    except OSError:
        config = GenerationConfig.from_model_config(model.config)
    config.max_new_tokens = settings.max_new_tokens
    config.do_sample = settings.do_sample
    if settings.do_sample:
        config.temperature, config.top_p = settings.temperature, settings.top_p
    else:
        config.temperature = config.top_p = config.top_k = None
    stops = stop_token_ids(load_tokenizer(path), model)
    if stops:
        config.eos_token_id = stops
    config.save_pretrained(path)


def bake_chat_template(
    path: Path, system_prompt: str | None, suffix: str | None, transform=None
) -> None:
    """Write into the exported chat template what the study added to every prompt: its system
    prompt (when the conversation has none, as ``merging.generation.render`` does) and, for
    rewards-in-context, the desired rewards after the last user message (``suffix``, from
    ``merging.ric.condition_suffix``). Checked: the template renders what the study rendered,
    the family's ``transform`` then ``render`` with the original template."""
    from merging.data import Prompt
    from merging.generation import render
    from merging.policy import load_tokenizer

    prelude = ""
    if suffix is not None:
        prelude += (
            "{%- if messages and messages[-1]['role'] == 'user' -%}"
            "{%- set messages = messages[:-1] + [{'role': 'user', 'content': "
            f"messages[-1]['content'] + {json.dumps(suffix)}" + "}] -%}"
            "{%- endif -%}\n"
        )
    if system_prompt is not None:
        prelude += (
            "{%- if not messages or messages[0]['role'] != 'system' -%}"
            "{%- set messages = [{'role': 'system', 'content': "
            f"{json.dumps(system_prompt)}" + "}] + messages -%}"
            "{%- endif -%}\n"
        )
    jinja = path / "chat_template.jinja"
    config_file = path / "tokenizer_config.json"
    if jinja.is_file():
        original = jinja.read_text()
        jinja.write_text(prelude + original)
    else:
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        if not config.get("chat_template"):
            raise ValueError("the tokenizer has no chat template to write the prompt into")
        original = config["chat_template"]
        config["chat_template"] = prelude + original
        config_file.write_text(json.dumps(config, indent=2) + "\n")
    exported = load_tokenizer(path)
    for text in ("Hello?", "How do I bake bread?\nStep by step."):
        prompt = Prompt(({"role": "user", "content": text},))
        shown = transform(prompt) if transform is not None else prompt
        want = render(exported, shown, system_prompt, chat_template=original)
        if render(exported, prompt) != want:
            raise RuntimeError("the exported chat template does not render the study's prompt")


def generation_settings(settings) -> dict:
    """The generation settings as the card shows them: no sampling settings when decoding is
    greedy (they would not have been used)."""
    shown = settings.model_dump(mode="json")
    if not shown.get("do_sample"):
        for key in ("temperature", "top_p", "top_k", "seed"):
            shown.pop(key, None)
    return shown


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_base_model(spec, base_path: str | Path) -> str | None:
    """The base model's hub id for the card's ``base_model``: the embedded zoo's, else the
    name its ``config.json`` was saved from when that is a hub id (not a local path)."""
    if spec.zoo in HUB_BASES:
        return HUB_BASES[spec.zoo]
    try:
        name = json.loads((Path(base_path) / "config.json").read_text()).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and HUB_ID.match(name) else None


def portable_name(spec, path: str | Path, *, base: bool = False) -> str:
    """How a card names a checkpoint so that it means something on another machine: the
    embedded zoo's base by its hub id, a zoo component as ``zoo:PRESET/NAME``, anything else
    relative to the study file's folder (never an absolute local path)."""
    from merging.zoo import default_zoo_dir

    p = Path(path).resolve()
    if spec.zoo:
        if base and spec.zoo in HUB_BASES:
            return HUB_BASES[spec.zoo]
        zoo = default_zoo_dir(spec.zoo).resolve()
        if p.is_relative_to(zoo):
            return f"zoo:{spec.zoo}/{p.relative_to(zoo).as_posix()}"
        if p.parent.name and (p.parent / "zoo.json").is_file():  # a zoo built elsewhere (--out)
            return f"zoo:{spec.zoo}/{p.name}"
    origin = Path(spec.source).parent if getattr(spec, "source", None) else Path.cwd()
    return Path(os.path.relpath(p, origin)).as_posix()


def model_card(
    record, spec, experts, recipe: MergeRecipe, notes, weights: bool, has_yaml: bool = True
) -> str:
    """``README.md``: a Hugging Face model card with a metadata header."""
    from merging.paths import content_hash
    from pareto.report import format_difference
    from pareto.store import safe_url

    prompts = spec.prompts.model_dump(mode="json", exclude_none=True)
    if spec.prompts.path is not None:  # a prompts file: say which, by content
        prompts.pop("hh_rlhf", None)
        prompts["path"] = str(spec.resolve(spec.prompts.path))
        prompts["content_hash"] = content_hash(prompts["path"])
    storage = safe_url(record.storage).split("?")[0]  # no query: it may carry secrets

    objectives, senses = record.run.objectives, record.run.senses
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation"}
    base_model = hub_base_model(spec, experts.base.path)
    if base_model:
        meta["base_model"] = base_model
    meta["tags"] = ["paretomerge", "merge", "mergekit", "multi-objective", record.run.family]
    base_values = (record.reference or {}).get("values")
    base_errs = (record.reference or {}).get("stderr")
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {record.study} / {record.key}",
        "",
        f"Exported by paretomerge from study **{record.study}**, run **{record.run.label}** "
        f"(family `{record.run.family}`, driver `{record.run.driver}`), trial "
        f"**{record.number}**" + (" (the knee of the study's front)." if record.knee else "."),
        "" if weights else "\nThis export holds the recipe only (no weights).",
        *(
            [
                "",
                "**This model comes from the `tiny` zoo**: a 2-layer Llama with random weights, "
                "built for tests. Its text is noise and its scores mean nothing about alignment.",
                "",
            ]
            if spec.zoo == "tiny"
            else []
        ),
        "## Scores",
        "",
        f"Means over the study's evaluation prompts (at most {spec.prompts.n}, see below), with "
        "their standard errors"
        + (
            f"; this trial was raced out after {record.attrs.get('prompts_used')} prompts "
            "(its values are the base's plus its paired difference from the base on them)."
            if record.attrs.get("raced_out")
            else "."
        )
        + (
            " The difference from the base model is paired (both scored on the same prompts), "
            "with its 95% bootstrap interval."
            if record.base_difference
            else ""
        ),
        "",
        "| objective | sense | this model | base model |"
        + (" this − base [95%] |" if record.base_difference else ""),
        "|---|---|---|---|" + ("---|" if record.base_difference else ""),
    ]
    for j, (o, s) in enumerate(zip(objectives, senses, strict=True)):
        base = "—" if base_values is None else f"{base_values[j]:.4g} ± {base_errs[j]:.2g}"
        better = "higher is better" if s == "max" else "lower is better"
        diff = ""
        if record.base_difference:
            diff = f" {format_difference(*(part[j] for part in record.base_difference))} |"
        lines.append(
            f"| {o} | {s} ({better}) | {record.values[j]:.4g} ± {record.stderrs[j]:.2g} | {base} |"
            + diff
        )
    lines += [
        "",
        f"Front rank **{record.rank}** of the study's {len(objectives)}-objective "
        "non-dominated sorting (1 = Pareto-optimal); probability of being non-dominated: "
        f"**{record.p_nondominated:.2f}** ({record.uncertainty or 'independent normal errors'}"
        f", {record.draws:,} draws).",
        "",
        "## How it was made",
        "",
        f"`x` = `{json.dumps(np.round(np.asarray(record.x), 6).tolist())}`; recipe:",
        "",
        "```json",
        json.dumps(recipe.model_dump(mode="json"), indent=2),
        "```",
        "",
        "| checkpoint | kind | where | content hash |",
        "|---|---|---|---|",
        f"| base | {experts.base.kind} | `{portable_name(spec, experts.base.path, base=True)}` "
        f"| `{content_hash(experts.base.path)}` |",
    ]
    for name, c in experts.experts.items():
        lines.append(
            f"| {name} | {c.kind} | `{portable_name(spec, c.path)}` | `{content_hash(c.path)}` |"
        )
    lines += [
        "",
        "Notes: " + "; ".join(notes[1:] if not has_yaml else notes[2:])
        if len(notes) > 2 or not has_yaml
        else "",
        "",
        "## Evaluation settings",
        "",
        "Prompts:",
        "",
        "```json",
        json.dumps(prompts, indent=2),
        "```",
        "",
        "Generation (also in `generation_config.json`; the system prompt, if any, is in the "
        "chat template; prompts longer than `max_prompt_tokens` kept their end):"
        if weights
        else "Generation:",
        "",
        "```json",
        json.dumps(generation_settings(spec.generation), indent=2),
        "```",
        "",
        "## Reproduce",
        "",
        "```bash",
        f"paretomerge export --study {record.study} --storage '{storage}' "
        f"--trial '{record.key}' --out OUT",
        *(
            [
                f"mergekit-yaml {MERGEKIT_FILE} OUT --lora-merge-cache CACHE"
                + ("   # the same weights" if notes[1].startswith("reproduce") else "")
            ]
            if has_yaml
            else []
        ),
        "```",
        "",
    ]
    if weights:
        lines += [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained('THIS_FOLDER')",
            "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')",
            "```",
            "",
        ]
    return "\n".join(lines)
