"""Two processes driving one run of one SQLite study at once (two ``study run`` on one study):
each trial is evaluated exactly once and the budget is met exactly, every time.

The processes start together behind a barrier and evaluate a closed form with random short
pauses, so that their enqueues, claims and asks interleave differently on every repetition.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter

import numpy as np
import pytest

from pareto.run_spec import RunSpec
from pareto.run_store import RunStore
from pareto.spaces import Simplex, describe_space
from pareto.storage import open_storage, sqlite_url
from pareto.trial_records import Outcome

BUDGET = 12


def spec(driver: str) -> RunSpec:
    return RunSpec(
        study="race", label=driver, family="interpolation", experts=("a", "b", "c"),
        driver=driver, driver_settings={"population": 4}, budget=BUDGET, seed=5,
        space=describe_space(Simplex(3)), objectives=("f", "g"), senses=("max", "max"),
    )  # fmt: skip


def evaluate(run_spec: RunSpec, x: np.ndarray) -> Outcome:
    time.sleep(random.uniform(0.0, 0.03))
    w = np.asarray(x, dtype=float)
    values = {"f": float(w[0] - w[1] ** 2), "g": float(w[1] + 0.3 * w[2])}
    return Outcome(values=values, stderrs=dict.fromkeys(values, 0.01))


def drive_many(urls: list[str], driver: str, barrier, seed: int) -> None:
    """One ``study run`` process per repetition (kept alive across them, which saves the
    start-up): open (or create) the run, wait for the other process, drive it."""
    from pareto.search import drive, sampler_for

    random.seed(seed)
    for url in urls:
        storage = open_storage(url, create=True, heartbeat_interval=1, grace_period=30)
        run_spec = spec(driver)
        barrier.wait()
        run = RunStore.create_or_open(storage, run_spec, sampler_for(run_spec, run_spec.seed))
        drive(run, evaluate, poll=0.05)


@pytest.mark.parametrize(("driver", "repeats"), [("nsga2", 20), ("tpe", 10)])
def test_two_processes_on_one_run_meet_the_budget_exactly_with_no_duplicate(
    driver, repeats, tmp_path
):
    context = multiprocessing.get_context("spawn")
    urls = [sqlite_url(tmp_path / f"{driver}-{repeat}.db") for repeat in range(repeats)]
    barrier = context.Barrier(2, timeout=120)
    processes = [
        context.Process(target=drive_many, args=(urls, driver, barrier, i)) for i in range(2)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(600)
    assert [p.exitcode for p in processes] == [0, 0]
    for repeat, url in enumerate(urls):
        run = RunStore.open(open_storage(url), f"race/{driver}")
        counts = run.counts()
        assert counts.complete == BUDGET, f"repeat {repeat}: {counts}"
        assert counts.running == counts.waiting == 0
        complete = run.results()
        points = Counter(tuple(np.round(x, 12)) for x in complete.x)
        assert max(points.values()) == 1, f"repeat {repeat}: a point was evaluated twice"
        if driver == "nsga2":
            slots = Counter((a["generation"], a["slot"]) for a in complete.attrs)
            assert max(slots.values()) == 1, f"repeat {repeat}: {slots}"
