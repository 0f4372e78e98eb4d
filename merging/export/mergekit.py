"""The mergekit YAML of an export: the configuration that reproduces the trial's weights."""

from __future__ import annotations

from merging.export.folder import MERGEKIT_FILE
from merging.recipe import MergeRecipe
from merging.study.trials import TrialRecord


def mergekit_config(record: TrialRecord, family, recipe: MergeRecipe, experts):
    """``(config, notes)``: the mergekit configuration that reproduces the trial's weights
    (None when mergekit cannot read a checkpoint: a GGUF file), and the notes about it."""
    from merging.checkpoints import GGUF, LORA

    notes = [
        f"paretomerge export of study {record.study!r}, trial {record.key} ({record.run.family})",
        f"reproduce the weights: mergekit-yaml {MERGEKIT_FILE} OUT --lora-merge-cache CACHE",
    ]
    if not family.merged_checkpoint:
        notes[1] = (
            f"no {MERGEKIT_FILE}: {family.name} merges no weights, so mergekit has none to build"
        )
        return None, notes + family.export_notes(recipe)
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
    if not family.mergekit_reproduces(recipe):
        notes[1] = (
            f"approximately reproduce: mergekit-yaml {MERGEKIT_FILE} OUT --lora-merge-cache CACHE"
        )
    notes += family.export_notes(recipe)
    layers = None
    if family.per_block:
        from merging.architecture import layer_map

        layers = layer_map(experts.config)
    config = family.mergekit_config(recipe, base, paths, layers=layers)
    from merging.save import stored_dtype_name

    config["dtype"] = stored_dtype_name(experts)  # the exported tensors' dtype
    return config, notes
