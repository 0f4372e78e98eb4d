"""Shared test set-up: no model hub, ever."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# float32 on every CPU, so that the suite computes the same on CPUs with and without native
# bfloat16 (PARETOMERGE_CPU_BFLOAT16=1 pytest ... runs it as a bfloat16 machine)
os.environ.setdefault("PARETOMERGE_CPU_BFLOAT16", "0")

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


@pytest.fixture(scope="session")
def tiny_study(tiny_zoo_cache, tmp_path_factory) -> str:
    """``studies/tiny.yaml`` run to its budget on the tiny zoo, in ``FOLDER/runs/tiny/study.db``
    (the dashboard's default place); returns the storage URL."""
    from merging.study.runner import run_study
    from merging.study.spec import load_study_spec
    from pareto.storage import sqlite_url

    folder = tmp_path_factory.mktemp("dashboard")
    url = sqlite_url(folder / "runs" / "tiny" / "study.db")
    run_study(
        load_study_spec(Path(__file__).resolve().parents[1] / "studies" / "tiny.yaml"),
        storage_url=url,
        log=lambda _: None,
    )
    return url
