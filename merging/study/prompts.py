"""A study's evaluation prompts: HH-RLHF subsets in equal shares, or a prompts file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from merging.hh_rlhf import DATA_ENV

if TYPE_CHECKING:
    from merging.study.spec import PromptSpec, StudySpec


def data_folder(spec: StudySpec, given: str | None) -> str | None:
    """The HH-RLHF folder: ``--data``, the study's ``prompts.data``, ``$PARETOMERGE_DATA``."""
    return given or spec.resolve(spec.prompts.data) or os.environ.get(DATA_ENV) or None


def load_prompts(spec: PromptSpec, data: str | None, resolve=lambda p: p):
    """The study's evaluation prompts, in a fixed order: HH-RLHF subsets in equal shares (or a
    prompts file), one split, cut to the last user turn if asked, long and repeated ones left
    out."""
    from merging.data import Prompt, read_pairs, read_prompts, select_split
    from merging.hh_rlhf import locate_hh_rlhf, subset_file

    def usable(prompts) -> list:
        out = []
        for p in prompts:
            if spec.last_turn:
                p = Prompt((p.messages[-1],))
            if len(p.last_user) <= spec.max_chars and p not in out:
                out.append(p)
        return out

    if spec.path is not None:
        prompts = usable(select_split(read_prompts(resolve(spec.path)), spec.split))
    else:
        root = locate_hh_rlhf(data, spec.hh_rlhf)
        per_subset = -(-spec.n // len(spec.hh_rlhf))
        prompts = []
        for subset in spec.hh_rlhf:
            pairs = select_split(read_pairs(root / subset_file(subset)), spec.split)
            prompts += usable(pair.prompt for pair in pairs)[:per_subset]
    prompts = prompts[: spec.n]
    if not prompts:
        raise ValueError("prompts: none left after the split and length filters")
    return prompts
