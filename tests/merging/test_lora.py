"""LoRA experts: their deltas equal the merged adapters', modules_to_save included."""

from __future__ import annotations

import pytest
import torch

from merging.checkpoints import inspect_checkpoint
from merging.expert_set import ExpertSet
from merging.resident import ResidentMerger
from tests.merging.conftest import make_lora


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
