"""``paretomerge quickstart`` when its own storage holds the study with other settings."""

from __future__ import annotations

import yaml

from merging.cli import main
from pareto.runs import open_runs
from pareto.storage import open_storage, sqlite_url


def study_file(folder, n: int):
    path = folder / f"small-{n}.yaml"
    spec = {
        "name": "small",
        "zoo": "tiny",
        "families": [{"family": "interpolation"}],
        "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "split": "evaluation", "n": n},
        "generation": {"max_new_tokens": 4},
        "search": {"driver": "random", "budget": 2, "seed": 0},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def prompt_counts(url: str) -> list[int]:
    """Each stored run's prompt count, as its evaluation record says."""
    runs = open_runs(open_storage(url), "small")
    return [int(run.spec.evaluation["prompts"].split()[0]) for run in runs]


def test_a_changed_study_is_set_aside_and_run_afresh(tiny_zoo_cache, tmp_path, monkeypatch, capsys):
    """The upgrade path: the study stored under the quickstart's default storage was made with
    other settings (an earlier version's). The quickstart keeps that file under another name,
    says where, and runs the new study; with its own --storage it stops with the one-line
    error instead, and nothing is moved."""
    monkeypatch.chdir(tmp_path)
    assert main(["quickstart", "--study", str(study_file(tmp_path, 4))]) == 0
    database = tmp_path / "runs" / "small" / "study.db"
    assert prompt_counts(sqlite_url(database)) == [4]
    capsys.readouterr()

    assert main(["quickstart", "--study", str(study_file(tmp_path, 5))]) == 0
    out = capsys.readouterr().out
    kept = [p for p in database.parent.iterdir() if p.name.startswith("study-before-")]
    assert len(kept) == 1
    assert f"kept it as {kept[0].relative_to(tmp_path)}" in out
    assert prompt_counts(sqlite_url(kept[0])) == [4]  # the old study, whole
    assert prompt_counts(sqlite_url(database)) == [5]

    elsewhere = sqlite_url(tmp_path / "own.db")
    first = ["quickstart", "--study", str(study_file(tmp_path, 4)), "--storage", elsewhere]
    assert main(first) == 0
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["quickstart", "--study", str(study_file(tmp_path, 5)), "--storage", elsewhere])
    err = capsys.readouterr().err
    assert code == 2
    assert "already exists in this storage with evaluation.prompts = '4 prompts" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert prompt_counts(elsewhere) == [4]


def test_a_run_does_not_resume_on_changed_checkpoints(
    tiny_zoo_cache, tmp_path, monkeypatch, capsys
):
    """A rebuilt RiC model: ``study run`` stops with one line naming the run and the checkpoint,
    and stores nothing; a run whose checkpoints did not change resumes; the quickstart sets the
    older study aside and runs afresh on the new model."""
    import shutil

    from safetensors.torch import load_file, save_file

    _, manifest = tiny_zoo_cache
    zoo = tmp_path / "zoo"
    shutil.copytree(manifest.folder, zoo)

    def spec_file(families, budget):
        path = tmp_path / "rebuilt.yaml"
        spec = {
            "name": "rebuilt",
            "zoo": "tiny",
            "zoo_folder": str(zoo),
            "families": [{"family": f} for f in families],
            "prompts": {"hh_rlhf": ["helpful-base"], "split": "evaluation", "n": 3},
            "generation": {"max_new_tokens": 4},
            "search": {"driver": "random", "budget": budget, "seed": 0},
        }
        path.write_text(yaml.safe_dump(spec))
        return str(path)

    def completed(url):
        return [r.counts().complete for r in open_runs(open_storage(url), "rebuilt")]

    monkeypatch.chdir(tmp_path)
    url = sqlite_url(tmp_path / "runs" / "rebuilt" / "study.db")
    both = ["interpolation", "rewards_in_context"]
    assert main(["study", "run", spec_file(both, 2), "--no-show"]) == 0
    assert completed(url) == [2, 2]

    weights = zoo / "ric" / "adapter_model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 0.01
    save_file(tensors, weights)
    capsys.readouterr()

    assert main(["study", "run", spec_file(both, 3), "--no-show"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "study 'rebuilt/rewards_in_context' evaluated its 2 trials on other checkpoints" in err
    assert "ric changed since" in err
    assert completed(url) == [2, 2]  # nothing stored

    assert main(["study", "run", spec_file(["interpolation"], 3), "--no-show"]) == 0
    assert completed(url) == [3, 2]  # its checkpoints did not change

    capsys.readouterr()
    assert main(["quickstart", "--study", spec_file(both, 2)]) == 0
    out = capsys.readouterr().out
    assert "other settings or checkpoints" in out
    kept = [p for p in (tmp_path / "runs" / "rebuilt").iterdir() if p.name.startswith("study-")]
    assert [completed(sqlite_url(p)) for p in kept] == [[3, 2]]
    assert completed(url) == [2, 2]

    # a retrained head changes what every score means: no run scored by it resumes
    head = zoo / "helpfulness_head" / "head.safetensors"
    tensors = load_file(head)
    tensors["mean"] = tensors["mean"] + 0.5
    save_file(tensors, head)
    capsys.readouterr()
    assert main(["study", "run", spec_file(["interpolation"], 3), "--no-show"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'rebuilt/interpolation' evaluated its 2 trials on other checkpoints" in err
    assert "head:helpfulness changed since" in err
    assert completed(url) == [2, 2]


def test_a_run_stopped_before_its_first_trial_records_the_checkpoints_it_then_uses(
    tiny_zoo_cache, tmp_path
):
    """A run created (its checkpoints hashed) and stopped before its first trial, then its
    RiC model rebuilt: its trials are of the new model, so the record must say so, or the next
    resume and every export would refuse them as evaluated on other checkpoints."""
    import shutil

    from safetensors.torch import load_file, save_file

    from merging.paths import content_hash
    from merging.study.runner import (
        CHECKPOINTS_ATTR,
        _record_checkpoints,
        open_study_runs,
        run_study,
    )
    from merging.study.session import StudySession
    from merging.study.spec import parse_study_spec
    from pareto.storage import new_storage

    _, manifest = tiny_zoo_cache
    zoo = tmp_path / "zoo"
    shutil.copytree(manifest.folder, zoo)

    def spec(budget):
        return parse_study_spec(
            {
                "name": "stopped",
                "zoo": "tiny",
                "zoo_folder": str(zoo),
                "families": [{"family": "rewards_in_context"}],
                "prompts": {"hh_rlhf": ["helpful-base"], "split": "evaluation", "n": 2},
                "generation": {"max_new_tokens": 3},
                "search": {"driver": "random", "budget": budget, "seed": 0},
            }
        )

    def quiet(_):
        return None

    url = sqlite_url(tmp_path / "study.db")
    session = StudySession(spec(1), evaluate=False, log=quiet)
    with new_storage(url) as storage:
        (run,) = open_study_runs(session, storage)
        _record_checkpoints(session, [run])
        old = run.study.user_attrs[CHECKPOINTS_ATTR]["ric"]
    weights = zoo / "ric" / "adapter_model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 0.01
    save_file(tensors, weights)

    (run,) = run_study(spec(1), storage_url=url, log=quiet)
    recorded = run.study.user_attrs[CHECKPOINTS_ATTR]["ric"]
    assert recorded == content_hash(zoo / "ric") != old
    (run,) = run_study(spec(2), storage_url=url, log=quiet)  # resumes: no conflict
    assert run.counts().complete == 2
