"""ExpertSet: every mismatch with the base reported before any compute, and NaN weights named."""

from __future__ import annotations

import shutil

import pytest

from merging.errors import CheckpointError, ExpertMismatchError
from merging.expert_set import ExpertSet
from merging.resident import ResidentMerger
from tests.merging.conftest import build_model, tiny_config


def test_mismatches_are_all_reported_before_any_merge(model_zoo, tmp_path):
    base, experts = model_zoo("llama", 2)
    other_arch = build_model("gpt2", tmp_path / "gpt2", seed=5)
    cfg = tiny_config("llama")
    cfg.vocab_size = 100
    bigger_vocab = build_model("llama", tmp_path / "vocab", seed=6, config=cfg)
    missing = tmp_path / "missing"
    shutil.copytree(experts["e0"], missing)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(missing / "model.safetensors"))
    del tensors["model.layers.2.mlp.up_proj.weight"]
    save_file(tensors, str(missing / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ExpertMismatchError) as info:
        ExpertSet.from_paths(
            base, {"ok": experts["e0"], "arch": other_arch, "vocab": bigger_vocab, "gone": missing}
        )
    message = str(info.value)
    assert "\n" not in message
    assert "expert 'arch': architecture GPT2LMHeadModel, expected LlamaForCausalLM" in message
    assert "expert 'vocab': vocabulary size 100, expected 96" in message
    assert "expert 'vocab': tokenizer vocabulary differs" in message
    assert (
        "expert 'vocab': tensor model.embed_tokens.weight has shape (100, 32), expected (96, 32)"
        in message
    )
    assert "expert 'gone': tensor model.layers.2.mlp.up_proj.weight is missing" in message
    assert "'ok'" not in message
    assert len(info.value.differences) >= 5


def test_dtype_mismatch_and_nan_weights(model_zoo, tmp_path):
    base, experts = model_zoo("qwen2", 2)
    from safetensors.torch import load_file, save_file

    half = tmp_path / "half"
    shutil.copytree(experts["e0"], half)
    tensors = {k: v.half() for k, v in load_file(str(half / "model.safetensors")).items()}
    save_file(tensors, str(half / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ExpertMismatchError, match="has dtype float16, expected float32"):
        ExpertSet.from_paths(base, {"half": half})
    bad = tmp_path / "nan"
    shutil.copytree(experts["e0"], bad)
    tensors = load_file(str(bad / "model.safetensors"))
    tensors["model.norm.weight"][3] = float("nan")
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    es = ExpertSet.from_paths(base, {"nan": bad})
    with pytest.raises(
        CheckpointError, match=r"expert 'nan' \(.*nan\): tensor model.norm.weight has 1 NaN"
    ):
        ResidentMerger(es, device="cpu")
