from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from merging import evaluate as evaluate_module
from merging.cli import main
from merging.data import Prompt
from merging.evaluate import Evaluator, Objective, parse_objective
from merging.generation import GenerationSettings

PROMPTS = [Prompt(({"role": "user", "content": f"w{10 + i} w{30 + 2 * i}"},)) for i in range(6)]
OBJECTIVES = [Objective(name="verbosity", head="length_tokens", sense="min"),
              Objective(name="near20", head="target_length:20", sense="min")]  # fmt: skip


@pytest.fixture(scope="module")
def policy(model_zoo):
    base, _ = model_zoo("llama", 2)
    return AutoModelForCausalLM.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)


def test_parse_objective():
    assert parse_objective("v=target_length:30:min") == Objective(
        name="v", head="target_length:30", sense="min"
    )
    with pytest.raises(ValueError, match="NAME=HEAD:SENSE"):
        parse_objective("verbosity:min")
    with pytest.raises(ValueError, match="sense 'best'"):
        parse_objective("v=length_tokens:best")


def test_twice_identical_and_cached(policy, tmp_path, monkeypatch):
    model, tok = policy
    settings = GenerationSettings(max_new_tokens=12, batch_size=4)
    ev = Evaluator(PROMPTS, OBJECTIVES, settings, cache_dir=tmp_path)
    first = ev.evaluate(model, tok, {"model": "tiny"})
    assert not first.cached
    fresh = Evaluator(PROMPTS, OBJECTIVES, settings, cache_dir=tmp_path, use_cache=False)
    again = fresh.evaluate(model, tok, {"model": "tiny"})
    assert again.objectives == first.objectives
    assert again.responses == first.responses
    # mean and standard error are those of the per-prompt scores
    lengths = np.array(first.scores["verbosity"])
    assert first.objectives["verbosity"].mean == pytest.approx(lengths.mean())
    assert first.objectives["verbosity"].stderr == pytest.approx(lengths.std(ddof=1) / np.sqrt(6))
    np.testing.assert_allclose(first.scores["near20"], np.abs(lengths - 20))

    def boom(*args, **kwargs):
        raise AssertionError("a cached evaluation must not generate")

    monkeypatch.setattr(evaluate_module, "generate", boom)
    cached = ev.evaluate(model, tok, {"model": "tiny"})
    assert cached.cached
    assert cached.objectives == first.objectives
    with pytest.raises(AssertionError, match="must not generate"):
        ev.evaluate(model, tok, {"model": "another"})


def test_evaluate_cli_json(model_zoo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PARETOMERGE_CACHE", str(tmp_path / "cache"))
    base, experts = model_zoo("llama", 2)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p.last_user}) for p in PROMPTS))
    argv = ["evaluate", "--base", str(base), "--family", "interpolation", "--weights", "0.5,0.5",
            "--prompts", str(prompts), "--objective", "verbosity=length_tokens:min",
            "--max-new-tokens", "8", "--device", "cpu", "--json"]  # fmt: skip
    for name, path in experts.items():
        argv += ["--expert", f"{name}={path}"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"objectives", "samples", "eval_hash"}
    assert out["objectives"]["verbosity"]["sense"] == "min"
    assert set(out["samples"][0]) == {"prompt", "response", "scores"}
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cached"] is True
    assert again["objectives"] == out["objectives"]
    # a different weight is a different policy
    argv[argv.index("0.5,0.5")] = "0.9,0.1"
    assert main(argv) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["eval_hash"] != out["eval_hash"]
    assert main(["evaluate", "--model", str(base), "--prompts", str(prompts), "--objective",
                 "v=length_tokens:min", "--max-new-tokens", "4", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["objectives"]["v"]["n"] == 6


def test_prompt_transform_reaches_generation_but_not_the_heads(policy, tmp_path, monkeypatch):
    model, tok = policy
    seen = {}

    def fake_generate(model, tokenizer, prompts, settings, progress=None):
        seen["prompts"] = [p.last_user for p in prompts]
        return ["w7 w8"] * len(prompts)

    monkeypatch.setattr(evaluate_module, "generate", fake_generate)
    ev = Evaluator(PROMPTS[:2], OBJECTIVES, cache_dir=tmp_path)
    from merging.ric import condition

    ev.evaluate(
        model, tok, {"m": 1}, prompt_transform=lambda p: condition(p, ["verbosity"], [-1.0])
    )
    assert seen["prompts"] == [f"{p.last_user}\n\n<verbosity> -1.0" for p in PROMPTS[:2]]


def test_evaluate_a_decoding_mixture_and_refuse_to_merge_one(
    model_zoo, tmp_path, capsys, monkeypatch
):
    """``evaluate --family decoding`` with one-hot weights scores the expert itself (the same
    responses as ``--model EXPERT``); ``merge --family decoding`` refuses in one line, writing
    nothing."""
    monkeypatch.setenv("PARETOMERGE_CACHE", str(tmp_path / "cache"))
    base, experts = model_zoo("llama", 2)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p.last_user}) for p in PROMPTS))
    common = ["--prompts", str(prompts), "--objective", "verbosity=length_tokens:min",
              "--max-new-tokens", "8", "--device", "cpu", "--json"]  # fmt: skip
    argv = ["evaluate", "--base", str(base), "--family", "decoding", "--weights", "0,1", *common]
    for name, path in experts.items():
        argv += ["--expert", f"{name}={path}"]
    assert main(argv) == 0
    mixed = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(experts["e1"]), *common]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert [s["response"] for s in mixed["samples"]] == [s["response"] for s in alone["samples"]]
    assert mixed["objectives"] == alone["objectives"]
    out = tmp_path / "merged"
    merge = ["merge", "--base", str(base), "--family", "decoding", "--weights", "0.5,0.5",
             "--out", str(out)]  # fmt: skip
    for name, path in experts.items():
        merge += ["--expert", f"{name}={path}"]
    assert main(merge) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "merges no weights" in err[0]
    assert not out.exists()
