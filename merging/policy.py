"""Policies to evaluate: a merged model (a ResidentMerger and a recipe) or a plain checkpoint."""

from __future__ import annotations

from pathlib import Path

from merging.device import resolve_device, resolve_dtype
from merging.paths import fingerprint, pretrained_source


def load_tokenizer(path: str | Path):
    """The tokenizer of a Hugging Face folder or a GGUF file."""
    from transformers import AutoTokenizer

    folder, kwargs = pretrained_source(path)
    return AutoTokenizer.from_pretrained(folder, **kwargs)


def load_plain_policy(
    path: str | Path,
    *,
    device: str | None = "auto",
    dtype: str | None = "auto",
    trust_remote_code: bool = False,
):
    """``(model, tokenizer, identity)`` of a checkpoint evaluated as it is."""
    from transformers import AutoModelForCausalLM

    p = Path(path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    folder, kwargs = pretrained_source(p)
    model = (
        AutoModelForCausalLM.from_pretrained(
            folder, dtype=dt, trust_remote_code=trust_remote_code, **kwargs
        )
        .to(dev)
        .eval()
    )
    identity = {
        "model": str(p.resolve()),
        "fingerprint": fingerprint(p),
        "device": dev.type,
        "dtype": str(dt),
    }
    return model, load_tokenizer(p), identity


def merged_identity(merger, recipe) -> dict:
    """What determines a merged policy: its recipe, its checkpoints, the device type and dtype."""
    es = merger.experts
    return {
        "recipe": recipe.model_dump(mode="json"),
        "base": fingerprint(es.base.path),
        "experts": {n: fingerprint(c.path) for n, c in es.experts.items()},
        "device": merger.device.type,
        "dtype": str(merger.dtype),
    }


def use_base(merger) -> dict:
    """Set the merger to the base model (every expert weight 0) and return its identity."""
    merger.set_linear([0.0] * len(merger.expert_names), base_weight=1.0)
    return {
        "model": "base",
        "base": fingerprint(merger.experts.base.path),
        "device": merger.device.type,
        "dtype": str(merger.dtype),
    }
