"""Studies on the tiny zoo: every driver, the YAML file, resume after SIGKILL, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from merging.cli import main
from merging.study import load_study_spec
from merging.study.runner import open_study_runs, run_study
from merging.study.session import StudySession
from merging.study.spec import parse_study_spec
from pareto.runs import open_runs
from pareto.search import driver_names
from pareto.spaces import BlockSimplex, Box, Simplex
from pareto.storage import open_storage, sqlite_url

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / "studies" / "tiny.yaml"
SMALL = {
    "zoo": "tiny",
    "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "n": 4},
    "generation": {"max_new_tokens": 6},
}


def paretomerge(*args: str, **kwargs) -> subprocess.Popen:
    """The installed console script's code, run as a separate process."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from merging.cli import main; sys.exit(main())", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_every_driver_on_the_tiny_zoo(tiny_zoo_cache, tmp_path):
    """One run per driver (interpolation), plus layerwise and RiC: the budget of trials, all
    with values and standard errors, every x on its space."""
    drivers = [d for d in driver_names() if d != "ama"]  # ama learns layerwise ratios: below
    families = [
        {"family": "interpolation", "label": d, "driver": d, "driver_settings": {}} for d in drivers
    ]
    families += [
        {"family": "layerwise", "settings": {"blocks": 2}, "driver": "smsemoa"},
        {"family": "rewards_in_context", "driver": "tpe"},
        {
            "family": "layerwise",
            "label": "ama",
            "settings": {"blocks": 2},
            "driver": "ama",
            "driver_settings": {"steps": 2, "pairs_per_step": 2},
        },
    ]
    spec = parse_study_spec(
        {"name": "drivers", **SMALL, "families": families, "search": {"budget": 5, "seed": 1}}
    )
    url = sqlite_url(tmp_path / "study.db")
    runs = run_study(spec, storage_url=url, log=lambda _: None)
    assert len(runs) == len(drivers) + 3
    for run in runs:
        results = run.results()
        expected = 3 if run.spec.driver == "grid" else 5  # Das-Dennis of 3 experts: 3 <= 5
        assert len(results.values) == expected, run.spec.label
        assert np.isfinite(results.values).all()
        assert np.isfinite(results.stderrs).all()
        space = {"interpolation": Simplex(3), "layerwise": BlockSimplex(2, 3)}.get(run.spec.family)
        for x, attrs in zip(results.x, results.attrs, strict=True):
            if space is not None:
                space.validate(x)
            else:
                assert isinstance(run.space, Box)
                run.space.validate(x)
            assert {"merge_s", "generate_s", "score_s"} <= set(attrs["timings"])
            assert len(attrs["samples"]) >= 1
            assert attrs["eval_hash"]
            assert attrs["recipe"]["family"] == run.spec.family
            if run.spec.driver == "ama":  # learned: its preference and learning curve recorded
                assert len(attrs["preference"]) == len(run.spec.objectives)
                assert len(attrs["learning_curve"]) == 2
                assert attrs["stand_ins"]["verbosity"] == "concise"
                assert np.allclose(x, attrs["recipe"]["block_weights"])
    assert "reference" in runs[0].study.user_attrs  # the base model, for side-by-side reading
    # Optuna's own API reads the study
    names = optuna.get_all_study_names(open_storage(url))
    assert f"drivers/{drivers[0]}" in names


def test_tiny_yaml_runs_resumes_and_shows(tiny_zoo_cache, tmp_path, capsys):
    spec = load_study_spec(TINY)
    assert [f.family for f in spec.families] == [
        "interpolation",
        "layerwise",
        "rewards_in_context",
        "decoding",
        "layerwise",
    ]
    url = sqlite_url(tmp_path / "tiny.db")
    assert main(["study", "run", str(TINY), "--storage", url, "--no-show"]) == 0
    runs = open_runs(open_storage(url), "tiny")
    numbers = {r.spec.label: [t.number for t in r.trials()] for r in runs}
    assert all(r.counts().complete == spec.search.budget for r in runs)
    capsys.readouterr()
    # running again evaluates nothing
    assert main(["study", "run", str(TINY), "--storage", url, "--no-show"]) == 0
    assert "12/12 evaluations done" in capsys.readouterr().out
    runs = open_runs(open_storage(url), "tiny")
    assert {r.spec.label: [t.number for t in r.trials()] for r in runs} == numbers
    assert main(["study", "show", "tiny", "--storage", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in shown["runs"]] == [
        "interpolation",
        "layerwise",
        "rewards_in_context",
        "decoding",
        "ama",
    ]
    assert all(r["completed"] == 12 and r["hypervolume"] >= 0 for r in shown["runs"])
    for r in shown["runs"]:  # the joint bootstrap's interval: the trials kept their scores
        low, high = r["hypervolume_interval"]
        assert 0 <= low <= high
    hv = {r["label"]: r["hypervolume"] for r in shown["runs"]}
    pairs = shown["hypervolume_differences"]  # every pair of runs, paired over the prompts
    assert len(pairs) == 10
    for pair in pairs:
        a, b = pair["runs"]
        assert pair["difference"] == pytest.approx(hv[a] - hv[b])
        assert pair["interval"][0] <= pair["interval"][1]
    assert sum(r["knee"] for r in shown["front"]) == 1
    assert len(shown["reference_point"]) == 3
    assert main(["study", "show", "tiny", "--storage", url]) == 0
    text = capsys.readouterr().out
    assert "hypervolume" in text
    assert "[95% over prompts]" in text
    assert "the 95% intervals resample the prompts on that same scale" in text
    assert "hypervolume differences, paired over prompts" in text
    assert "interpolation - layerwise" in text
    assert "* " in text
    assert "higher is better" in text


def test_study_file_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "zoo": "tiny", "families": ["soup"]}))
    with pytest.raises(ValueError, match=r"families\.0\.family = 'soup': unknown family"):
        load_study_spec(bad)
    bad.write_text(
        yaml.safe_dump(
            {"name": "x", "zoo": "tiny", "families": ["layerwise"], "search": {"driver": "ga"}}
        )
    )
    with pytest.raises(ValueError, match=r"search\.driver = 'ga': unknown driver 'ga'; known"):
        load_study_spec(bad)
    bad.write_text(yaml.safe_dump({"name": "x y", "zoo": "big", "families": []}))
    with pytest.raises(ValueError, match="name = 'x y'") as err:
        load_study_spec(bad)
    assert "name = 'x y'" in str(err.value)
    assert "zoo = 'big'" in str(err.value)
    bad.write_text(yaml.safe_dump({"name": "x", "families": ["layerwise"], "budget": 3}))
    with pytest.raises(ValueError, match="budget: not a field here"):
        load_study_spec(bad)
    assert main(["study", "run", str(bad)]) == 2
    assert main(["study", "show", "nothing-here"]) == 2
    assert main(["study", "show", "x", "--storage", "nonsense"]) == 2


def _trials(url: str, study: str) -> dict:
    """Every trial of each run of ``study`` (none before the study exists)."""
    out = {}
    try:
        runs = open_runs(open_storage(url), study)
    except ValueError:
        return out
    for run in runs:
        for t in run.trials():
            out.setdefault(run.spec.label, []).append(t)
    return out


def _wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    start = time.time()
    while time.time() - start < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _look_while_stopped(processes: list, look):
    """What ``look()`` finds, confirmed with ``processes`` stopped (SIGSTOP), or None.

    The first look lets them run; the second repeats it with them frozen, so that nothing they
    do can change what was found before the caller acts on it. They stay stopped when something
    is found, and run on (SIGCONT) when not."""
    if not look():
        return None
    for p in processes:
        os.kill(p.pid, signal.SIGSTOP)
    found = look()
    if not found:
        for p in processes:
            os.kill(p.pid, signal.SIGCONT)
    return found or None


def _study_file(tmp_path: Path, name: str, families: list, budget: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                **SMALL,
                # about a second a trial: room to kill the process while one runs
                "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "n": 8},
                "generation": {"max_new_tokens": 40},
                "families": families,
                "search": {"driver": "nsga2", "budget": budget, "settings": {"population": 3}},
            }
        )
    )
    return path


def test_sigkill_mid_trial_then_resume_finishes_the_budget(tiny_zoo_cache, tmp_path):
    families = [
        {"family": "interpolation"},
        {"family": "layerwise", "settings": {"blocks": 2}, "driver": "tpe"},
    ]
    study = _study_file(tmp_path, "killed", families, budget=6)
    url = sqlite_url(tmp_path / "killed.db")
    proc = paretomerge("study", "run", str(study), "--storage", url, "--heartbeat", "1,3")

    def mid_trial():
        from optuna.trial import TrialState

        try:
            trials = [t for ts in _trials(url, "killed").values() for t in ts]
        except Exception:  # the process is committing: the database is locked
            return False
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        # a running trial whose parameters are stored: a trial is created, then given them, and
        # its retry can repeat only parameters that were stored before the kill
        return done >= 3 and any(t.state == TrialState.RUNNING and t.params for t in trials)

    # frozen before the kill: the trial cannot finish between the look and the kill, however
    # fast this machine runs one
    _wait_for(
        lambda: _look_while_stopped([proc], mid_trial),
        what="a running trial with its parameters after three complete ones",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from optuna.trial import TrialState

    before = {
        label: {
            t.number: (t.values, t.user_attrs["x"]) for t in ts if t.state == TrialState.COMPLETE
        }
        for label, ts in _trials(url, "killed").items()
    }
    killed = [
        t for ts in _trials(url, "killed").values() for t in ts if t.state == TrialState.RUNNING
    ]
    assert len(killed) == 1

    again = paretomerge("study", "run", str(study), "--storage", url, "--no-show")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    after = _trials(url, "killed")
    for label, trials in after.items():
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 6, label  # the budget, exactly
        # nothing completed before the kill was lost or changed
        kept = {t.number: (t.values, t.user_attrs["x"]) for t in complete}
        assert all(kept[n] == v for n, v in before.get(label, {}).items())
        if label == "interpolation":  # batched: each (generation, slot) completed once
            slots = [(t.user_attrs["generation"], t.user_attrs["slot"]) for t in complete]
            assert len(set(slots)) == len(slots)
    # the killed trial failed and its retry (its stored parameters) completed
    failed = [t for ts in after.values() for t in ts if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [killed[0].number]
    retried = [
        t
        for ts in after.values()
        for t in ts
        if t.system_attrs.get("failed_trial") == killed[0].number
    ]
    assert len(retried) == 1
    assert retried[0].state == TrialState.COMPLETE
    # the retry repeats every parameter stored before the kill; a kill between two suggestions
    # leaves the later ones to be drawn by the retry
    kept = {name: retried[0].params[name] for name in killed[0].params}
    assert kept == killed[0].params


@pytest.mark.slow
def test_postgres_driver_and_three_workers_one_killed(tiny_zoo_cache, tmp_path):
    pytest.importorskip("psycopg")
    from tests.postgres import find_binary, postgres_server

    if not find_binary("initdb"):
        pytest.skip("PostgreSQL is not installed")
    from optuna.trial import TrialState

    families = [
        {"family": "interpolation"},
        {"family": "layerwise", "settings": {"blocks": 2}, "driver": "tpe"},
    ]
    study = tmp_path / "shared.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "shared",
                **SMALL,
                # slow enough (about 2 s a trial) that the workers, which load their models
                # only once the study exists, get work before the driver has done it all
                "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "n": 8},
                "generation": {"max_new_tokens": 40},
                "families": families,
                "search": {"driver": "nsga2", "budget": 12, "settings": {"population": 4}},
            }
        )
    )
    with postgres_server() as url:
        beat = ("--heartbeat", "1,4")
        # The study exists before any process starts, so the workers start asking their
        # Optuna sampler (the layerwise run) at once: which process gets work does not depend
        # on how fast each one loads its models.
        session = StudySession(load_study_spec(study), log=lambda _: None)
        open_study_runs(session, open_storage(url))
        workers = [
            paretomerge("worker", "--storage", url, "--study", "shared", *beat) for _ in range(3)
        ]
        driver = None
        by_pid = {str(w.pid): w for w in workers}

        def a_worker_running():
            """A trial running in one of the workers (not the driving process)."""
            try:
                trials = [t for ts in _trials(url, "shared").values() for t in ts]
            except Exception:  # a process is committing: look again
                return None
            for t in trials:
                pid = str(t.user_attrs.get("worker", "")).rpartition(":")[2]
                if t.state == TrialState.RUNNING and pid in by_pid:
                    return t
            return None

        try:
            killed = _wait_for(
                lambda: _look_while_stopped(workers, a_worker_running),
                timeout=180,
                what="a worker's running trial",
            )
            victim = by_pid[killed.user_attrs["worker"].rpartition(":")[2]]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            survivors = [w for w in workers if w is not victim]
            for w in survivors:
                os.kill(w.pid, signal.SIGCONT)
            driver = paretomerge("study", "run", str(study), "--storage", url, *beat)
            outputs = [p.communicate(timeout=300)[0] for p in [driver, *survivors]]
        finally:
            for p in [driver, *workers]:
                if p is not None and p.poll() is None:
                    p.kill()
        assert driver.returncode == 0, outputs[0]
        failed = [
            (p.returncode, out)
            for p, out in zip(survivors, outputs[1:], strict=True)
            if p.returncode != 0
        ]
        for code, out in failed:  # in full, in the captured stdout: pytest cuts a long message
            print(f"--- a surviving worker exited with {code}; its output:\n{out}")
        assert not failed, [code for code, _ in failed]
        trials = _trials(url, "shared")
        seen_x = set()
        for label, ts in trials.items():
            complete = [t for t in ts if t.state == TrialState.COMPLETE]
            assert len(complete) >= 12, label
            if label == "interpolation":
                assert len(complete) == 12
                slots = [(t.user_attrs["generation"], t.user_attrs["slot"]) for t in complete]
                assert len(set(slots)) == 12
            else:  # Optuna sampler in every worker: at most one extra trial per process
                assert len(complete) <= 12 + 3
            for t in complete:
                seen_x.add((label, json.dumps(t.user_attrs["x"])))
            assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        # every completed trial recorded once: no x evaluated twice within a run
        assert len(seen_x) == sum(
            sum(t.state == TrialState.COMPLETE for t in ts) for ts in trials.values()
        )
        workers_seen = {
            t.user_attrs["worker"]
            for ts in trials.values()
            for t in ts
            if t.state == TrialState.COMPLETE
        }
        assert len(workers_seen) >= 2  # the driver and at least one worker shared the work
        state = {t.number: t.state for t in trials[_label_of(trials, killed)]}
        assert state[killed.number] == TrialState.FAIL


def _label_of(trials: dict, trial) -> str:
    for label, ts in trials.items():
        worker = trial.user_attrs.get("worker")
        if any(t.number == trial.number and t.user_attrs.get("worker") == worker for t in ts):
            return label
    raise AssertionError("trial not found")


def test_worker_help_and_quickstart_help(capsys):
    for command in (["worker", "--help"], ["quickstart", "--help"], ["study", "run", "--help"]):
        assert main(command) == 0
        assert "examples:" in capsys.readouterr().out


def test_quickstart_study_ships_in_the_package():
    from merging.cli.quickstart import builtin_study

    spec = load_study_spec(str(builtin_study("quickstart")))
    assert spec.zoo == "smol"
    assert [f.family for f in spec.families] == ["interpolation", "layerwise", "rewards_in_context"]
    assert spec.families[1].settings == {"blocks": 3}
    assert os.path.samefile(str(builtin_study("tiny")), TINY)


def test_the_printed_front_lists_trials_with_the_same_scores_once():
    """Tied points of one run (RiC markers that changed no answer) take one line, naming the
    other trials; the knee's number is the one shown; ties across runs stay separate lines."""
    from merging.cli.study import format_report
    from pareto.report import FrontRow, RunRow, StudyReport

    def row(label, trial, values, knee=False):
        return FrontRow(label, trial, [0.1 * trial], values, (0.01, 0.02), knee)

    tie = (0.5, 1.25)
    report = StudyReport(
        study="s",
        objectives=("a", "b"),
        senses=("max", "min"),
        runs=(RunRow("ric", "rewards_in_context", "tpe", 6, 6, 0.3, 4),),
        front=(
            row("ric", 3, tie),
            row("ric", 6, tie, knee=True),
            row("ric", 9, tie),
            row("ric", 1, (0.7, 2.0)),
            row("soup", 2, tie),
        ),
        reference_point=(0.0, 3.0),
        bounds=((0.5, 1.25), (0.7, 2.0)),
    )
    lines = format_report(report).splitlines()
    front = lines[lines.index(next(x for x in lines if x.startswith("Pareto front"))) + 2 :]
    assert "Pareto front of the study (5 trials, * = knee):" in lines
    assert [line.split()[:2] for line in front] == [
        ["*", "ric#6"],  # the knee's number, for its tie with trials 3 and 9
        ["x:", "[0.6]"],
        ["the", "same"],
        ["ric#1", "0.7"],
        ["x:", "[0.1]"],
        ["soup#2", "0.5"],  # the same scores in another run: a line of its own
        ["x:", "[0.2]"],
    ]
    assert front[2].split() == ["the", "same", "scores:", "ric#3,", "ric#9"]
    # x in words, and the base model's row
    text = format_report(
        report,
        x_text={("ric", 1): "weight: helpful 0.3, harmless 0.7"},
        base={"values": [0.25, 1.5], "stderr": [0.01, 0.02]},
    )
    assert "    weight: helpful 0.3, harmless 0.7" in text.splitlines()
    assert text.splitlines()[-1].split() == [
        "base",
        "model",
        "0.25",
        "±",
        "0.01",
        "1.5",
        "±",
        "0.02",
    ]
    assert "hypervolume: the share of objective space a run's front dominates" in text


def test_racing_study_keeps_scores_stops_dominated_candidates_and_resumes(
    tiny_zoo_cache, tmp_path, capsys
):
    """Racing on the tiny zoo: every trial and the base keep their per-prompt scores; a raced
    out trial used fewer prompts, names the trial that dominated it and is told to the driver
    like any other; a rerun evaluates nothing, and a second study reads every batch from the
    evaluation cache."""
    from merging.zoo import load_zoo
    from pareto.report import PAIRED, study_report, trial_standing
    from pareto.trial_records import trial_scores

    # helpfulness and harmlessness move together on the tiny zoo: dominated candidates exist
    objectives = [o for o in load_zoo("tiny").objective_specs() if "length" not in o]
    data = {
        "name": "racing",
        **SMALL,
        "objectives": objectives,
        "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "n": 8},
        "families": [{"family": "interpolation", "driver": "random"}],
        "search": {"budget": 12, "seed": 3},
        "racing": {"batch": 2, "epsilon": 0.3},
    }
    spec = parse_study_spec(data)
    url = sqlite_url(tmp_path / "study.db")
    (run,) = run_study(spec, storage_url=url, log=lambda _: None)
    names = run.spec.objectives
    reference = run.study.user_attrs["reference"]
    assert trial_scores(reference, names).shape == (8, len(names))
    results = run.results()
    assert len(results.values) == 12
    used = [a["prompts_used"] for a in results.attrs]
    raced = [a for a in results.attrs if a["raced_out"]]
    assert raced, "no candidate was raced out"
    assert any(u == 8 for u in used)
    for number, attrs, scores, values in zip(
        results.numbers, results.attrs, results.prompt_scores, results.values, strict=True
    ):
        assert scores.shape == (attrs["prompts_used"], len(names))
        if attrs["raced_out"]:
            assert attrs["prompts_used"] < 8
            assert attrs["prompts_used"] % 2 == 0
            assert attrs["p_dominated"] >= 0.7
            assert attrs["raced_out_by"] in results.numbers[results.numbers < number]
        else:
            np.testing.assert_allclose(values, scores.mean(axis=0))
    standing = trial_standing([results], study_report([results]), reference=reference)
    assert standing.method == PAIRED
    assert standing.prompts_used.tolist() == used
    assert standing.base_difference.shape == (12, len(names))
    # resume: nothing more to evaluate
    numbers = [t.number for t in run.trials()]
    run_study(spec, storage_url=url, log=lambda _: None)
    assert [t.number for t in open_runs(open_storage(url), "racing")[0].trials()] == numbers
    # the same study in another storage reads every batch from the cache
    (again,) = run_study(spec, storage_url=sqlite_url(tmp_path / "b.db"), log=lambda _: None)
    again_results = again.results()
    assert all(a["cached"] for a in again_results.attrs)
    np.testing.assert_array_equal(again_results.values, results.values)
    # study show: P(non-dominated) and paired differences from the base, text and JSON
    capsys.readouterr()
    assert main(["study", "show", "racing", "--storage", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["uncertainty"] == PAIRED
    assert shown["within_noise"] == int((standing.p_nondominated >= 0.5).sum())
    for row in shown["front"]:
        assert 0 <= row["p_nondominated"] <= 1
        low, high = row["base_interval"]
        for d, lo, hi in zip(row["base_difference"], low, high, strict=True):
            assert lo <= d <= hi
    assert main(["study", "show", "racing", "--storage", url]) == 0
    text = capsys.readouterr().out
    assert "P(nd): probability of being non-dominated, by paired bootstrap over prompts" in text
    assert "[paired 95% interval]" in text


def test_a_worker_races_too(tiny_zoo_cache, tmp_path):
    """A worker of a racing study compares its candidates with the run's trials and records
    their per-prompt scores, like the driving process."""
    from merging.study.runner import run_worker
    from merging.zoo import load_zoo

    objectives = [o for o in load_zoo("tiny").objective_specs() if "length" not in o]
    data = {
        "name": "racing-worker",
        **SMALL,
        "objectives": objectives,
        "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "n": 8},
        "families": [{"family": "interpolation", "driver": "random"}],
        "search": {"budget": 6, "seed": 3},
        "racing": {"batch": 2, "epsilon": 0.45},
    }
    url = sqlite_url(tmp_path / "study.db")
    run_study(parse_study_spec(data), storage_url=url, log=lambda _: None)
    # raise the budget (as a rerun with a larger budget does), then let a worker do the rest
    bigger = parse_study_spec({**data, "search": {"budget": 10, "seed": 3}})
    open_study_runs(StudySession(bigger, evaluate=False, log=lambda _: None), open_storage(url))
    assert run_worker(url, "racing-worker", log=lambda _: None) == 4
    (run,) = open_runs(open_storage(url), "racing-worker")
    results = run.results()
    assert len(results.values) == 10
    for attrs, scores in zip(results.attrs, results.prompt_scores, strict=True):
        assert scores.shape == (attrs["prompts_used"], 2)
        assert attrs["raced_out"] == (attrs["prompts_used"] < 8)
        if attrs["raced_out"]:
            assert attrs["raced_out_by"] in results.numbers
    # the worker compared its candidates with the run's trials (whether one was dominated
    # enough to stop depends on the tiny zoo's random heads)
    assert any(a["p_dominated"] > 0 for a in results.attrs[6:]), "the worker never raced"


def test_objectives_name_the_zoos_heads_and_add_the_alignment_tax(tiny_zoo_cache):
    _, manifest = tiny_zoo_cache
    objectives = ["helpfulness=zoo:max", "verbosity=zoo:min", "tax=reference_nll:min"]
    spec = parse_study_spec(
        {"name": "tax", **SMALL, "families": ["interpolation"], "objectives": objectives}
    )
    session = StudySession(spec, evaluate=False, log=lambda _: None)
    heads = {o.name: o.head for o in session.objectives}
    assert heads["helpfulness"] == manifest.heads["helpfulness"]
    assert heads["verbosity"] == manifest.heads["verbosity"]
    assert heads["tax"].startswith("reference_nll:")  # completed with the study's data folder
    bad = parse_study_spec(
        {
            "name": "tax",
            **SMALL,
            "families": ["interpolation"],
            "objectives": ["kindness=zoo:max", *objectives],
        }
    )
    with pytest.raises(ValueError, match="the zoo has no head by that name; its objectives: "):
        StudySession(bad, evaluate=False, log=lambda _: None)


def test_an_ama_run_whose_objective_has_no_stand_in_is_refused_before_anything_is_stored(
    tiny_zoo_cache, tmp_path
):
    family = {"family": "layerwise", "settings": {"blocks": 2}, "driver": "ama"}
    objectives = ["helpfulness=zoo:max", "kl=kl_to_base:min"]
    spec = parse_study_spec({"name": "kl", **SMALL, "families": [family], "objectives": objectives})
    url = sqlite_url(tmp_path / "runs" / "kl" / "study.db")
    with pytest.raises(ValueError, match="objective 'kl' has no differentiable stand-in"):
        run_study(spec, storage_url=url, log=lambda _: None)
    assert not (tmp_path / "runs" / "kl" / "study.db").exists()
    named = {**family, "driver_settings": {"pairs": {"kl": "reference"}}}
    spec = parse_study_spec({"name": "kl", **SMALL, "families": [named], "objectives": objectives})
    StudySession(spec, evaluate=False, log=lambda _: None)  # a named stand-in is accepted


def test_a_preference_moves_each_ric_reward_the_way_its_objective_wants(tiny_zoo_cache):
    """With a preference mapping, a weight on verbosity (an objective to minimise) asks for
    shorter answers, and the run records the senses it used, so that a run stored before (or
    under other senses) is not resumed with another meaning of ``x``."""
    spec = parse_study_spec(
        {
            "name": "senses",
            **SMALL,
            "families": [{"family": "rewards_in_context", "settings": {"mapping": "l2"}}],
        }
    )
    session = StudySession(spec, evaluate=False, log=lambda _: None)
    ric = session.families["rewards_in_context"]
    assert ric.experts == ("helpfulness", "harmlessness", "verbosity")
    assert ric.senses == ("max", "max", "min")
    all_verbosity = ric.recipe(np.array([0.0, 0.0, 1.0])).parameters
    no_verbosity = ric.recipe(np.array([0.5, 0.5, 0.0])).parameters
    assert all_verbosity["desired.verbosity"] == pytest.approx(ric.low[2])  # the shortest
    assert no_verbosity["desired.verbosity"] == pytest.approx(ric.high[2])
    assert no_verbosity["desired.helpfulness"] > all_verbosity["desired.helpfulness"]
    (run,) = session.run_specs()
    assert run.family_settings == {
        "mapping": "l2",
        "senses": {"helpfulness": "max", "harmlessness": "max", "verbosity": "min"},
    }
    # the desired scores themselves (the default mapping): nothing taken from the objectives
    box = parse_study_spec({"name": "box", **SMALL, "families": [{"family": "rewards_in_context"}]})
    (run,) = StudySession(box, evaluate=False, log=lambda _: None).run_specs()
    assert run.family_settings == {}
    bad = {"name": "bad", **SMALL, "families": [{"family": "rewards_in_context"}]}
    bad["families"][0]["settings"] = {"senses": {"verbosity": "max"}}
    with pytest.raises(ValueError, match=r"has no setting\(s\) \['senses'\]"):
        StudySession(parse_study_spec(bad), evaluate=False, log=lambda _: None)
