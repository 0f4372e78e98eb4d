"""The paretomerge studies a storage holds, and the runs of each.

One Optuna storage may hold many paretomerge studies, each as one Optuna study per run; these
functions list them from the Optuna studies' attributes alone (no trial is read) and open
every run of one study.
"""

from __future__ import annotations

from collections.abc import Sequence

from pareto.run_spec import ATTRIBUTE
from pareto.run_store import RunStore


def run_names(storage, study: str) -> list[str]:
    """The Optuna study names of every run of paretomerge study ``study``, in creation order."""
    studies = sorted(storage.get_all_studies())  # FrozenStudy orders by creation
    return [s.study_name for s in studies if s.user_attrs.get(ATTRIBUTE, {}).get("study") == study]


def study_names(storage) -> list[str]:
    """Every paretomerge study in the storage, in creation order.

    Reads the studies' attributes only (``get_all_study_summaries`` would read every trial)."""
    seen: dict[str, None] = {}
    for s in sorted(storage.get_all_studies()):  # FrozenStudy orders by creation
        name = s.user_attrs.get(ATTRIBUTE, {}).get("study")
        if name:
            seen[name] = None
    return list(seen)


def open_runs(storage, study: str, samplers: Sequence | None = None) -> list[RunStore]:
    """Every run of ``study``; raises ``ValueError`` naming the studies present if none."""
    names = run_names(storage, study)
    if not names:
        known = study_names(storage)
        raise ValueError(
            f"no study {study!r} in this storage; studies here: {', '.join(known) or 'none'}"
        )
    return [RunStore.open(storage, n) for n in names]
