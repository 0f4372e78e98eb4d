from __future__ import annotations

import json

import pytest
import torch

from merging.cli import main
from merging.expert_set import ExpertSet
from merging.families import make_family
from merging.resident import ResidentMerger


def expected_weights(base, experts, family, x, **settings):
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    fam = make_family(family, list(experts), **settings)
    fam.apply(fam.recipe(x), merger)
    return {k: v.clone() for k, v in merger.state_dict().items()}


@pytest.mark.parametrize(
    ("arch", "family", "weights", "x", "settings"),
    [
        ("llama", "interpolation", "0.7,0.3", [0.7, 0.3], {}),
        (
            "gpt2",
            "layerwise",
            "0.9,0.1;0.5,0.5;0.1,0.9",
            [[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]],
            {"blocks": 3},
        ),
        ("qwen2", "ties", "0.6,0.4", [0.6, 0.4], {"density": 0.5}),
    ],
)
def test_merge_writes_a_loadable_folder(
    model_zoo, tmp_path, capsys, arch, family, weights, x, settings
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, experts = model_zoo(arch, 2)
    out = tmp_path / "merged"
    argv = [
        "merge",
        "--base",
        str(base),
        "--family",
        family,
        "--weights",
        weights,
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    for name, path in experts.items():
        argv += ["--expert", f"{name}={path}"]
    if "density" in settings:
        argv += ["--density", str(settings["density"])]
    assert main(argv) == 0, capsys.readouterr().err
    for f in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (out / f).is_file(), f
    recipe = json.loads((out / "paretomerge_recipe.json").read_text())["recipe"]
    assert recipe["family"] == family
    model = AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    want = expected_weights(base, experts, family, x, **settings)
    got = dict(model.named_parameters())
    for name, value in want.items():
        torch.testing.assert_close(got[name].detach(), value, atol=1e-6, rtol=0)
    # refuses to overwrite
    assert main(argv) == 2
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", "0.7,0.5"], "sum to 1.2, not 1"),
        (["--weights", "0.5,0.5", "--family", "soup"], "unknown family 'soup'"),
        (["--weights", "0.5,0.5;0.5,0.5"], "only layerwise has"),
        (["--weights", "0.5,0.5", "--density", "0.3"], "--density does not apply"),
        (
            ["--weights", "1,0;0,1", "--family", "layerwise", "--blocks", "3"],
            "2 group(s) for --blocks 3",
        ),
        (["--weights", "0.2,0.3,0.5"], "Got 3 weights for 2 experts"),
    ],
)
def test_merge_bad_input_exits_2_before_loading(model_zoo, tmp_path, capsys, extra, message):
    base, experts = model_zoo("llama", 2)
    argv = ["merge", "--base", str(base), "--out", str(tmp_path / "o"), *extra]
    for name, path in experts.items():
        argv += ["--expert", f"{name}={path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "o").exists()
