"""What an export checks before it writes: the trial's recipe and checkpoints are those the
study evaluated."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from merging.recipe import MergeRecipe
from merging.study.trials import TrialRecord

Log = Callable[[str], None]


def check_trial(record: TrialRecord, session, log: Log = print):
    """``(family, recipe, experts)`` of the trial, after checking that the study's checkpoints
    and the trial's recipe are what the study evaluated; ``ValueError`` otherwise."""
    family = session.families[record.run.label]
    recipe = record.recipe()
    try:
        again = family.recipe(np.asarray(record.x))
    except ValueError as err:
        raise ValueError(
            f"trial {record.key}: its x does not fit the study's models as they are now ({err}):"
            " the checkpoints changed since the study ran; not exporting"
        ) from None
    _check_recipe(recipe, again, record.key)
    experts = expert_set(session, family)
    _check_checkpoints(record, experts, log)
    return family, recipe, experts


def _check_recipe(stored: MergeRecipe, again: MergeRecipe, key: str) -> None:
    """The stored recipe must be what the family makes of the stored ``x`` today."""
    a, b = stored.model_dump(), again.model_dump()
    same = a.keys() == b.keys() and all(
        np.allclose(np.asarray(a[k], float), np.asarray(b[k], float), atol=1e-9)
        if k in ("weights", "block_weights") and a[k] is not None and b[k] is not None
        else a[k] == b[k] or (k == "parameters" and _close_dicts(a[k], b[k]))
        for k in a
    )
    if not same:
        raise ValueError(
            f"trial {key}: its recorded recipe is not what its family makes of its x now "
            "(the study's models or settings changed): not exporting"
        )


def _check_checkpoints(record: TrialRecord, experts, log: Log) -> None:
    """The checkpoints must be, byte for byte, those the study evaluated (when it recorded
    them): a rebuilt zoo or a changed expert would export weights nobody evaluated."""
    from merging.paths import changed_checkpoints

    stored = record.checkpoints
    if not stored:
        log(
            f"note: study {record.study!r} recorded no checkpoint hashes (it ran before they "
            "were recorded): this export cannot check that its checkpoints are those evaluated"
        )
        return
    now = {"base": experts.base.path, **{n: c.path for n, c in experts.experts.items()}}
    changed = changed_checkpoints(stored, now)
    if changed:
        raise ValueError(
            f"trial {record.key}: checkpoint(s) {', '.join(changed)} differ from those study "
            f"{record.study!r} evaluated (content hashes): a rebuilt zoo or changed expert would "
            "export weights nobody evaluated; not exporting"
        )


def _close_dicts(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-9) for k in a)


def expert_set(session, family):
    """The family's checkpoints, inspected from their headers (no weights loaded)."""
    from merging.expert_set import ExpertSet

    return ExpertSet.from_paths(session.base, family.checkpoint_paths(session.experts, session.ric))


def weight_bytes(experts) -> int:
    sizes = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
    return sum(
        int(np.prod(spec.shape)) * sizes.get(spec.dtype, 4)
        for spec in experts.base.tensors.values()
    )
