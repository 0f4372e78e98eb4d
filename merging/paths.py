"""Where paretomerge keeps what it builds and caches."""

from __future__ import annotations

import hashlib
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


def content_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, in name
    order): what identifies a checkpoint wherever it is copied (unlike :func:`fingerprint`)."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        h.update((f.name if f == p else str(f.relative_to(p))).encode() + b"\0")
        with f.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()
