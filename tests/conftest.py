"""Shared test set-up: no model hub, ever."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import pytest

HH_RLHF = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"


@pytest.fixture(scope="session")
def tiny_zoo_cache(tmp_path_factory):
    """A session cache folder (``$PARETOMERGE_CACHE``, also for subprocesses) holding the tiny
    zoo at its default place, and ``$PARETOMERGE_DATA`` pointing at the shared HH-RLHF files."""
    from merging.zoo import build_zoo

    cache = tmp_path_factory.mktemp("cache")
    os.environ["PARETOMERGE_CACHE"] = str(cache)
    os.environ["PARETOMERGE_DATA"] = str(HH_RLHF)
    manifest = build_zoo("tiny", log=lambda _: None)
    return cache, manifest
