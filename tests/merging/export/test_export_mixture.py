"""Export of a ``decoding`` trial: no merged weights, a mixture description and a script that
generates, with transformers alone, what the study evaluated."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from merging.data import Prompt
from merging.export import CARD_FILE, export_trial, is_finished_export
from merging.generation import generate
from merging.study.session import StudySession
from merging.study.trials import study_trials

quiet = lambda _: None  # noqa: E731


@pytest.fixture(scope="module")
def exported(tiny_study, tmp_path_factory):
    records = [r for r in study_trials(tiny_study, "tiny") if r.run.family == "decoding"]
    record = max(records, key=lambda r: max(r.recipe().weights))  # the most one-sided mixture
    folder = export_trial(record, tmp_path_factory.mktemp("mixture") / record.slug, log=quiet)
    return record, folder


def test_a_mixture_export_names_the_experts_and_writes_no_weights(exported):
    record, folder = exported
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names == ["README.md", "export.json", "generate.py", "mixture.json"], names
    assert is_finished_export(folder)
    mixture = json.loads((folder / "mixture.json").read_text())
    recipe = record.recipe()
    assert {n: e["weight"] for n, e in mixture["experts"].items()} == dict(
        zip(recipe.experts, recipe.weights, strict=True)
    )
    assert all(len(e["content_hash"]) > 8 for e in mixture["experts"].values())
    assert mixture["generation"]["max_new_tokens"] == record.study_spec().generation.max_new_tokens
    card = (folder / CARD_FILE).read_text()
    assert "No merged checkpoint exists" in card
    assert "python generate.py" in card
    assert "mergekit-yaml" not in card
    assert "from_pretrained('THIS_FOLDER')" not in card


def test_the_script_generates_what_the_study_evaluated(exported):
    record, folder = exported
    session = StudySession(record.study_spec(), evaluate=False, log=quiet)
    family = session.families[record.run.label]
    recipe = record.recipe()
    policy = family.policy(recipe, session.merger(family))
    text = "w11 w12 w13 w14 w15"
    prompt = Prompt(({"role": "user", "content": text},))
    expected = generate(policy, session.tokenizer(), [prompt], session.spec.generation)[0]
    ran = subprocess.run(
        [sys.executable, str(folder / "generate.py"), text],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert expected, "the mixture wrote nothing: the comparison would show nothing"
    assert ran.stdout.strip() == expected
