"""The learner a study gives to a driver that learns its points (``ama``): the run's
``layerwise`` ratios learned by gradient descent for a preference vector, cached on disk.

Its stand-ins (:mod:`merging.stand_ins`) are loaded, and the :class:`~merging.ama.RatioLearner`
built, on the first preference vector; every learned point is cached under
``CACHE/ama/HASH.json`` by everything that determines it (the checkpoints, the blocks, the
stand-ins, the preference, the settings), so that a resumed run, which replays its
generations through a fresh driver, does not learn them again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from merging.paths import cache_root, fingerprint

MAX_ROWS = 256
"""Training rows per stand-in: enough that ``steps * pairs_per_step`` seldom repeats one."""


def check_learning(session, family_spec, placement: str) -> None:
    """Refuse, in one line and before anything is stored, a learning run that cannot learn:
    a family without blocks, an objective without a stand-in, experts not resident."""
    from merging.stand_ins import source_for

    label = family_spec.run_label
    if getattr(session.families[label], "blocks", None) is None:
        raise ValueError(
            f"{label}: driver ama learns layer-wise ratios; family {family_spec.family!r} has "
            "none (use it with the layerwise family)"
        )
    pairs = family_spec.search(session.spec.search).settings.get("pairs") or {}
    for o in session.objectives:
        source_for(o.name, pairs, o.head)
    if placement not in ("auto", "resident"):
        raise ValueError(
            f"{label}: driver ama needs its experts resident; got --placement {placement}"
        )


def study_learner(session, run) -> Callable:
    """``learn(preference, **settings) -> (ratios, note)`` for ``run`` of ``session``."""
    from merging.stand_ins import source_for

    family = session.families[run.label]
    blocks = family.blocks  # a layerwise family: the session's check_learning made sure
    built: dict = {}

    def learn(preference, *, pairs: dict, steps: int, pairs_per_step: int, seed: int, **rest):
        heads = {o.name: o.head for o in session.objectives}
        sources = [source_for(o, pairs, heads.get(o)) for o in run.objectives]
        settings = {"steps": steps, "pairs_per_step": pairs_per_step, "seed": seed, **rest}
        key = _key(session, blocks, run.objectives, sources, preference, settings)
        path = cache_root() / "ama" / f"{key}.json"
        if path.is_file():
            cached = json.loads(path.read_text())
            return np.asarray(cached["ratios"]), cached["note"]
        if "learner" not in built:
            built["learner"] = _learner(
                session, family, blocks, run, sources, steps, pairs_per_step, seed
            )
        start = time.perf_counter()
        ratios, curve = built["learner"].learn(
            preference, steps=steps, pairs_per_step=pairs_per_step, seed=seed, **rest
        )
        note = {
            "learning_curve": curve,
            "learn_s": round(time.perf_counter() - start, 2),
            "stand_ins": dict(zip(run.objectives, sources, strict=True)),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ratios": ratios.tolist(), "note": note}))
        tmp.replace(path)
        session.log(
            f"{run.label}: learned ratios for preference {np.round(preference, 3).tolist()} "
            f"in {note['learn_s']} s (loss {curve[0]['loss']:.4g} -> {curve[-1]['loss']:.4g})"
        )
        return ratios, note

    return learn


def _learner(session, family, blocks, run, sources, steps, pairs_per_step, seed):
    from merging.ama import RatioLearner
    from merging.stand_ins import load_stand_in

    n = min(MAX_ROWS, steps * pairs_per_step)
    stand_ins = [
        load_stand_in(o, s, session.data, "train", n, seed)
        for o, s in zip(run.objectives, sources, strict=True)
    ]
    return RatioLearner(session.merger(family), blocks, session.tokenizer(), stand_ins)


def _key(session, blocks, objectives, sources, preference, settings) -> str:
    what = {
        "base": fingerprint(Path(session.base)),
        "experts": {n: fingerprint(Path(p)) for n, p in session.experts.items()},
        "blocks": blocks,
        "objectives": list(objectives),
        "sources": sources,
        "preference": [round(float(p), 9) for p in preference],
        "settings": settings,
        "device": str(session.device),
        "dtype": session.dtype,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
