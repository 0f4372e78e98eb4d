"""HH-RLHF's one home: every subset a study may name is found the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from merging.hh_rlhf import SUBSETS, locate_hh_rlhf, subset_file
from merging.study.spec import PromptSpec

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf"


def test_a_folder_needs_only_the_subsets_asked_for(tmp_path):
    (tmp_path / "helpful-online").mkdir()
    (tmp_path / subset_file("helpful-online")).write_bytes(b"")
    assert locate_hh_rlhf(tmp_path, ["helpful-online"]) == tmp_path
    with pytest.raises(FileNotFoundError, match=r"lacks helpful-base/test\.jsonl\.gz"):
        locate_hh_rlhf(tmp_path)  # the zoo's two subsets, by default
    with pytest.raises(ValueError, match="has no subset 'red-team'; its subsets: helpful-base"):
        subset_file("red-team")


def test_the_study_file_allows_exactly_the_subsets_there_are():
    assert PromptSpec(hh_rlhf=list(SUBSETS)).hh_rlhf == SUBSETS
    with pytest.raises(ValueError, match="hh_rlhf"):
        PromptSpec(hh_rlhf=["red-team"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside this checkout")
def test_a_study_of_one_online_subset_loads_its_prompts(tmp_path):
    from merging.study.prompts import load_prompts

    shutil.copytree(SHARED / "helpful-online", tmp_path / "helpful-online")
    prompts = load_prompts(PromptSpec(hh_rlhf=["helpful-online"], n=5), str(tmp_path))
    assert len(prompts) == 5
    assert all(p.last_user for p in prompts)
