"""Writing a merged model as a loadable Hugging Face folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from merging.checkpoints import GGUF, LORA

RECIPE_FILE = "paretomerge_recipe.json"


def prepare_output(out: str | Path, *, force: bool = False) -> Path:
    """Check that ``out`` is absent or empty (or ``force``) before any work is done."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ValueError(f"--out {path} is not empty; choose another folder or pass --force")
    return path


FLOAT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def stored_dtype_name(experts) -> str:
    """The floating dtype of the base checkpoint's tensors (float32 when unknown), by name."""
    for spec in experts.base.tensors.values():
        if spec.dtype in FLOAT_DTYPES:
            return spec.dtype
    return "float32"


def stored_dtype(merger) -> torch.dtype:
    """The floating dtype of the base checkpoint's tensors (float32 when unknown)."""
    return FLOAT_DTYPES[stored_dtype_name(merger.experts)]


def save_merged(
    merger,
    out: str | Path,
    *,
    recipe=None,
    dtype: torch.dtype | None = None,
    force: bool = False,
    max_shard_size: str | int = "5GB",
) -> Path:
    """Write the merger's current weights with config, tokenizer and generation config.

    The working model's parameters all live in one buffer, so they are copied out (in
    ``dtype``, by default the base checkpoint's) before ``save_pretrained``; safetensors files
    are sharded past ``max_shard_size``.
    """
    path = prepare_output(out, force=force)
    path.mkdir(parents=True, exist_ok=True)
    dtype = dtype or stored_dtype(merger)
    model = merger.model
    state = {name: t.detach().to("cpu", dtype).clone() for name, t in merger.state_dict().items()}
    original_dtype = model.config.dtype if hasattr(model.config, "dtype") else None
    model.config.dtype = dtype
    try:
        model.save_pretrained(path, state_dict=state, max_shard_size=max_shard_size)
    finally:
        if original_dtype is not None:
            model.config.dtype = original_dtype
    copy_tokenizer(merger.experts.base, path)
    if recipe is not None:
        provenance = {
            "recipe": recipe.model_dump(mode="json"),
            "base": str(merger.experts.base.path),
            "experts": {n: str(c.path) for n, c in merger.experts.experts.items()},
            "expert_kinds": {n: c.kind for n, c in merger.experts.experts.items()},
        }
        (path / RECIPE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return path


def copy_tokenizer(base, out: Path) -> None:
    """Save the base's tokenizer (and chat template) beside the merged weights."""
    from merging.policy import load_tokenizer

    if base.kind == LORA:
        return
    try:
        tok = load_tokenizer(base.path)
    except (OSError, ValueError):
        if base.kind == GGUF:
            raise
        return
    tok.save_pretrained(out)
    template = base.path / "chat_template.jinja" if base.path.is_dir() else None
    if template is not None and template.is_file() and not (out / template.name).exists():
        shutil.copy(template, out / template.name)
