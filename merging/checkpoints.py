"""Checkpoints on disk: inspected from their headers, read one tensor at a time, or loaded.

A checkpoint is *inspected* first (config, tensor names, shapes and dtypes read from file
headers, tokenizer vocabulary) so that every disagreement between the experts and the base can
be reported in one error before any tensor is loaded (:mod:`merging.expert_set`). Three kinds
are read:

* Hugging Face folders: ``config.json`` with ``model.safetensors``, sharded safetensors with
  ``model.safetensors.index.json``, or ``pytorch_model.bin``;
* PEFT LoRA adapter folders (``adapter_config.json``): the expert's task vector is the full
  delta ``B @ A * scale`` of every adapted weight (never A and B averaged separately), plus
  ``modules_to_save`` weights minus the base (:mod:`merging.lora` reads their tensors);
* GGUF files, dequantised through ``transformers`` (needs the ``gguf`` package).

:func:`load_pretrained` is how every command loads a whole model through ``transformers``,
with the same checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from merging.errors import CheckpointError
from merging.lora import LORA_KEY, lora_modules, saved_module_name

HF, LORA, GGUF = "hf", "lora", "gguf"
_TORCH_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Checkpoint:
    """One checkpoint, inspected from its headers; tensors are read only on demand."""

    name: str
    path: Path
    kind: str
    config: object | None
    tensors: dict[str, TensorSpec]
    """Full weights (``hf``, ``gguf``) or the weights an adapter changes (``lora``)."""
    vocab: dict[str, int] | None = None
    """Tokenizer vocabulary (token -> id, added tokens included), when the folder has one."""
    lora: dict | None = None
    """``adapter_config.json`` of a LoRA adapter."""
    raw_specs: dict[str, TensorSpec] | None = None
    """A LoRA adapter's own tensors (``lora_A``, ``lora_B``...), from its file's header."""
    _files: dict[str, Path] = field(default_factory=dict, repr=False)
    _loaded: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def from_state(cls, name: str, config, state: Mapping[str, torch.Tensor]) -> Checkpoint:
        """A full checkpoint a program holds in memory (benchmarks build experts of real
        shapes this way, where files of several copies would not fit on disk)."""
        specs = {
            k: TensorSpec(tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in state.items()
        }
        ckpt = cls(name, Path(f"<in memory: {name}>"), HF, config, specs)
        ckpt._loaded = dict(state)
        return ckpt

    @property
    def in_memory(self) -> bool:
        """Held only in memory (:meth:`from_state`): no file to load it from."""
        return self.kind == HF and self._loaded is not None and not self.path.exists()

    @property
    def architecture(self) -> str | None:
        archs = getattr(self.config, "architectures", None) or []
        return archs[0] if archs else None

    @property
    def vocab_size(self) -> int | None:
        return getattr(self.config, "vocab_size", None)

    def read(self, name: str) -> torch.Tensor:
        """One tensor of an ``hf`` or ``gguf`` checkpoint, as stored."""
        if self._loaded is not None:
            return self._loaded[name]
        path = self._files[name]
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return f.get_tensor(name)
        return _torch_load(path)[name]


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _safetensors_specs(paths: list[Path]) -> tuple[dict[str, TensorSpec], dict[str, Path]]:
    from safetensors import SafetensorError, safe_open

    specs, files = {}, {}
    for p in paths:
        try:
            with safe_open(str(p), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    sl = f.get_slice(key)
                    specs[key] = TensorSpec(tuple(sl.get_shape()), _TORCH_DTYPES[sl.get_dtype()])
                    files[key] = p
        except SafetensorError as err:  # truncated or corrupt: safe_open checks the size
            raise CheckpointError(
                f"{p}: not a readable safetensors file ({first_line(err)})"
            ) from None
    return specs, files


def first_line(err: BaseException, limit: int = 200) -> str:
    """An exception's message folded onto one line, cut at ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _weight_files(folder: Path, stem: str) -> list[Path]:
    """The safetensors (or .bin) files of a folder, following a shard index when present."""
    for suffix in (".safetensors", ".bin"):
        index = folder / f"{stem}{suffix}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(f"{folder}: shard index names missing files {missing}")
            return [folder / s for s in shards]
        single = folder / f"{stem}{suffix}"
        if single.is_file():
            return [single]
    return []


def _read_vocab(folder: Path, gguf_file: str | None = None) -> dict[str, int] | None:
    tok_json = folder / "tokenizer.json"
    if gguf_file is None and tok_json.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(tok_json)).get_vocab(with_added_tokens=True)
    if gguf_file is not None or (folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
        except (OSError, ValueError):
            return None
        return dict(tok.get_vocab())
    return None


def _needs_remote_code(config_dict: dict) -> bool:
    return bool(config_dict.get("auto_map"))


def _load_config(folder: Path, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        raw = json.loads((folder / "config.json").read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{folder / 'config.json'}: not a JSON object")
    if _needs_remote_code(raw) and not trust_remote_code:
        raise CheckpointError(
            f"{folder}: this model's config asks to run code from the checkpoint (auto_map); "
            "refusing. Pass trust_remote_code=True (--trust-remote-code) if you trust it"
        )
    return AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)


def inspect_checkpoint(
    name: str, path: str | Path, *, trust_remote_code: bool = False
) -> Checkpoint:
    """Read what a checkpoint holds without loading its tensors (GGUF files are loaded)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"{name}: {p} does not exist")
    if p.is_file() and p.suffix == ".gguf":
        return _inspect_gguf(name, p, trust_remote_code)
    if not p.is_dir():
        raise CheckpointError(
            f"{name}: {p} is neither a folder (Hugging Face model or LoRA adapter) nor a .gguf file"
        )
    if (p / "adapter_config.json").is_file():
        return _inspect_lora(name, p)
    if not (p / "config.json").is_file():
        raise CheckpointError(
            f"{name}: {p} has no config.json (Hugging Face model) or adapter_config.json "
            "(LoRA adapter)"
        )
    config = _load_config(p, trust_remote_code)
    files = _weight_files(p, "model") or _weight_files(p, "pytorch_model")
    if not files:
        raise CheckpointError(
            f"{name}: {p} has no model.safetensors, sharded safetensors or pytorch_model.bin"
        )
    if files[0].suffix == ".safetensors":
        specs, where = _safetensors_specs(files)
    else:
        specs, where = {}, {}
        for f in files:
            for key, t in _torch_load(f).items():
                specs[key] = TensorSpec(tuple(t.shape), str(t.dtype).removeprefix("torch."))
                where[key] = f
    return Checkpoint(name, p, HF, config, specs, _read_vocab(p), _files=where)


def _inspect_gguf(name: str, p: Path, trust_remote_code: bool) -> Checkpoint:
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(p.parent), gguf_file=p.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(p.parent),
            gguf_file=p.name,
            dtype=torch.float32,
            trust_remote_code=trust_remote_code,
        )
    except ImportError as err:
        raise CheckpointError(f"{name}: reading GGUF needs the gguf package ({err})") from None
    if not getattr(config, "architectures", None):
        config.architectures = [type(model).__name__]
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    specs = {
        k: TensorSpec(tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()
    }
    ckpt = Checkpoint(name, p, GGUF, config, specs, _read_vocab(p.parent, p.name))
    ckpt._loaded = state
    return ckpt


def _inspect_lora(name: str, p: Path) -> Checkpoint:
    """A LoRA adapter from its config and its weight file's header (no tensor is read)."""
    cfg = json.loads((p / "adapter_config.json").read_text())
    if cfg.get("peft_type", "LORA") != "LORA":
        raise CheckpointError(
            f"{name}: {p} is a {cfg.get('peft_type')} adapter; only LoRA is supported"
        )
    for flag in ("use_dora", "lora_bias"):
        if cfg.get(flag):
            raise CheckpointError(
                f"{name}: {p} uses {flag}, which has no plain weight delta; not supported"
            )
    files = _weight_files(p, "adapter_model")
    if not files:
        raise CheckpointError(f"{name}: {p} has no adapter_model.safetensors or adapter_model.bin")
    ckpt = Checkpoint(name, p, LORA, None, {}, _read_vocab(p), lora=cfg)
    if files[0].suffix == ".safetensors":
        raw_specs, ckpt._files = _safetensors_specs(files[:1])
    else:
        ckpt._loaded = _torch_load(files[0])
        raw_specs = {
            k: TensorSpec(tuple(t.shape), str(t.dtype).removeprefix("torch."))
            for k, t in ckpt._loaded.items()
        }
    ckpt.raw_specs = raw_specs
    for module, parts in lora_modules(raw_specs).items():
        if "A" not in parts or "B" not in parts:
            raise CheckpointError(f"{name}: {p} has lora_A or lora_B missing for {module}")
        a, b = raw_specs[parts["A"]].shape, raw_specs[parts["B"]].shape
        shape = (b[0], a[1])
        if parts["embedding"] or cfg.get("fan_in_fan_out"):
            shape = shape[::-1]
        ckpt.tensors[f"{module}.weight"] = TensorSpec(shape, "lora")
    for key, spec in raw_specs.items():
        if not LORA_KEY.match(key):  # modules_to_save: full replacement weights
            ckpt.tensors[saved_module_name(key)] = spec
    return ckpt


def load_pretrained(auto_class, path: str | Path, *, who: str, trust_remote_code=False, **kwargs):
    """``auto_class.from_pretrained`` on a checkpoint folder or GGUF file, the one way every
    command loads a whole model: code in the checkpoint is refused unless asked for, an
    unreadable weight file and NaN or Inf values are a :class:`CheckpointError` naming them."""
    from safetensors import SafetensorError

    from merging.paths import pretrained_source

    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"{who}: {p} does not exist")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise CheckpointError(f"{who}: {p} has no config.json (not a Hugging Face model)")
        _load_config(p, trust_remote_code)
        files = _weight_files(p, "model")
        if files and files[0].suffix == ".safetensors":
            _safetensors_specs(files)
    folder, source = pretrained_source(p)
    try:
        model = auto_class.from_pretrained(
            folder, trust_remote_code=trust_remote_code, **source, **kwargs
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise CheckpointError(f"{who}: {p} cannot be loaded ({first_line(err)})") from None
    for name, value in model.named_parameters():
        check_finite(f"{who} ({p})", name, value.detach())
    return model


def check_finite(who: str, key: str, value: torch.Tensor) -> None:
    """Raise :class:`CheckpointError` naming ``key`` if ``value`` has NaN or Inf values."""
    if not torch.isfinite(value).all():
        bad = int((~torch.isfinite(value)).sum())
        raise CheckpointError(f"{who}: tensor {key} has {bad} NaN or Inf value(s)")
