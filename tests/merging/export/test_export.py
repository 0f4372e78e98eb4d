"""``paretomerge export`` on the tiny study: weights, mergekit, model card, RiC, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from safetensors.torch import load_file

from merging.cli import main
from merging.export import (
    CARD_FILE,
    MARKER_FILE,
    MERGEKIT_FILE,
    export_marker,
    export_trial,
    is_finished_export,
)
from merging.study.prompts import load_prompts
from merging.study.session import StudySession
from merging.study.trials import select_trial, study_trials

FAMILIES = ("interpolation", "layerwise", "rewards_in_context")
HH_RLHF = Path(__file__).resolve().parents[4] / "shared" / "data" / "hh-rlhf"
quiet = lambda _: None  # noqa: E731


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


@pytest.fixture(scope="module")
def exported(tiny_study, tmp_path_factory):
    """The last trial of each run of the tiny study, exported: ``{family: (record, folder)}``."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    records = study_trials(tiny_study, "tiny")
    for family in FAMILIES:
        record = [r for r in records if r.run.label == family][-1]
        out[family] = (record, export_trial(record, root / record.slug, log=quiet))
    return out


def test_weights_load_and_equal_the_evaluated_policy(exported):
    from transformers import AutoModelForCausalLM

    record = exported["interpolation"][0]
    session = StudySession(record.study_spec(), evaluate=False, log=quiet)
    for family_name, (record, folder) in exported.items():
        assert {"config.json", "generation_config.json", "tokenizer.json", CARD_FILE,
                MERGEKIT_FILE, MARKER_FILE} <= {p.name for p in folder.iterdir()}  # fmt: skip
        assert is_finished_export(folder, study="tiny", trial=record.key)
        assert export_marker(folder)["weights"] is True
        assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
        family = session.families[family_name]
        merger = session.merger(family)
        family.apply(record.recipe(), merger)  # what the study evaluated
        evaluated = {n: t.detach().clone() for n, t in merger.state_dict().items()}
        model = AutoModelForCausalLM.from_pretrained(folder)
        loaded = model.state_dict()
        assert set(evaluated) <= set(loaded)
        for name, tensor in evaluated.items():
            assert torch.equal(loaded[name], tensor.to(loaded[name].dtype)), (family_name, name)


def test_mergekit_yaml_reproduces_the_exported_weights(exported, tmp_path):
    exe = shutil.which("mergekit-yaml") or str(Path(sys.executable).parent / "mergekit-yaml")
    for family_name, (_, folder) in exported.items():
        out = tmp_path / family_name
        subprocess.run(
            [exe, str(folder / MERGEKIT_FILE), str(out), "--lora-merge-cache", str(tmp_path / "c")],
            check=True,
            capture_output=True,
        )
        ours, theirs = tensors(folder), tensors(out)
        assert set(ours) == set(theirs), family_name
        worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
        assert worst <= 1e-6, (family_name, worst)
        text = (folder / MERGEKIT_FILE).read_text()
        assert "+" in yaml.safe_load(text)["models"][0]["model"]  # LoRA experts: BASE+ADAPTER
        assert "merged forms" in text


def test_the_exported_model_generates_the_recorded_samples(exported):
    """Same prompts, same settings, same batches: the text each trial recorded. For RiC the
    prompts go in plain; the exported chat template writes the desired rewards."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from merging.generation import generate

    for family_name, (record, folder) in exported.items():
        spec = record.study_spec()
        prompts = load_prompts(spec.prompts, str(HH_RLHF), spec.resolve)
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        responses = generate(model, tokenizer, prompts, spec.generation)
        samples = record.attrs["samples"]
        assert len(samples) >= 3
        assert [s["prompt"] for s in samples] == [p.last_user for p in prompts[: len(samples)]]
        assert responses[: len(samples)] == [s["response"] for s in samples], family_name
        config = json.loads((folder / "generation_config.json").read_text())
        assert config["max_new_tokens"] == spec.generation.max_new_tokens
        assert config["do_sample"] is False


def test_ric_chat_template_holds_the_desired_rewards(exported):
    from transformers import AutoTokenizer

    from merging.data import Prompt
    from merging.generation import render
    from merging.policy import load_tokenizer
    from merging.ric import RiCSpec, condition, level_word

    record, folder = exported["rewards_in_context"]
    desired = [record.recipe().parameters[f"desired.{n}"] for n in record.run.experts]
    prompt = Prompt(({"role": "user", "content": "How do I bake bread?"},))
    session = StudySession(record.study_spec(), evaluate=False, log=quiet)
    words = RiCSpec.load(session.ric).words
    assert words is not None  # the zoo's RiC model writes level words after its scores
    want = render(
        load_tokenizer(session.base), condition(prompt, record.run.experts, desired, words)
    )
    got = render(AutoTokenizer.from_pretrained(folder), prompt)
    assert got == want
    first = f"<{record.run.experts[0]}> {desired[0]:.1f} ({level_word(desired[0], words[0])})"
    assert first in got
    config = yaml.safe_load((folder / MERGEKIT_FILE).read_text())
    assert config["merge_method"] == "passthrough"


def test_model_card_says_what_the_model_is(exported):
    record, folder = exported["layerwise"]
    text = (folder / CARD_FILE).read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "transformers"
    assert "layerwise" in meta["tags"]
    for objective, value, err in zip(
        record.run.objectives, record.values, record.stderrs, strict=True
    ):
        assert f"| {objective} |" in text
        assert f"{value:.4g} ± {err:.2g}" in text
    assert "higher is better" in text
    assert "lower is better" in text
    assert f"Front rank **{record.rank}**" in text
    assert f"**{record.p_nondominated:.2f}**" in text
    assert "(paired bootstrap over prompts, 1,000 draws)" in text
    assert "| this − base [95%] |" in text
    d, lo, hi = record.base_difference
    assert f"{d[0]:+.3g} [{lo[0]:+.3g}, {hi[0]:+.3g}]" in text
    assert text.count("sha256:") == 4  # base and three experts
    # checkpoints named portably: no absolute local path anywhere in the card
    assert "`zoo:tiny/helpfulness_expert`" in text
    table = [line for line in text.splitlines() if "sha256:" in line]
    assert not any("/tmp/" in line for line in table), table
    assert "**This model comes from the `tiny` zoo**" in text
    assert '"temperature"' not in text  # greedy decoding: no sampling settings
    assert '"top_p"' not in text
    assert '"block_weights"' in text
    assert '"max_new_tokens": 12' in text
    assert '"hh_rlhf"' in text
    assert f"--trial '{record.key}'" in text
    assert "mergekit-yaml" in text


def test_sharded_export_loads_the_same_weights(exported, tmp_path):
    from transformers import AutoModelForCausalLM

    record, folder = exported["interpolation"]
    sharded = export_trial(record, tmp_path / "sharded", max_shard_size="200KB", log=quiet)
    assert len(list(sharded.glob("*.safetensors"))) > 1
    assert (sharded / "model.safetensors.index.json").is_file()
    ours, whole = tensors(sharded), tensors(folder)
    assert set(ours) == set(whole)
    assert all(torch.equal(ours[k], whole[k]) for k in ours)
    AutoModelForCausalLM.from_pretrained(sharded)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_bad_trials_and_folders_are_one_line_errors(tiny_study, tmp_path, capsys):
    out = tmp_path / "x"
    args = ["export", "--study", "tiny", "--storage", tiny_study, "--out", str(out)]
    assert main([*args, "--trial", "layerwise#99"]) == 2
    assert "no trial layerwise#99 (layerwise has trials 0-11)" in _one_line(capsys)
    assert main([*args, "--trial", "3"]) == 2
    assert "write RUN#NUMBER" in _one_line(capsys)
    assert main([*args, "--trial", "soup#3"]) == 2
    assert "no run 'soup'" in _one_line(capsys)
    assert main(["export", "--study", "nope", "--storage", tiny_study, "--knee",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "studies here: tiny" in _one_line(capsys)
    assert not out.exists()

    # a failed trial
    db = tmp_path / "copy.db"
    shutil.copy(tiny_study.removeprefix("sqlite:///"), db)
    url = f"sqlite:///{db}"
    study = optuna.load_study(study_name="tiny/interpolation", storage=url)
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, user_attrs={"error": "RuntimeError: boom"}
        )
    )
    failed = len(study.trials) - 1
    assert main(["export", "--study", "tiny", "--storage", url, "--trial",
                 f"interpolation#{failed}", "--out", str(out)]) == 2  # fmt: skip
    err = _one_line(capsys)
    assert f"interpolation#{failed} is FAIL, not COMPLETE" in err
    assert "boom" in err
    assert not out.exists()

    # a bad shard size: refused where it is parsed, before anything is written
    assert main([*args, "--knee", "--max-shard-size", "lots"]) == 2
    assert "--max-shard-size: 'lots' is not a file size" in _one_line(capsys)
    assert not out.exists()

    # a non-empty folder: refused, untouched; --force replaces only an earlier export
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([*args, "--knee"]) == 2
    assert "not empty" in _one_line(capsys)
    assert main([*args, "--knee", "--force"]) == 2
    assert "not a paretomerge export (keep.txt)" in _one_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    assert main([*args, "--trial", "layerwise#0"]) == 0
    assert is_finished_export(out, trial="layerwise#0")
    assert main([*args, "--knee"]) == 2
    assert "pass --force to replace the earlier export" in _one_line(capsys)
    assert main([*args, "--knee", "--force", "--max-shard-size", "200KB"]) == 0
    knee = select_trial(tiny_study, "tiny", None, knee=True).key
    assert is_finished_export(out, study="tiny", trial=knee)
    assert (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_no_disk_space_or_changed_checkpoints_write_nothing(tiny_study, tmp_path, monkeypatch):
    import merging.export.folder as export

    record = select_trial(tiny_study, "tiny", None, knee=True)
    assert record.knee
    checkpoints = {"base", "helpfulness", "harmlessness", "concise", "ric"}
    heads = {"head:helpfulness", "head:harmlessness"}  # verbosity is counted, not a folder
    assert set(record.checkpoints) == checkpoints | heads
    changed = dataclasses.replace(record, checkpoints={**record.checkpoints, "base": "sha256:0"})
    with pytest.raises(ValueError, match="base differ from those"):
        export_trial(changed, tmp_path / "changed", log=quiet)
    assert not (tmp_path / "changed").exists()

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(export.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with pytest.raises(ValueError, match="not enough free disk space"):
        export_trial(record, tmp_path / "full", log=quiet)
    assert not (tmp_path / "full").exists()


def test_front_exports_every_pareto_optimal_recipe_without_weights(tiny_study, tmp_path):
    out = tmp_path / "front"
    args = ["export", "--study", "tiny", "--storage", tiny_study, "--front", "--out", str(out)]
    assert main(args) == 0
    front = [r for r in study_trials(tiny_study, "tiny") if r.rank == 1]
    index = ["front.csv", "front.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MARKER_FILE, *index, *(r.slug for r in front)]
    )
    assert export_marker(out)["front"] == [r.key for r in front]
    rows = json.loads((out / "front.json").read_text())
    assert [(row["trial"], row["folder"]) for row in rows] == [(r.key, r.slug) for r in front]
    objective = front[0].run.objectives[0]
    assert [row[objective] for row in rows] == pytest.approx([r.values[0] for r in front])
    assert sum(row["knee"] for row in rows) == sum(r.knee for r in front)
    csv_lines = (out / "front.csv").read_text().splitlines()
    assert csv_lines[0].startswith("trial,folder,run,family,")
    assert len(csv_lines) == 1 + len(front)
    for record in front:
        folder = out / record.slug
        recipe = (
            [MERGEKIT_FILE] if record.run.family != "decoding" else ["generate.py", "mixture.json"]
        )
        assert sorted(p.name for p in folder.iterdir()) == sorted([CARD_FILE, MARKER_FILE, *recipe])
        assert is_finished_export(folder, study="tiny", trial=record.key)


def test_front_export_is_all_or_nothing(tiny_study, tmp_path, monkeypatch):
    """A --front export that fails part way leaves --out absent, or the earlier one as it was."""
    import merging.export.trial as export

    out = tmp_path / "front"
    export.export_front(tiny_study, "tiny", out, log=quiet)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write, calls = export._TrialExport.write, []

    def fails_second(self, *args, **kwargs):
        calls.append(self.record.key)
        if len(calls) == 2:
            raise OSError("disk full")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(export._TrialExport, "write", fails_second)
    with pytest.raises(OSError, match="disk full"):
        export.export_front(tiny_study, "tiny", out, force=True, log=quiet)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        export.export_front(tiny_study, "tiny", tmp_path / "fresh", log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front"]


def test_mergekit_method_families_export_and_reproduce(tiny_zoo_cache, tmp_path):
    """task_arithmetic, ties, dare_ties (density 1: mergekit draws its own DARE masks) and
    slerp (two experts), in a study on the tiny zoo's checkpoints: each exported trial's YAML
    through mergekit-yaml gives the exported tensors within 1e-6."""
    from merging.study.runner import run_study
    from merging.study.spec import parse_study_spec
    from merging.zoo import load_zoo
    from pareto.storage import sqlite_url

    zoo = load_zoo("tiny")
    two = {n: str(p) for n, p in list(zoo.experts.items())[:2]}
    base = {"base": str(zoo.base), "objectives": zoo.objective_specs()}
    small = {
        "prompts": {"hh_rlhf": ["helpful-base"], "n": 2, "data": str(HH_RLHF)},
        "generation": {"max_new_tokens": 2},
        "search": {"driver": "random", "budget": 2, "seed": 3},
    }
    url = sqlite_url(tmp_path / "mk.db")
    spec = parse_study_spec({
        "name": "mk", **base, **small,
        "experts": {n: str(p) for n, p in zoo.experts.items()},
        "families": [
            {"family": "task_arithmetic"},
            {"family": "ties", "settings": {"density": 0.6}},
            {"family": "dare_ties", "settings": {"density": 1.0}},
        ],
    })  # fmt: skip
    run_study(spec, storage_url=url, log=quiet)
    pair = parse_study_spec({
        "name": "pair", **base, **small, "experts": two, "families": [{"family": "slerp"}],
    })  # fmt: skip
    run_study(pair, storage_url=url, log=quiet)
    exe = shutil.which("mergekit-yaml") or str(Path(sys.executable).parent / "mergekit-yaml")
    for study in ("mk", "pair"):
        for record in study_trials(url, study)[-1::-2]:  # the last trial of each run
            folder = export_trial(record, tmp_path / record.slug, log=quiet)
            out = tmp_path / f"mk-{record.slug}"
            subprocess.run(
                [exe, str(folder / MERGEKIT_FILE), str(out), "--lora-merge-cache",
                 str(tmp_path / "cache")],
                check=True, capture_output=True,
            )  # fmt: skip
            ours, theirs = tensors(folder), tensors(out)
            assert set(ours) == set(theirs)
            worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
            assert worst <= 1e-6, (record.key, worst)


def test_content_hash_is_what_the_checkpoint_computes(tiny_zoo_cache, tmp_path):
    """Copies and rebuilds hash alike (README, logs and recorded paths are left out); one
    changed weight byte or config value does not."""
    from merging.paths import content_hash
    from merging.zoo import load_zoo

    adapter = Path(load_zoo("tiny").experts["helpfulness"])
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    (copy / "README.md").write_text("another card")
    config = json.loads((copy / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "/somewhere/else"
    (copy / "adapter_config.json").write_text(json.dumps(config))
    assert content_hash(copy) == content_hash(adapter)
    config["r"] = config["r"] * 2
    (copy / "adapter_config.json").write_text(json.dumps(config))
    assert content_hash(copy) != content_hash(adapter)
    (copy / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert content_hash(copy) != content_hash(adapter)


def test_system_prompt_and_stops_go_into_the_export(tiny_zoo_cache, tmp_path):
    from transformers import AutoTokenizer

    from merging.data import Prompt
    from merging.generation import render
    from merging.policy import load_tokenizer
    from merging.study.runner import run_study
    from merging.study.spec import parse_study_spec
    from pareto.storage import sqlite_url

    spec = parse_study_spec({
        "name": "sys", "zoo": "tiny", "families": [{"family": "interpolation"}],
        "prompts": {"hh_rlhf": ["helpful-base"], "n": 2, "data": str(HH_RLHF)},
        "generation": {"max_new_tokens": 3, "system_prompt": "Be brief."},
        "search": {"driver": "random", "budget": 1},
    })  # fmt: skip
    url = sqlite_url(tmp_path / "sys.db")
    run_study(spec, storage_url=url, log=quiet)
    record = select_trial(url, "sys", " interpolation # 0 ")  # spaces are forgiven
    folder = export_trial(record, tmp_path / "out", log=quiet)
    prompt = Prompt(({"role": "user", "content": "Hi there"},))
    base = load_tokenizer(StudySession(spec, evaluate=False, log=quiet).base)
    assert render(AutoTokenizer.from_pretrained(folder), prompt) == render(
        base, prompt, "Be brief."
    )
    config = json.loads((folder / "generation_config.json").read_text())
    assert isinstance(config["eos_token_id"], list)
    assert "<|im_end|>" in base.get_vocab()
    assert base.get_vocab()["<|im_end|>"] in config["eos_token_id"]
