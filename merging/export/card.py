"""The model card of an export: scores, rank, recipe, portable checkpoint names, prompts and
generation settings, with a Hugging Face metadata header."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from merging.export.folder import MERGEKIT_FILE
from merging.recipe import MergeRecipe

HUB_BASES = {"smol": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Hub names of the embedded zoos' base models, for the model card's ``base_model``."""


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
    record,
    spec,
    experts,
    recipe: MergeRecipe,
    notes,
    weights: bool,
    has_yaml: bool = True,
    mixture: bool = False,
) -> str:
    """``README.md``: a Hugging Face model card with a metadata header, then its sections
    (``mixture``: the export is a decoding-time mixture's script, not merged weights)."""
    return "\n".join(
        [
            *_card_header(record, spec, experts, weights),
            *_card_scores(record, spec),
            *_card_recipe(record, spec, experts, recipe, notes, has_yaml),
            *_card_settings(spec, weights),
            *_card_reproduce(record, notes, weights and not mixture, has_yaml),
            *(_card_mixture() if mixture else []),
        ]
    )


def _card_header(record, spec, experts, weights: bool) -> list[str]:
    """The metadata header, the title and where the model comes from."""
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation"}
    base_model = hub_base_model(spec, experts.base.path)
    if base_model:
        meta["base_model"] = base_model
    meta["tags"] = ["paretomerge", "merge", "mergekit", "multi-objective", record.run.family]
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
    ]
    if spec.zoo == "tiny":
        lines += [
            "",
            "**This model comes from the `tiny` zoo**: a 2-layer Llama with random weights, "
            "built for tests. Its text is noise and its scores mean nothing about alignment.",
            "",
        ]
    return lines


def _card_scores(record, spec) -> list[str]:
    """Each objective against the base model (paired, where the study kept per-prompt
    scores), the front rank and P(non-dominated)."""
    from pareto.report import format_difference

    paired = bool(record.base_difference)
    raced = (
        f"; this trial was raced out after {record.attrs.get('prompts_used')} prompts "
        "(its values are the base's plus its paired difference from the base on them)."
        if record.attrs.get("raced_out")
        else "."
    )
    lines = [
        "## Scores",
        "",
        f"Means over the study's evaluation prompts (at most {spec.prompts.n}, see below), with "
        "their standard errors"
        + raced
        + (
            " The difference from the base model is paired (both scored on the same prompts), "
            "with its 95% bootstrap interval."
            if paired
            else ""
        ),
        "",
        "| objective | sense | this model | base model |"
        + (" this − base [95%] |" if paired else ""),
        "|---|---|---|---|" + ("---|" if paired else ""),
    ]
    objectives, senses = record.run.objectives, record.run.senses
    base_values = (record.reference or {}).get("values")
    base_errs = (record.reference or {}).get("stderr")
    for j, (o, s) in enumerate(zip(objectives, senses, strict=True)):
        base = "—" if base_values is None else f"{base_values[j]:.4g} ± {base_errs[j]:.2g}"
        better = "higher is better" if s == "max" else "lower is better"
        diff = ""
        if paired:
            diff = f" {format_difference(*(part[j] for part in record.base_difference))} |"
        lines.append(
            f"| {o} | {s} ({better}) | {record.values[j]:.4g} ± {record.stderrs[j]:.2g} | {base} |"
            + diff
        )
    return [
        *lines,
        "",
        f"Front rank **{record.rank}** of the study's {len(objectives)}-objective "
        "non-dominated sorting (1 = Pareto-optimal); probability of being non-dominated: "
        f"**{record.p_nondominated:.2f}** ({record.uncertainty or 'independent normal errors'}"
        f", {record.draws:,} draws).",
    ]


def _card_recipe(record, spec, experts, recipe: MergeRecipe, notes, has_yaml: bool) -> list[str]:
    """``x``, the recipe, the checkpoints by portable name and content hash, and the notes."""
    from merging.paths import content_hash

    lines = [
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
    shown = notes[1:] if not has_yaml else notes[2:]
    return [*lines, "", "Notes: " + "; ".join(shown) if len(notes) > 2 or not has_yaml else ""]


def _card_settings(spec, weights: bool) -> list[str]:
    """The prompts (a prompts file by path and content hash) and the generation settings."""
    from merging.paths import content_hash

    prompts = spec.prompts.model_dump(mode="json", exclude_none=True)
    if spec.prompts.path is not None:  # a prompts file: say which, by content
        prompts.pop("hh_rlhf", None)
        prompts["path"] = str(spec.resolve(spec.prompts.path))
        prompts["content_hash"] = content_hash(prompts["path"])
    return [
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
    ]


def export_command(storage_url: str, study: str, key: str, out: str | Path) -> str:
    """The ``paretomerge export`` command that writes trial ``key`` of ``study`` to ``out``
    (the storage URL without its query, which may carry secrets, and no password)."""
    from pareto.storage import safe_url

    storage = safe_url(storage_url).split("?")[0]
    return f"paretomerge export --study {study} --storage '{storage}' --trial '{key}' --out {out}"


def _card_mixture() -> list[str]:
    """How to run an exported decoding-time mixture: there is no model to load."""
    return [
        "## Generate",
        "",
        "No merged checkpoint exists: the experts are mixed at every decoding step. "
        "`mixture.json` names them (with content hashes) and their weights; `generate.py` runs "
        "the mixture with transformers (greedy, each expert with its own KV cache):",
        "",
        "```bash",
        'python generate.py "How do I bake bread?"',
        'python generate.py "Hi" --expert NAME=PATH --base PATH   # checkpoints moved',
        "```",
        "",
    ]


def _card_reproduce(record, notes, weights: bool, has_yaml: bool) -> list[str]:
    """The commands that export the trial again and rebuild its weights, and how to load it."""
    lines = [
        "## Reproduce",
        "",
        "```bash",
        export_command(record.storage, record.study, record.key, "OUT"),
    ]
    if has_yaml:
        same = "   # the same weights" if notes[1].startswith("reproduce") else ""
        lines.append(f"mergekit-yaml {MERGEKIT_FILE} OUT --lora-merge-cache CACHE" + same)
    lines += ["```", ""]
    if weights:
        lines += [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained('THIS_FOLDER')",
            "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')",
            "```",
            "",
        ]
    return lines
