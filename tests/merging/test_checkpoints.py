"""ExpertSet: LoRA deltas, checks before any compute, and the error messages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from merging.checkpoints import ExpertSet, inspect_checkpoint
from merging.errors import CheckpointError, ExpertMismatchError
from merging.families import make_family
from merging.resident import ResidentMerger
from tests.merging.conftest import build_model, make_lora, save_tokenizer, tiny_config


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_experts_equal_their_merged_forms(model_zoo, tmp_path, arch):
    base, _ = model_zoo(arch, 2)
    a_adapter, a_merged = make_lora(base, tmp_path / "a", 1, r=4, arch=arch)
    b_adapter, b_merged = make_lora(base, tmp_path / "b", 2, r=8, arch=arch, use_rslora=True)
    lora = ResidentMerger(
        ExpertSet.from_paths(base, {"a": a_adapter, "b": b_adapter}), device="cpu"
    )
    full = ResidentMerger(ExpertSet.from_paths(base, {"a": a_merged, "b": b_merged}), device="cpu")
    for w in ([0.3, 0.7], [1.0, 0.0], [0.5, 0.5]):
        lora.set_linear(w)
        full.set_linear(w)
        for name, value in full.state_dict().items():
            torch.testing.assert_close(lora.state_dict()[name], value, atol=1e-6, rtol=0)


def test_lora_with_modules_to_save(model_zoo, tmp_path):
    base, _ = model_zoo("llama", 2)
    adapter, merged = make_lora(
        base, tmp_path / "a", 3, r=2, arch="llama", modules_to_save=["lm_head"]
    )
    ckpt = inspect_checkpoint("a", adapter)
    assert "lm_head.weight" in ckpt.tensors
    lora = ResidentMerger(ExpertSet.from_paths(base, {"a": adapter}), device="cpu")
    full = ResidentMerger(ExpertSet.from_paths(base, {"a": merged}), device="cpu")
    lora.set_linear([1.0])
    full.set_linear([1.0])
    for name, value in full.state_dict().items():
        torch.testing.assert_close(lora.state_dict()[name], value, atol=1e-6, rtol=0)


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


def test_sharded_checkpoints_load(model_zoo, tmp_path):
    from transformers import AutoModelForCausalLM

    base, experts = model_zoo("llama", 2)
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(experts["e1"]).save_pretrained(
        sharded, max_shard_size="20KB"
    )
    save_tokenizer(sharded)
    assert (sharded / "model.safetensors.index.json").is_file()
    a = ResidentMerger(ExpertSet.from_paths(base, {"x": sharded}), device="cpu")
    b = ResidentMerger(ExpertSet.from_paths(base, {"x": experts["e1"]}), device="cpu")
    a.set_linear([1.0])
    b.set_linear([1.0])
    for name, value in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[name], value, atol=0, rtol=0)


def test_remote_code_is_refused_unless_asked(model_zoo, tmp_path):
    base, experts = model_zoo("llama", 2)
    remote = tmp_path / "remote"
    shutil.copytree(experts["e0"], remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (remote / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"refusing.*trust_remote_code"):
        ExpertSet.from_paths(base, {"remote": remote})


def test_weights_off_the_simplex_are_refused(model_zoo):
    fam = make_family("interpolation", ["a", "b"])
    with pytest.raises(ValueError, match=r"sum to 1\.2, not 1"):
        fam.recipe([0.7, 0.5])
    fam = make_family("layerwise", ["a", "b"], blocks=3)
    with pytest.raises(ValueError, match="block 2 weights"):
        fam.recipe([[0.5, 0.5], [0.5, 0.5], [0.9, 0.2]])
    with pytest.raises(ValueError, match="unknown family 'soup'; known: dare_ties"):
        make_family("soup", ["a"])
    with pytest.raises(ValueError, match="has no setting"):
        make_family("interpolation", ["a"], blocks=2)
    np.testing.assert_allclose(
        fam.recipe([[1, 0], [0.5, 0.5], [0, 1]]).block_weights[1], [0.5, 0.5]
    )


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        inspect_checkpoint("x", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        inspect_checkpoint("x", tmp_path / "empty")


def test_gguf_experts_and_base_read_through_transformers(model_zoo, tmp_path):
    from tests.merging.conftest import write_llama_gguf

    base, experts = model_zoo("llama", 2)
    gguf_expert = write_llama_gguf(experts["e1"], tmp_path / "e1.gguf")
    gguf_base = write_llama_gguf(base, tmp_path / "base.gguf")
    ckpt = inspect_checkpoint("e1", gguf_expert)
    assert ckpt.kind == "gguf"
    assert ckpt.architecture == "LlamaForCausalLM"
    reference = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    for b, e1 in ((base, gguf_expert), (gguf_base, experts["e1"]), (gguf_base, gguf_expert)):
        merger = ResidentMerger(
            ExpertSet.from_paths(b, {"e0": experts["e0"], "e1": e1}), device="cpu"
        )
        merger.set_linear([0.25, 0.75])
        reference.set_linear([0.25, 0.75])
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(merger.state_dict()[name], value, atol=1e-6, rtol=0)


def test_a_merge_over_a_gguf_base_can_be_saved(model_zoo, tmp_path):
    from transformers import AutoModelForCausalLM

    from merging.save import save_merged
    from tests.merging.conftest import write_llama_gguf

    base, experts = model_zoo("llama", 2)
    gguf_base = write_llama_gguf(base, tmp_path / "base.gguf")
    merger = ResidentMerger(ExpertSet.from_paths(gguf_base, experts), device="cpu")
    merger.set_linear([0.5, 0.5])
    out = save_merged(merger, tmp_path / "out")
    loaded = dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())
    for name, value in merger.state_dict().items():
        torch.testing.assert_close(loaded[name].detach(), value, atol=0, rtol=0)
