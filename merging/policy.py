"""Policies to evaluate: a merged model (a ResidentMerger and a recipe) or a plain checkpoint."""

from __future__ import annotations

from pathlib import Path

from merging.device import resolve_device, resolve_dtype
from merging.paths import fingerprint, pretrained_source


def load_tokenizer(path: str | Path, who: str = "model"):
    """The tokenizer of a Hugging Face folder or a GGUF file; a folder without a usable one is
    a one-line :class:`CheckpointError` naming it."""
    from transformers import AutoTokenizer

    from merging.checkpoints import CheckpointError, first_line

    folder, kwargs = pretrained_source(path)
    try:
        return AutoTokenizer.from_pretrained(folder, **kwargs)
    except Exception as err:  # transformers raises OSError, ValueError, TypeError, ...
        raise CheckpointError(
            f"{who}: {path} has no usable tokenizer ({first_line(err)})"
        ) from None


def load_plain_policy(
    path: str | Path,
    *,
    device: str | None = "auto",
    dtype: str | None = "auto",
    trust_remote_code: bool = False,
):
    """``(model, tokenizer, identity)`` of a checkpoint evaluated as it is."""
    from transformers import AutoModelForCausalLM

    from merging.checkpoints import load_pretrained

    p = Path(path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    tokenizer = load_tokenizer(p)  # first: it is quick, and the model may be large
    model = load_pretrained(
        AutoModelForCausalLM, p, who="model", dtype=dt, trust_remote_code=trust_remote_code
    )
    model = model.to(dev).eval()
    identity = {
        "model": str(p.resolve()),
        "fingerprint": fingerprint(p),
        "device": dev.type,
        "dtype": str(dt),
    }
    return model, tokenizer, identity


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
