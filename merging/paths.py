"""Where paretomerge keeps what it builds and caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: ``$PARETOMERGE_CACHE``, else ``$XDG_CACHE_HOME/paretomerge``, else
    ``~/.cache/paretomerge``."""
    if os.environ.get("PARETOMERGE_CACHE"):
        return Path(os.environ["PARETOMERGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "paretomerge"
