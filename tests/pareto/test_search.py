"""Search drivers and the loop on closed-form objectives, recorded in a real Optuna storage."""

from __future__ import annotations

import re

import numpy as np
import optuna
import pytest

from pareto.run_spec import RunSpec
from pareto.run_store import RunStore
from pareto.search import OPTUNA_SAMPLERS, drive, driver_names, make_driver, sampler_for
from pareto.search.amortized import QuadraticModel
from pareto.search.grid import divisions_within
from pareto.spaces import BlockSimplex, Box, Simplex, describe_space, space_from_description
from pareto.storage import open_storage, sqlite_url
from pareto.trial_records import Outcome

OBJECTIVES, SENSES = ("a", "b", "c"), ("max", "max", "min")


def closed_form(spec: RunSpec, x: np.ndarray) -> Outcome:
    """Three conflicting objectives of the mean weight vector (or of a box point)."""
    w = np.asarray(x, dtype=float).reshape(-1, 3).mean(0)
    values = {"a": w[0] - 0.5 * w[1] ** 2, "b": w[1] + 0.1 * w[0], "c": 10 * w[2] + w[0] ** 2}
    return Outcome(
        values={k: float(v) for k, v in values.items()},
        stderrs=dict.fromkeys(values, 0.01),
        attrs={"eval_hash": "closed-form"},
    )


def make_run(
    storage,
    driver: str,
    space,
    budget: int = 12,
    label: str | None = None,
    evaluation: dict | None = None,
    **settings,
):
    spec = RunSpec(
        study="t",
        label=label or f"{driver}",
        family="interpolation",
        experts=("h", "s", "c"),
        driver=driver,
        driver_settings=settings,
        budget=budget,
        seed=3,
        space=describe_space(space),
        objectives=OBJECTIVES,
        senses=SENSES,
        evaluation=evaluation or {},
    )
    return RunStore.create_or_open(storage, spec, sampler_for(spec, spec.seed))


@pytest.fixture
def storage(tmp_path):
    return open_storage(
        sqlite_url(tmp_path / "s.db"), create=True, heartbeat_interval=1, grace_period=3
    )


SPACES = {
    "simplex": Simplex(3),
    "blocks": BlockSimplex(2, 3),
    "box": Box([-1.0, 0.0, 2.0], [1.0, 0.5, 4.0]),
}


def learner(spec: RunSpec):
    """A closed-form stand-in for learning on models (drivers that learn): the point of the
    space whose unit-cube coordinates repeat the preference vector."""
    space = space_from_description(spec.space)

    def learn(preference, **settings):
        assert {"steps", "learning_rate", "penalty", "beta", "pairs", "seed"} <= set(settings)
        return space.from_unit_cube(np.resize(preference, space.dim)), {"curve": [1.0, 0.5]}

    return learn


@pytest.mark.parametrize("space_name", sorted(SPACES))
@pytest.mark.parametrize("driver", driver_names())
def test_every_driver_records_its_budget_on_the_space(storage, driver, space_name):
    space = SPACES[space_name]
    if driver == "gp":
        pytest.importorskip("torch")
    run = make_run(storage, driver, space, budget=10)
    drive(run, closed_form, learner=learner)
    counts = run.counts()
    expected = min(10, len(space.grid(divisions_within(space, 10)))) if driver == "grid" else 10
    assert counts.complete == expected
    assert counts.running == counts.waiting == counts.failed == 0
    results = run.results()
    assert results.values.shape == (expected, 3)
    assert np.isfinite(results.values).all()
    for x, attrs, values in zip(results.x, results.attrs, results.values, strict=True):
        space.validate(x)  # on the simplex (each block's), or inside the box
        assert np.allclose(values, [closed_form(run.spec, x).values[k] for k in OBJECTIVES])
        assert attrs["family"] == "interpolation"
        assert attrs["driver"] == driver
        assert len(attrs["stderr"]) == 3
        if driver not in OPTUNA_SAMPLERS:
            assert {"generation", "slot"} <= set(attrs)
    # Optuna's own API opens the run
    study = optuna.load_study(study_name="t/" + driver, storage=storage)
    assert len(study.trials) == expected
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == list(OBJECTIVES)


def test_ama_asks_one_learned_point_per_preference_vector_spread_over_the_simplex(storage):
    run = make_run(storage, "ama", BlockSimplex(2, 3), budget=7, per_generation=3, steps=2)
    drive(run, closed_form, learner=learner)
    attrs = run.results().attrs
    preferences = np.array([a["preference"] for a in attrs])
    assert preferences.shape == (7, 3)
    np.testing.assert_allclose(preferences.sum(axis=1), 1.0)
    assert {tuple(p) for p in preferences[:3]} == {(1, 0, 0), (0, 1, 0), (0, 0, 1)}  # corners
    assert len({tuple(np.round(p, 6)) for p in preferences}) == 7
    assert [a["generation"] for a in attrs] == [0, 0, 0, 1, 1, 1, 2]
    assert all(a["curve"] == [1.0, 0.5] for a in attrs)


def test_ama_without_a_learner_or_with_bad_settings_says_so_in_one_line(storage):
    with pytest.raises(ValueError, match="runs inside 'paretomerge study run'"):
        drive(make_run(storage, "ama", Simplex(3), budget=3), closed_form)
    for bad, message in (
        ({"steps": 0}, "steps must be a positive whole number"),
        ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
        ({"penalty": float("nan")}, "penalty must be a number of at least 0"),
        ({"pairs": ["a"]}, "pairs must map objective names"),
    ):
        with pytest.raises(ValueError, match=message):
            make_driver("ama", Simplex(3), 3, 5, **bad)


def test_grid_evaluates_exactly_the_das_dennis_points(storage):
    run = make_run(storage, "grid", Simplex(3), budget=15)  # C(4+2, 2) = 15 points at 4 divisions
    drive(run, closed_form)
    got = np.array(run.results().x)
    expected = Simplex(3).grid(4)
    assert got.shape == expected.shape
    assert np.allclose(np.sort(got, axis=0), np.sort(expected, axis=0), atol=1e-9)
    assert divisions_within(Simplex(3), 14) == 3


def test_a_batched_run_resumed_mid_way_proposes_what_an_uninterrupted_run_does(tmp_path):
    whole = open_storage(sqlite_url(tmp_path / "whole.db"), create=True)
    drive(make_run(whole, "nsga2", Simplex(3), budget=16, population=4), closed_form)

    cut = open_storage(sqlite_url(tmp_path / "cut.db"), create=True)
    calls = {"n": 0}

    def dies_after_six(spec, x):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # as if the process were stopped in its 7th trial
        return closed_form(spec, x)

    with pytest.raises(KeyboardInterrupt):
        drive(make_run(cut, "nsga2", Simplex(3), budget=16, population=4), dies_after_six)
    resumed = make_run(cut, "nsga2", Simplex(3), budget=16, population=4)
    assert resumed.counts().complete == 6
    drive(resumed, closed_form)
    a, b = make_run(whole, "nsga2", Simplex(3), 16, population=4).results(), resumed.results()
    assert b.values.shape == (16, 3)

    def by_slot(r):
        return {(t["generation"], t["slot"]): x for t, x in zip(r.attrs, r.x, strict=True)}

    assert sorted(by_slot(a)) == sorted(by_slot(b)) == [(g, s) for g in range(4) for s in range(4)]
    for k, x in by_slot(a).items():
        assert np.allclose(x, by_slot(b)[k])


def test_a_trial_whose_process_is_gone_is_failed_and_retried(storage):
    run = make_run(storage, "tpe", Simplex(3), budget=4)
    trial = run.ask()
    u = run.unit_point(trial)
    trial.set_user_attr("worker", "elsewhere:1")  # another machine: only its heartbeat counts
    run.storage.record_heartbeat(run.trial_id(trial))
    assert run.reap() == 0  # heartbeat fresh
    import time

    time.sleep(4.5)  # SQLite keeps heartbeats to the second
    assert run.reap() == 1
    waiting = run.claim()
    assert waiting is not None
    assert np.allclose(run.unit_point(waiting), u)
    assert run.study.trials[waiting.number].system_attrs["failed_trial"] == trial.number


def test_a_dead_local_process_is_noticed_at_once(storage):
    run = make_run(storage, "nsga2", Simplex(3), budget=4)
    run.enqueue(np.array([0.5, 0.5]), {"generation": 0, "slot": 0})
    trial = run.claim()
    trial.set_user_attr("worker", f"{__import__('socket').gethostname()}:999999999")
    assert run.reap() == 1
    counts = run.counts()
    assert (counts.failed, counts.waiting, counts.running) == (1, 1, 0)


def test_reopening_with_other_settings_names_the_field(storage):
    make_run(storage, "nsga2", Simplex(3), budget=4)
    with pytest.raises(ValueError, match="driver = 'nsga2', not 'tpe'"):
        make_run(storage, "tpe", Simplex(3), budget=4, label="nsga2")
    # a larger budget extends the run
    assert make_run(storage, "nsga2", Simplex(3), budget=8).spec.budget == 8


def test_reopening_on_other_prompts_names_them_and_old_runs_are_not_checked(storage):
    """A run resumed on other prompts or generation settings would mix trials that cannot be
    compared: refused, naming the entry. A run stored before the evaluation was recorded has
    none, and opens with any (as it did)."""
    on_12 = {"prompts": "12 prompts, sha256 aaaa", "generation": {"max_new_tokens": 80}}
    make_run(storage, "nsga2", Simplex(3), budget=4, evaluation=on_12)
    on_32 = on_12 | {"prompts": "32 prompts, sha256 bbbb"}
    with pytest.raises(
        ValueError, match=re.escape("evaluation.prompts = '12 prompts, sha256 aaaa', not '32")
    ):
        make_run(storage, "nsga2", Simplex(3), budget=4, evaluation=on_32)
    generation = re.escape("evaluation.generation = {'max_new_tokens': 80}, not {}")
    with pytest.raises(ValueError, match=generation):
        make_run(storage, "nsga2", Simplex(3), evaluation=on_12 | {"generation": {}})
    assert make_run(storage, "nsga2", Simplex(3), budget=6, evaluation=on_12).spec.budget == 6

    make_run(storage, "tpe", Simplex(3), budget=4)  # as an older version stored it
    reopened = make_run(storage, "tpe", Simplex(3), budget=5, evaluation=on_32)
    assert reopened.spec.evaluation == {}  # still unknown: not vouched for
    assert make_run(storage, "tpe", Simplex(3), budget=5, evaluation=on_12).spec.budget == 5


def test_map_records_its_predictions_and_they_fit_a_quadratic(storage):
    run = make_run(storage, "map", Simplex(3), budget=18, initial=10, batch=4)
    drive(run, closed_form)
    attrs = run.results().attrs
    predicted = [a for a in attrs if "predicted" in a]
    assert len(predicted) == 8  # two surrogate batches after 10 random points
    # the objectives are quadratic in x: the surrogate predicts them almost exactly
    signs = np.array([-1, -1, 1])
    r = run.results()
    for a, v in zip(r.attrs, r.values, strict=True):
        if "predicted" in a:
            assert np.allclose(np.array(a["predicted"]) * signs, v, atol=0.05)


def test_quadratic_model_is_exact_on_a_quadratic():
    rng = np.random.default_rng(0)
    x = rng.random((30, 2))
    f = np.column_stack([1 + x[:, 0] - 2 * x[:, 1] ** 2 + x[:, 0] * x[:, 1], x[:, 1]])
    model = QuadraticModel(x, f, ridge=1e-9)
    test = rng.random((10, 2))
    want = np.column_stack(
        [1 + test[:, 0] - 2 * test[:, 1] ** 2 + test[:, 0] * test[:, 1], test[:, 1]]
    )
    assert np.allclose(model.predict(test), want, atol=1e-5)


def test_driver_errors_name_what_is_allowed():
    with pytest.raises(ValueError, match=r"known: .*nsga2"):
        make_driver("nsga4", Simplex(3), 3, 10)
    with pytest.raises(ValueError, match="its settings are: population"):
        make_driver("nsga2", Simplex(3), 3, 10, pop=4)
    with pytest.raises(ValueError, match="2 or more objectives"):
        make_driver("nsga2", Simplex(3), 1, 10)


def test_raising_the_budget_extends_the_same_search(tmp_path):
    storage = open_storage(sqlite_url(tmp_path / "grow.db"), create=True)
    run = make_run(storage, "map", Simplex(3), budget=8)
    drive(run, closed_form)
    first = run.results()
    grown = make_run(storage, "map", Simplex(3), budget=14)
    assert grown.spec.design_budget == 8  # defaults still come from the first budget
    drive(grown, closed_form)
    after = grown.results()
    assert len(after.values) == 14
    assert np.array_equal(after.values[:8], first.values)
    # the same points as a run that had budget 14 from the start but defaults of budget 8
    whole = open_storage(sqlite_url(tmp_path / "whole.db"), create=True)
    reference = make_run(whole, "map", Simplex(3), budget=8)
    reference = make_run(whole, "map", Simplex(3), budget=14)
    drive(reference, closed_form)
    assert np.allclose(np.array(reference.results().x), np.array(after.x))


def test_an_evaluation_error_fails_the_trial_and_a_rerun_retries_its_slot(storage):
    run = make_run(storage, "nsga2", Simplex(3), budget=8, population=4)
    calls = {"n": 0}

    def breaks_once(spec, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("out of memory, say")
        return closed_form(spec, x)

    with pytest.raises(ValueError, match="out of memory"):
        drive(run, breaks_once)
    failed = [t for t in run.trials() if t.state.name == "FAIL"]
    assert len(failed) == 1
    assert failed[0].user_attrs["error"] == "ValueError: out of memory, say"
    drive(run, closed_form)
    done = run.results()
    assert len(done.values) == 8
    slots = [(a["generation"], a["slot"]) for a in done.attrs]
    assert sorted(slots) == [(g, s) for g in range(2) for s in range(4)]
    retry = next(a for a in done.attrs if (a["generation"], a["slot"]) == (0, 2))
    assert "error" not in retry


def test_a_bad_storage_url_is_one_clear_error():
    with pytest.raises(ValueError, match="storage 'nonsense': cannot open it"):
        open_storage("nonsense")
    with pytest.raises(ValueError, match=r"postgresql\+psycopg://me:\*\*\*@127.0.0.1:1/x"):
        open_storage("postgresql+psycopg://me:secret@127.0.0.1:1/x")


def test_a_trial_reaped_while_its_process_evaluates_it_is_dropped_not_fatal(storage):
    """A process paused past the grace period (SIGSTOP, swap, a starved CPU) finds on waking
    that another process failed its trial as stale and queued a retry: it drops its result
    and goes on, rather than dying on the finished trial."""
    import socket

    from optuna.trial import TrialState

    from pareto.search.loop import evaluate_trial

    run = make_run(storage, "tpe", Simplex(3), budget=4)

    def reaped_while_evaluating(trial, then=closed_form):
        def evaluate(spec, x):
            trial.set_user_attr("worker", f"{socket.gethostname()}:999999999")
            assert run.reap() == 1  # as another process would, seeing no live owner
            return then(spec, x)

        return evaluate

    trial, logs = run.ask(), []
    evaluate_trial(run, trial, reaped_while_evaluating(trial), log=logs.append)
    assert "result dropped, the retry counts" in logs[0], logs
    stored = run.study.trials[trial.number]
    assert stored.state == TrialState.FAIL
    assert "x" not in stored.user_attrs  # nothing of the dropped result
    counts = run.counts()
    assert (counts.complete, counts.failed, counts.waiting) == (0, 1, 1)
    retry = run.claim()  # the retry is evaluated and recorded as usual
    evaluate_trial(run, retry, closed_form, log=logs.append)
    assert run.counts().complete == 1
    failing = run.ask()  # an evaluation that fails after its trial was reaped still raises
    with pytest.raises(ZeroDivisionError):
        evaluate_trial(run, failing, reaped_while_evaluating(failing, lambda *_: 1 / 0))
    assert run.study.trials[failing.number].state == TrialState.FAIL


def test_samples_and_prompt_scores_are_kept_off_the_user_attributes_and_read_back(storage):
    """optuna-dashboard shows every user attribute on one unwrapped line: the long ones are
    system attributes, and the run's results read them (and old user-attribute ones) alike."""
    run = make_run(storage, "random", Simplex(3), budget=2)
    scores = {"a": [0.1, 0.2], "b": [1.0, 2.0], "c": [3.0, 4.0]}
    samples = [{"prompt": "p" * 300, "response": "r" * 900, "scores": {"a": 0.1}}]

    def evaluate(spec, x):
        out = closed_form(spec, x)
        return Outcome(out.values, out.stderrs, dict(out.attrs, samples=samples), scores=scores)

    drive(run, evaluate)
    done = [t for t in run.trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    for t in done:
        assert {"samples", "prompt_scores"}.isdisjoint(t.user_attrs)
        assert max(len(str(v)) for v in t.user_attrs.values()) < 120
        assert t.system_attrs["paretomerge:samples"] == samples
    results = run.results()
    assert [a["samples"] for a in results.attrs] == [samples, samples]
    np.testing.assert_allclose(
        results.prompt_scores[0], np.array([[0.1, 1.0, 3.0], [0.2, 2.0, 4.0]])
    )

    old = optuna.load_study(study_name=run.study.study_name, storage=storage)
    first = done[0]
    scores_attr = first.system_attrs["paretomerge:prompt_scores"]
    old_style = {**first.user_attrs, "samples": [], "prompt_scores": scores_attr}
    old.add_trial(
        optuna.trial.create_trial(
            params=first.params, distributions=first.distributions, values=first.values,
            user_attrs=old_style,
        )
    )  # fmt: skip
    again = run.results()
    assert again.attrs[-1]["samples"] == []
    np.testing.assert_allclose(again.prompt_scores[-1], results.prompt_scores[0])
