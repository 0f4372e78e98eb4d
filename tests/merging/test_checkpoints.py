"""Checkpoints: sharded, remote-code, missing and GGUF checkpoints, read as experts or as a base."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from merging.checkpoints import inspect_checkpoint
from merging.errors import CheckpointError
from merging.expert_set import ExpertSet
from merging.families import make_family
from merging.resident import ResidentMerger
from tests.merging.conftest import save_tokenizer


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
