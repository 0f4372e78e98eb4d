"""Studies for the dashboard's tests: the tiny study on the tiny zoo, and a large synthetic one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TINY_RUNS = ["interpolation", "layerwise", "rewards_in_context", "decoding", "ama"]
"""The runs of ``studies/tiny.yaml``, in order; each evaluates its budget of 12."""
TINY_TRIALS = 12 * len(TINY_RUNS)

LARGE_TRIALS = 6000


def write_large_study(path: Path, n: int = LARGE_TRIALS, seed: int = 0) -> str:
    """A study of ``n`` completed trials with closed-form objectives on the 3-expert simplex
    (no model): for charts and tables past Altair's 5,000-row limit."""

    from pareto.run_spec import RunSpec
    from pareto.run_store import RunStore
    from pareto.spaces import Simplex, describe_space
    from pareto.storage import open_storage, sqlite_url

    url = sqlite_url(path)
    spec = RunSpec(
        study="large", label="interpolation", family="interpolation",
        experts=("helpfulness", "harmlessness", "concise"), driver="random", budget=n,
        space=describe_space(Simplex(3)), objectives=("helpfulness", "harmlessness", "verbosity"),
        senses=("max", "max", "min"),
    )  # fmt: skip
    run = RunStore.create_or_open(open_storage(url, create=True), spec)
    rng = np.random.default_rng(seed)
    u = rng.random((n, 2))
    xs = np.asarray(Simplex(3).from_unit_cube(u))
    values = np.column_stack([xs[:, 0] - 0.3 * xs[:, 1], xs[:, 1] ** 0.5, 80 - 50 * xs[:, 2]])
    attrs = [
        {
            "x": xs[t].tolist(),
            "stderr": [0.02, 0.02, 1.0],
            "family": "interpolation",
            "driver": "random",
            "recipe": {
                "family": "interpolation",
                "experts": list(spec.experts),
                "weights": xs[t].tolist(),
                "block_weights": None,
                "parameters": {},
                "seed": 0,
            },
            "samples": [{"prompt": "p", "response": f"r{t}", "scores": {}}],
        }
        for t in range(n)
    ]
    _bulk_insert(run, u, values, attrs)
    return url


def _bulk_insert(run, u: np.ndarray, values: np.ndarray, attrs: list[dict]) -> None:
    """Completed trials written in one transaction through Optuna's own table models.

    ``study.add_trials`` costs ~11 ms of CPU per trial here (a minute for 6,000); one ORM
    session does the same rows in about a second. Test-only: it relies on Optuna's RDB
    models, which the storage's own ``load_study`` then reads back.
    """
    from datetime import datetime, timedelta

    from optuna.distributions import FloatDistribution, distribution_to_json
    from optuna.storages._rdb import models
    from optuna.trial import TrialState
    from sqlalchemy.orm import Session

    dist = distribution_to_json(FloatDistribution(0.0, 1.0))
    start = datetime(2026, 1, 1)
    with Session(run.storage.engine) as session:
        for t in range(len(u)):
            trial = models.TrialModel(
                number=t, study_id=run.study_id, state=TrialState.COMPLETE,
                datetime_start=start + timedelta(seconds=t),
                datetime_complete=start + timedelta(seconds=t + 1),
            )  # fmt: skip
            trial.params = [
                models.TrialParamModel(
                    param_name=f"u{i}", param_value=float(v), distribution_json=dist
                )
                for i, v in enumerate(u[t])
            ]
            trial.values = [
                models.TrialValueModel(
                    objective=j,
                    value=float(v),
                    value_type=models.TrialValueModel.TrialValueType.FINITE,
                )
                for j, v in enumerate(values[t])
            ]
            trial.user_attributes = [
                models.TrialUserAttributeModel(key=k, value_json=json.dumps(v))
                for k, v in attrs[t].items()
            ]
            session.add(trial)
        session.commit()


@pytest.fixture(scope="session")
def large_study(tmp_path_factory) -> str:
    return write_large_study(tmp_path_factory.mktemp("large") / "large.db")


def storages_env(*urls: str) -> dict[str, str]:
    return {"PARETOMERGE_DASHBOARD_STORAGES": json.dumps(list(urls))}
