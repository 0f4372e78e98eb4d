"""Export one trial (weights, mergekit YAML, card) or a front (recipes only, with an index)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from merging.export.card import model_card
from merging.export.checks import check_trial, weight_bytes
from merging.export.folder import (
    CARD_FILE,
    MERGEKIT_FILE,
    check_out,
    ensure_space,
    staged,
    write_marker,
)
from merging.export.hf_folder import bake_chat_template, write_generation_config
from merging.export.mergekit import mergekit_config
from merging.recipe import MergeRecipe
from merging.study.trials import TrialRecord, study_trials

DEFAULT_SHARD = "2GB"
Log = Callable[[str], None]


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
    from merging.study.session import StudySession

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
    if weights and plan.family.merged_checkpoint:
        ensure_space(target, weight_bytes(plan.experts))
    with staged(target, force=force) as path:
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
    from merging.study.session import StudySession

    target = check_out(out, force=force)
    front = [r for r in study_trials(storage_url, study) if r.rank == 1]
    if not front:
        raise ValueError(f"study {study!r} has no completed trial yet")
    session = StudySession(front[0].study_spec(), log=log, evaluate=False, build=False)
    quiet: Log = lambda _: None  # noqa: E731
    plans = [  # every check before anything is written; a note about the study once
        _TrialExport.make(r, session, False, log if i == 0 else quiet) for i, r in enumerate(front)
    ]
    with staged(target, force=force) as root:
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
        card = model_card(
            record,
            spec,
            experts,
            recipe,
            notes,
            weights,
            config is not None,
            mixture=not family.merged_checkpoint,
        )
        return cls(record, weights, family, recipe, experts, config, notes, card)

    @property
    def contents(self) -> str:
        if not self.family.merged_checkpoint:
            return "mixture.json, generate.py, model card"
        return ("weights, " if self.weights else "") + (
            "mergekit YAML, " if self.config is not None else ""
        ) + "model card"  # fmt: skip

    def write(
        self, path: Path, session, max_shard_size: str, log: Log, shown: Path | None = None
    ) -> None:
        """Write the export into the existing folder ``path`` (``shown``: its name in logs)."""
        record, family, recipe = self.record, self.family, self.recipe
        spec = record.study_spec()
        if not family.merged_checkpoint:  # its recipe is all there is, with or without weights
            from merging.export.mixture_folder import write_mixture

            log(f"writing {record.key}'s mixture to {shown or path} (no merged weights exist)")
            write_mixture(path, spec, self.experts, recipe)
        elif self.weights:
            from merging.save import save_merged

            merger = session.merger(family)
            log(f"merging {record.key} and writing {shown or path}")
            family.apply(recipe, merger)
            save_merged(merger, path, recipe=recipe, force=True, max_shard_size=max_shard_size)
            write_generation_config(path, spec.generation, merger.model)
            suffix = family.chat_suffix(recipe)
            if suffix is not None or spec.generation.system_prompt is not None:
                bake_chat_template(
                    path, spec.generation.system_prompt, suffix, family.prompt_transform(recipe)
                )
        if self.config is not None:
            header = "".join(f"# {line}\n" for line in self.notes)
            (path / MERGEKIT_FILE).write_text(header + yaml.safe_dump(self.config, sort_keys=False))
        (path / CARD_FILE).write_text(self.card)
