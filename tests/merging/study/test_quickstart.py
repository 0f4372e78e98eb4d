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
