"""Where paretomerge keeps what it builds and caches."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: ``$PARETOMERGE_CACHE``, else ``$XDG_CACHE_HOME/paretomerge``, else
    ``~/.cache/paretomerge``."""
    if os.environ.get("PARETOMERGE_CACHE"):
        return Path(os.environ["PARETOMERGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "paretomerge"


def fingerprint(path: Path) -> str:
    """Cheap identity of a file or folder: names, sizes and modification times."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def pretrained_source(path: str | Path) -> tuple[str, dict]:
    """``(folder, kwargs)`` for ``from_pretrained``: a Hugging Face folder as it is, or a GGUF
    file as its folder plus ``gguf_file``."""
    p = Path(path)
    if p.suffix == ".gguf":
        return str(p.parent), {"gguf_file": p.name}
    return str(p), {}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
CONTENT_FILES = (
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "ric.json",
)
PATH_KEYS = ("_name_or_path", "base_model_name_or_path", "transformers_version", "revision")
"""Keys of the JSON files that name where or with what a checkpoint was written, not what it
computes: left out of :func:`content_hash`."""


def content_hash(path: str | Path) -> str:
    """SHA-256 of what a checkpoint computes: its weight files, its config and tokenizer files
    (JSON without the keys in ``PATH_KEYS``); not its README, logs or trainer state. Equal for
    a byte-identical checkpoint wherever it is copied or rebuilt (unlike :func:`fingerprint`).
    """
    return _content_hash(str(Path(path).resolve()), _stamp(Path(path)))


def changed_checkpoints(stored: dict[str, str], paths: dict[str, str | Path]) -> list[str]:
    """The names in ``paths`` whose :func:`content_hash` differs from the one ``stored`` for
    them (names ``stored`` lacks are not compared): a study's evaluated checkpoints against
    those on this machine now."""
    return [n for n, p in paths.items() if n in stored and content_hash(p) != stored[n]]


def _stamp(p: Path) -> tuple:
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file())
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, stamp: tuple) -> str:
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file())
    for f in files:
        if f.suffix in WEIGHT_SUFFIXES:
            data = None
        elif f.name in CONTENT_FILES:
            data = f.read_bytes()
            if f.suffix == ".json":
                obj = json.loads(data)
                if isinstance(obj, dict):
                    obj = {k: v for k, v in obj.items() if k not in PATH_KEYS}
                data = json.dumps(obj, sort_keys=True).encode()
        else:
            continue
        h.update(f.name.encode() + b"\0")
        if data is not None:
            h.update(data)
        else:
            with f.open("rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()
