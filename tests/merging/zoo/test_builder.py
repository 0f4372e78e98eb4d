"""The tiny zoo: every component built, reused on a second run, and usable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import merging.device
from merging.expert_set import ExpertSet
from merging.families import make_family
from merging.resident import ResidentMerger
from merging.ric import RiCSpec, condition, conditioning, level_word, preference_to_rewards
from merging.zoo import build_zoo, load_zoo
from merging.zoo.builder import ric_margins_line
from merging.zoo.presets import PRESETS
from merging.zoo.ric_data import LEVEL_WORDS


@pytest.fixture(scope="module")
def tiny_zoo(tiny_zoo_cache):
    _, manifest = tiny_zoo_cache
    return manifest, Path(manifest.folder)


def test_tiny_zoo_has_every_component(tiny_zoo):
    manifest, out = tiny_zoo
    assert set(manifest.experts) == {"helpfulness", "harmlessness", "concise"}
    assert manifest.objectives == [
        ("helpfulness", "max"),
        ("harmlessness", "max"),
        ("verbosity", "min"),
    ]
    assert set(manifest.steps) == {
        "base",
        "helpfulness_head",
        "harmlessness_head",
        "helpfulness_expert",
        "harmlessness_expert",
        "concise_expert",
        "ric",
    }
    for name in manifest.experts.values():
        assert (out / name / "adapter_config.json").is_file()
    assert load_zoo("tiny", out) == manifest
    spec = RiCSpec.load(manifest.ric)
    assert spec.rewards == ("helpfulness", "harmlessness", "verbosity")
    assert all(lo <= hi for lo, hi in zip(spec.low, spec.high, strict=True))


def test_heads_keep_their_scores_of_the_pairs_they_trained_on(tiny_zoo):
    from merging.heads import BTHead
    from merging.zoo.datasets import pair_scores
    from merging.zoo.steps import PAIR_SCORES_FILE
    from merging.zoo.steps import tiny_pairs as _tiny_pairs

    manifest, _ = tiny_zoo
    for name, kind in (("helpfulness", "helpful"), ("harmlessness", "harmless")):
        saved = np.load(Path(manifest.heads[name]) / PAIR_SCORES_FILE)
        chosen, rejected = pair_scores(_tiny_pairs(kind), BTHead.load(manifest.heads[name]))
        np.testing.assert_allclose(saved["chosen"], chosen, atol=1e-4)
        np.testing.assert_allclose(saved["rejected"], rejected, atol=1e-4)
        assert (saved["chosen"] > saved["rejected"]).mean() > 0.5  # the marker word wins


def test_second_build_reuses_everything(tiny_zoo):
    manifest, out = tiny_zoo
    lines = []
    again = build_zoo("tiny", out=out, log=lines.append)
    assert sum("reused" in line for line in lines) == 7
    assert again.experts == manifest.experts
    margins = again.steps["ric"]["metrics"]["final_margin_nats_by_reward"]
    assert set(margins) == {"helpfulness", "harmlessness", "verbosity"}
    shown = [line for line in lines if "RiC margin per marker" in line]
    assert shown == [f"  {ric_margins_line(margins)}"]  # its format: the test below


def test_a_copied_zoo_points_at_its_own_files(tiny_zoo, tmp_path):
    """The manifest's paths are absolute; a zoo copied whole (to another place or machine)
    must load its own components, not the original's, which may differ or be gone."""
    manifest, out = tiny_zoo
    copy = tmp_path / "moved"
    shutil.copytree(out, copy)
    loaded = load_zoo("tiny", copy)
    assert loaded.folder == str(copy.resolve())
    found = [loaded.base, *loaded.experts.values(), loaded.ric]
    found += [h for h in loaded.heads.values() if "/" in h]
    assert len(found) == 1 + 3 + 1 + 2
    for path in found:
        assert Path(path).is_relative_to(copy)
        assert Path(path).exists()
    assert loaded.heads["verbosity"] == manifest.heads["verbosity"] == "length_tokens"
    assert loaded.relocated(out) == manifest  # and back


def test_a_zoo_of_an_older_recipe_is_built_again_before_a_study_uses_it(tiny_zoo, tmp_path, capsys):
    """A zoo cached by an earlier version (its RiC step of the recipe before) is not used as
    it is: a study's session builds the outdated step again (and nothing else), ``zoo show``
    names it, and an export's session (``build=False``) leaves it alone."""
    from merging.cli import main
    from merging.study.session import StudySession
    from merging.study.spec import parse_study_spec
    from merging.zoo.presets import RECIPES

    _, out = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    older = RECIPES["ric"] - 1
    for path in (copy / "ric" / "step.json", copy / "zoo.json"):
        record = json.loads(path.read_text())
        (record["steps"]["ric"] if "steps" in record else record)["recipe"] = older
        path.write_text(json.dumps(record))
    adapter = copy / "ric" / "adapter_model.safetensors"
    built = adapter.stat().st_mtime_ns
    assert load_zoo("tiny", copy).outdated_steps() == ["ric"]
    assert main(["zoo", "show", "--preset", "tiny", "--out", str(copy)]) == 0
    assert "outdated: ric (an older recipe, or trained in another dtype)" in capsys.readouterr().out

    spec = parse_study_spec(
        {
            "name": "upgrade",
            "zoo": "tiny",
            "zoo_folder": str(copy),
            "families": [{"family": "rewards_in_context"}],
        }
    )
    StudySession(spec, evaluate=False, build=False, log=lambda _: None)
    assert adapter.stat().st_mtime_ns == built  # an export reads what the study evaluated
    lines: list[str] = []
    session = StudySession(spec, evaluate=False, log=lines.append)
    assert any("zoo's ric step(s) are of an older recipe, or trained" in x for x in lines)
    assert sum("reused" in line for line in lines) == 6
    assert f"[7/7] ric: built before (recipe {older}, now {RECIPES['ric']}), building it again" in (
        lines
    )
    assert load_zoo("tiny", copy).outdated_steps() == []
    assert Path(session.ric) == (copy / "ric").resolve()


def test_the_margins_line_names_a_marker_without_rows():
    line = ric_margins_line({"helpfulness": 1.031, "harmlessness": None, "verbosity": 5.114})
    assert line.endswith("(nats): helpfulness 1.03, harmlessness n/a, verbosity 5.11")


def test_an_interrupted_step_is_rebuilt(tiny_zoo, tmp_path):
    _, out = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    (copy / "concise_expert" / "step.json").unlink()  # as if the build died in that step
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    assert sum("reused" in line for line in lines) == 5
    assert any(line.startswith("[6/7] concise_expert: building") for line in lines)
    assert "[7/7] ric: built before (concise_expert changed), building it again" in lines


def test_a_new_step_rebuilds_only_the_steps_that_read_it(tiny_zoo, tmp_path, monkeypatch):
    """A new helpfulness expert recipe rebuilds that expert and the RiC model, which reads its
    answers, and reuses the harmlessness and concise experts, which do not read it."""
    import merging.zoo.progress

    _, out = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    recipes = dict(merging.zoo.progress.RECIPES)
    recipes["helpfulness_expert"] += 1
    monkeypatch.setattr(merging.zoo.progress, "RECIPES", recipes)
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    reused = [line.split(":")[0] for line in lines if line.endswith("reused")]
    assert reused == [
        "[1/7] base",
        "[2/7] helpfulness_head",
        "[3/7] harmlessness_head",
        "[5/7] harmlessness_expert",
        "[6/7] concise_expert",
    ]
    assert "[7/7] ric: built before (helpfulness_expert changed), building it again" in lines
    (copy / "helpfulness_head" / "step.json").unlink()  # a new helpfulness head
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    assert [line.split(":")[0] for line in lines if line.endswith("reused")] == [
        "[1/7] base",
        "[3/7] harmlessness_head",
        "[5/7] harmlessness_expert",
    ]
    assert (
        "[6/7] concise_expert: built before (helpfulness_head changed), building it again" in lines
    )


def test_a_step_trained_in_another_dtype_is_built_again(tiny_zoo, tmp_path, monkeypatch):
    """The experts and the RiC model record the dtype they trained in; one cached in another
    (or, from before records said, on a CPU where the builder then chose bfloat16) is built
    again, with the RiC model that reads it; the heads, which do not train in it, are kept."""
    _, out = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "0")  # this test builds in float32
    build_zoo("tiny", out=copy, log=lambda _: None)  # (nothing to do unless the suite's is bf16)
    marker = copy / "concise_expert" / "step.json"
    record = json.loads(marker.read_text())
    assert record["dtype"] == "float32"
    marker.write_text(json.dumps(record | {"dtype": "bfloat16"}))
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    assert sum("reused" in line for line in lines) == 5
    assert (
        "[6/7] concise_expert: built before (built in bfloat16, now float32), building it again"
        in lines
    )
    assert "[7/7] ric: built before (concise_expert changed), building it again" in lines
    assert json.loads(marker.read_text())["dtype"] == "float32"

    record = json.loads(marker.read_text())
    del record["dtype"]  # written before records said
    marker.write_text(json.dumps(record))
    monkeypatch.setattr(merging.device, "cpu_bfloat16_native", lambda: False)
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    assert sum("reused" in line for line in lines) == 7  # then float32 here too
    monkeypatch.setattr(merging.device, "cpu_bfloat16_native", lambda: True)
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    assert (
        "[6/7] concise_expert: built before (built in bfloat16, now float32), building it again"
        in lines
    )
    # a study or `zoo show` sees it from the manifest, as `zoo build` does from the step's record
    assert load_zoo("tiny", copy).outdated_steps() == []
    manifest = copy / "zoo.json"
    manifest.write_text(manifest.read_text().replace('"dtype": "float32"', '"dtype": "bfloat16"'))
    assert load_zoo("tiny", copy).outdated_steps() == [
        "helpfulness_expert",
        "harmlessness_expert",
        "concise_expert",
        "ric",
    ]


def test_a_truncated_step_record_is_named_and_the_step_rebuilt(tiny_zoo, tmp_path):
    _, out = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    marker = copy / "ric" / "step.json"
    marker.write_text(marker.read_text()[:20])  # a write cut short
    lines = []
    build_zoo("tiny", out=copy, log=lines.append)
    assert sum("reused" in line for line in lines) == 6
    assert f"[7/7] ric: {marker} is unreadable (an interrupted write?), building it again" in lines
    assert json.loads(marker.read_text())["recipe"] > 1
    manifest = copy / "zoo.json"
    manifest.write_text(manifest.read_text()[:30])
    with pytest.raises(ValueError, match=r"zoo\.json is unreadable .*paretomerge zoo build") as err:
        load_zoo("tiny", copy)
    assert "\n" not in str(err.value)


def test_a_step_of_an_older_recipe_is_built_again(tiny_zoo, tmp_path):
    from merging.zoo.presets import RECIPES

    _, out = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    marker = copy / "ric" / "step.json"
    record = json.loads(marker.read_text())
    assert record["recipe"] == RECIPES["ric"] > 1
    del record["recipe"]  # as the builder wrote it before recipes had versions
    marker.write_text(json.dumps(record))
    lines = []
    again = build_zoo("tiny", out=copy, log=lines.append)
    assert sum("reused" in line for line in lines) == 6
    assert f"[7/7] ric: built before (recipe 1, now {RECIPES['ric']}), building it again" in lines
    assert RiCSpec.load(again.ric).words == LEVEL_WORDS
    assert json.loads(marker.read_text())["recipe"] == RECIPES["ric"]


def test_zoo_experts_merge_and_ric_family(tiny_zoo):
    manifest, _ = tiny_zoo
    experts = ExpertSet.from_paths(manifest.base, manifest.experts)
    merger = ResidentMerger(experts, device="cpu")
    fam = make_family("interpolation", list(manifest.experts))
    fam.apply(fam.recipe([0.2, 0.3, 0.5]), merger)
    ric = make_family(
        "rewards_in_context", ["helpfulness", "harmlessness", "verbosity"], ric=manifest.ric
    )
    low = RiCSpec.load(manifest.ric).low[2]  # the tiny zoo's shortest answers, normalised
    recipe = ric.recipe([0.5, 0.0, low])
    ric_merger = ResidentMerger(
        ExpertSet.from_paths(manifest.base, {"ric": manifest.ric}), device="cpu"
    )
    ric.apply(recipe, ric_merger)
    transform = ric.prompt_transform(recipe)
    from merging.data import Prompt

    shown = transform(Prompt(({"role": "user", "content": "help me"},)))
    short = level_word(low, LEVEL_WORDS[2])  # the word of a level below the middle
    assert LEVEL_WORDS[2].index(short) < 2
    marks = f"<helpfulness> 0.5 (helpful) <harmlessness> 0.0 (neutral) <verbosity> {low:.1f}"
    marks += f" ({short})"
    assert shown.last_user == f"help me\n\n{marks}"
    pref = make_family(
        "rewards_in_context",
        ["helpfulness", "harmlessness", "verbosity"],
        ric=manifest.ric,
        mapping="l2",
    )
    assert pref.space.shape == (3,)
    assert ric.mergekit_config(recipe, "b", {"ric": "R"}) == {
        "merge_method": "passthrough",
        "models": [{"model": "R"}],
    }
    with pytest.raises(ValueError, match="the RiC model itself, one checkpoint"):
        ric.mergekit_config(recipe, "b", {})


def test_preference_mappings_follow_the_paper():
    low, high = [-2.0, -1.0], [2.0, 3.0]
    np.testing.assert_allclose(preference_to_rewards([1, 0], low, high, "l2"), [2.0, -1.0])
    np.testing.assert_allclose(preference_to_rewards([0.6, 0.8], low, high, "l2"), [0.4, 2.2])
    np.testing.assert_allclose(preference_to_rewards([0.7, 0.3], low, high, "linf"), [2.0, 1.4])
    np.testing.assert_allclose(
        preference_to_rewards([0.25, 0.75], low, high, "linear"), [-1.0, 2.0]
    )
    # a reward wanted low: the same share from the top of its range down
    minimised = ("max", "min")
    np.testing.assert_allclose(
        preference_to_rewards([1, 0], low, high, "l2", minimised), [2.0, 3.0]
    )
    np.testing.assert_allclose(
        preference_to_rewards([0.6, 0.8], low, high, "l2", minimised), [0.4, -0.2]
    )
    np.testing.assert_allclose(
        preference_to_rewards([0.25, 0.75], low, high, "linear", minimised), [-1.0, 0.0]
    )
    with pytest.raises(ValueError, match="senses: one of max, min per reward"):
        preference_to_rewards([0.5, 0.5], low, high, "l2", ("max", "down"))
    p = condition(
        __import__("merging.data", fromlist=["Prompt"]).Prompt(({"role": "user", "content": "q"},)),
        ["a"],
        [0.04],
    )
    assert p.last_user == "q\n\n<a> 0.0"
    assert conditioning(["a", "b"], [-0.04, -1.25]) == "<a> 0.0 <b> -1.2"  # never "-0.0"


def test_level_words_follow_the_written_score():
    words = [("lo", "mid", "hi"), ("x", "y", "z")]
    # the word is a function of the score as written: -0.34 is written -0.3, not below the cut
    assert conditioning(["a", "b"], [-0.34, 0.36], words) == "<a> -0.3 (mid) <b> 0.4 (z)"
    assert conditioning(["a", "b"], [-1.2, 0.0], words) == "<a> -1.2 (lo) <b> 0.0 (y)"
    assert [level_word(v, words[0]) for v in (-0.4, -0.3, 0.0, 0.3, 0.4)] == [
        "lo",
        "mid",
        "mid",
        "mid",
        "hi",
    ]
    with pytest.raises(ValueError, match="2 sets of level words for 1 rewards"):
        RiCSpec(rewards=("a",), mean=(0,), std=(1,), low=(-1,), high=(1,), words=words)
    old = RiCSpec(rewards=("a",), mean=(0,), std=(1,), low=(-1,), high=(1,))
    assert old.words is None  # RiC models saved before level words: scores only


def test_zoo_cli_show(tiny_zoo, capsys):
    from merging.cli import main

    _, out = tiny_zoo
    assert main(["zoo", "show", "--preset", "tiny", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "tiny"
    assert main(["zoo", "show", "--preset", "tiny", "--out", str(out / "nowhere")]) == 2
    assert "paretomerge zoo build --preset tiny" in capsys.readouterr().err


def test_ric_retrain_benchmark_trains_a_new_ric_model_on_the_saved_answers(tiny_zoo, tmp_path):
    """experiments/ric/ric_retrain.py: the zoo's saved answers, the preset's recipe, more steps; the
    new folder is a zoo whose manifest differs from the source in its RiC model only."""
    import os
    import subprocess
    import sys

    manifest, _ = tiny_zoo
    repo = Path(__file__).parents[3]
    script = repo / "experiments" / "ric" / "ric_retrain.py"
    out = tmp_path / "retrained"
    argv = [sys.executable, str(script), "--preset", "tiny", "--zoo", manifest.folder]
    subprocess.run(
        [
            *argv,
            *("--out", str(out), "--steps", "3", "--batch-size", "2", "--device", "cpu"),
            *("--marker-weights", "0,1,1", "--random-batches", "--contrast-tokens", "2,6,2"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(repo)},  # this checkout's merging, not an install
    )
    record = json.loads((out / "ric" / "step.json").read_text())
    metrics = record["metrics"]
    assert record["training"]["steps"] == 3  # the settings it trained with, the preset's and ours
    assert record["training"]["contrast_tokens"] == [2, 6, 2]
    assert record["training"]["batch_size"] == 2 != PRESETS["tiny"].ric_batch
    assert record["training"]["lora_rank"] == PRESETS["tiny"].lora_rank
    answers = json.loads((Path(manifest.ric) / "answers.json").read_text())
    assert metrics["steps"] == 3
    assert metrics["marker_weights"] == [0.0, 1.0, 1.0]
    assert metrics["one_marker"] == 0.5
    assert metrics["length_batches"] is False
    assert set(metrics["final_margin_nats_by_reward"]) == {
        "helpfulness",
        "harmlessness",
        "verbosity",
    }
    assert metrics["examples"] == len(answers["experts"]) * len(answers["prompts"])
    new = load_zoo("tiny", out)
    assert new.ric == str((out / "ric").resolve()) != manifest.ric
    unchanged = {"ric", "folder"}
    assert new.model_dump(exclude=unchanged) == manifest.model_dump(exclude=unchanged)
    assert RiCSpec.load(new.ric) == RiCSpec.load(manifest.ric)  # same answers, same scores
    assert (out / "ric" / "adapter_model.safetensors").is_file()
    again = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
    assert again.returncode != 0
    assert "exists already" in again.stderr


def test_build_estimates_say_what_machine_they_are_for(monkeypatch):
    from merging.zoo.presets import SLOWDOWN
    from merging.zoo.progress import estimate_basis

    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "0")
    monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: False)
    assert estimate_basis("smol", "cpu") == (SLOWDOWN["avx2"], "2 CPU cores without AVX-512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: True)
    assert estimate_basis("smol", "cpu") == (1.0, "2 CPU cores with AVX-512")
    assert estimate_basis("tiny", "cpu") == (1.0, "2 CPU cores")
    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "1")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert estimate_basis("smol", "cpu") == (
        SLOWDOWN["bfloat16"],
        "2 CPU cores with native bfloat16",
    )
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert estimate_basis("smol", "cpu") == (
        SLOWDOWN["emulated"],
        "2 CPU cores emulating bfloat16, a rough guess",
    )
    monkeypatch.setattr(merging.device, "resolve_device", lambda device: torch.device("cuda"))
    assert estimate_basis("smol", "cuda") == (1.0, "2 CPU cores; cuda is usually faster")


def test_bfloat16_is_native_only_with_avx512_bf16_or_amx_not_where_onednn_emulates_it(monkeypatch):
    # oneDNN says yes on any AVX-512 CPU; only the instruction sets that compute bfloat16 count
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    for bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert merging.device.cpu_bfloat16_native() is native
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert merging.device.cpu_bfloat16_native() is False  # a torch without the checks


def test_the_zoo_builds_in_float32_on_every_cpu_kind_unless_bfloat16_is_asked_for(monkeypatch):
    """One recipe on every CPU: float32 by default, native bfloat16 or not; bfloat16 with
    PARETOMERGE_CPU_BFLOAT16=1 (on any CPU, to run a machine as the other kind), or auto where
    the CPU computes it natively."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    for native in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=native: v)
        monkeypatch.delenv("PARETOMERGE_CPU_BFLOAT16", raising=False)
        assert merging.device.build_in_bfloat16("cpu") is False
        for value, want in (("0", False), ("1", True), ("", False), ("auto", native)):
            monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", value)
            assert merging.device.build_in_bfloat16("cpu") is want
    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "1")
    assert merging.device.build_in_bfloat16("meta") is False  # only CPUs and CUDA
    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "yes")
    with pytest.raises(ValueError, match=r"write 0 \(float32\), 1 \(bfloat16\) or auto"):
        merging.device.build_in_bfloat16("cpu")


def test_a_bad_bfloat16_setting_stops_the_build_before_it_writes(tmp_path, monkeypatch, capsys):
    from merging.cli import main

    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "yes")
    out = tmp_path / "zoo"
    assert main(["zoo", "build", "--preset", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "PARETOMERGE_CPU_BFLOAT16='yes'" in err
    assert not out.exists()
