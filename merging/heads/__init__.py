"""Reward heads: registered scorers of (prompt, response) pairs.

``length_tokens`` and ``target_length`` (verbosity), ``bt_head`` (a Bradley-Terry head on a
frozen encoder, trained by ``paretomerge heads train``) and ``hf_reward_model`` (any Hugging
Face sequence-classification reward model). :func:`load_head` resolves a user's head spec.
"""

from __future__ import annotations

import json
from pathlib import Path

from merging.heads.base import HEAD_KINDS, RewardHead, register
from merging.heads.bt_head import BTHead
from merging.heads.hf_reward import HFRewardModel
from merging.heads.length import LengthTokens, TargetLength

__all__ = [
    "HEAD_KINDS",
    "BTHead",
    "HFRewardModel",
    "LengthTokens",
    "RewardHead",
    "TargetLength",
    "head_bytes",
    "load_head",
    "register",
]


def load_head(
    spec: str, *, device: str | None = "auto", trust_remote_code: bool = False
) -> RewardHead:
    """A head from ``length_tokens``, ``target_length`` or ``target_length:N``, a ``bt_head``
    folder (``head.json``) or a sequence-classification model folder (``config.json``)."""
    name, _, arg = spec.partition(":")
    if name == "length_tokens" and not arg:
        return LengthTokens()
    if name == "target_length":
        try:
            return TargetLength(float(arg)) if arg else TargetLength()
        except ValueError:
            raise ValueError(
                f"head {spec!r}: write target_length:N with N a number of tokens"
            ) from None
    path = Path(spec).expanduser()
    if (path / "head.json").is_file():
        return BTHead.load(path, device=device)
    if (path / "config.json").is_file():
        archs = json.loads((path / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ValueError(f"head {spec!r}: {path} is a {archs} model, not a sequence classifier")
        return HFRewardModel(path, device=device, trust_remote_code=trust_remote_code)
    known = ", ".join(sorted(k for k in HEAD_KINDS if k not in {"bt_head", "hf_reward_model"}))
    raise ValueError(
        f"head {spec!r} is not one of {known}, target_length:N, a bt_head folder (head.json) "
        "or a reward model folder (config.json)"
    )


SMOLLM2_PARAMETERS = 134_515_008


def head_bytes(spec: str, device_type: str = "cpu") -> int:
    """Memory a head takes on a ``device_type`` evaluation device, from its files' headers
    (nothing loaded): a sequence-classification model or a causal-LM encoder in float32; the
    MiniLM encoder runs on the CPU, so it counts only where the device is the CPU."""
    name, _, _ = spec.partition(":")
    if name in ("length_tokens", "target_length"):
        return 0
    path = Path(spec).expanduser()
    if (path / "head.json").is_file():
        doc = json.loads((path / "head.json").read_text())
        encoder = doc.get("encoder") or {}
        total = _float32_bytes(path)
        if isinstance(encoder, dict) and encoder.get("kind") == "minilm":
            if device_type == "cpu":
                from merging.heads.encoders import minilm_dir

                total += _float32_bytes(minilm_dir())
        elif isinstance(encoder, dict) and encoder.get("path"):
            total += _float32_bytes(Path(encoder["path"]))
        elif isinstance(encoder, dict) and encoder.get("kind") == "causal_lm":
            total += SMOLLM2_PARAMETERS * 4  # the embedded SmolLM2 policy, in float32
        return total
    if (path / "config.json").is_file():
        return _float32_bytes(path)
    return 0


def _float32_bytes(folder: Path) -> int:
    """Bytes of a folder's safetensors weights once loaded in float32 (headers only)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += 4 * n
    if folder.is_dir():
        total += sum(f.stat().st_size for f in folder.glob("*.bin"))  # as stored
    return total
