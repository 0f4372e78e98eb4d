"""``paretomerge plan``, and the plan that merge and evaluate print and obey."""

from __future__ import annotations

import pytest
import torch

from merging.cli import main
from tests.merging.conftest import read_folder


def policy_args(base, experts, *extra):
    argv = ["--base", str(base), "--device", "cpu"]
    for name, path in experts.items():
        argv += ["--expert", f"{name}={path}"]
    return [*argv, *extra]


def test_plan_prints_every_component_and_loads_nothing(model_zoo, capsys, monkeypatch):
    import merging.resident
    import merging.streamed

    def refuse(*args, **kwargs):
        raise AssertionError("the plan loaded a merger")

    monkeypatch.setattr(merging.resident.ResidentMerger, "__init__", refuse)
    monkeypatch.setattr(merging.streamed.StreamedMerger, "__init__", refuse)
    base, experts = model_zoo("llama", 3)
    argv = ["plan", *policy_args(base, experts, "--prompts", "10", "--max-new-tokens", "8")]
    assert main([*argv, "--objective", "v=length_tokens:min"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("memory plan: resident on cpu (float32")
    for part in ("working model", "base", "expert e0", "expert e2", "KV cache (batch 10 x 520"):
        assert part in out
    assert main([*argv, "--placement", "mmap"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("memory plan: mmap on cpu")
    assert "expert e1" in out
    assert " file\n" in out


def test_an_impossible_plan_is_one_line_and_exit_2_with_nothing_loaded(
    model_zoo, tmp_path, capsys, monkeypatch
):
    import merging.resident
    import merging.streamed

    def refuse(*args, **kwargs):
        raise AssertionError("a merger was loaded")

    monkeypatch.setattr(merging.resident.ResidentMerger, "__init__", refuse)
    monkeypatch.setattr(merging.streamed.StreamedMerger, "__init__", refuse)
    base, experts = model_zoo("llama", 3)
    out = tmp_path / "never"
    for command in (
        ["plan"],
        ["merge", "--weights", "0.2,0.3,0.5", "--out", str(out)],
        ["evaluate", "--weights", "0.2,0.3,0.5", "--prompts", str(tmp_path / "p.txt")],
    ):
        (tmp_path / "p.txt").write_text("Hello there\nHow are you?\n")
        argv = [*command, *policy_args(base, experts, "--device-memory", "10kB")]
        if command[0] == "evaluate":
            argv += ["--objective", "v=length_tokens:min", "--no-cache"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"paretomerge {command[0]}: error: the experts do not fit even")
        assert "0.00 GB free on cpu" in err
        assert not out.exists()
    assert main(["plan", *policy_args(base, experts, "--device-memory", "lots")]) == 2
    assert "is not an amount of memory" in capsys.readouterr().err


def test_merge_through_each_placement_writes_the_same_weights(model_zoo, tmp_path, capsys):
    base, experts = model_zoo("qwen2", 3)
    written = {}
    for placement in ("resident", "mmap", "streamed"):
        out = tmp_path / placement
        argv = ["merge", *policy_args(base, experts, "--placement", placement)]
        assert main([*argv, "--weights", "0.2,0.3,0.5", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"memory plan: {placement} on cpu" in printed
        written[placement] = read_folder(out)
    for name, value in written["resident"].items():
        assert torch.equal(written["mmap"][name], value), name
        assert torch.equal(written["streamed"][name], value), name


def test_factorised_needs_lora_experts(model_zoo, tmp_path, capsys):
    base, experts = model_zoo("llama", 2)
    argv = ["merge", *policy_args(base, experts, "--placement", "factorised")]
    assert main([*argv, "--weights", "0.5,0.5", "--out", str(tmp_path / "x")]) == 2
    assert "no expert is a LoRA adapter" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["merge", "evaluate", "plan", "worker"])
def test_placement_is_offered_where_a_merger_is_built(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "--placement" in text
    assert "--device-memory" in text
