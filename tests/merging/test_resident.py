"""The resident merger: in place, views into one buffer, flat memory."""

from __future__ import annotations

import itertools

import numpy as np
import psutil
import pytest
import torch

from merging.architecture import layer_map
from merging.expert_set import ExpertSet
from merging.resident import ResidentMerger
from tests.merging.conftest import build_model, tiny_config


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A Llama large enough (about 2.6M parameters, 10 MB) for a leak to show."""
    root = tmp_path_factory.mktemp("wide")
    cfg = tiny_config("llama")
    cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers = 256, 512, 6
    base = build_model("llama", root / "base", 0, config=cfg)
    experts = {f"e{i}": build_model("llama", root / f"e{i}", 10 + i, base=base) for i in range(3)}
    return ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")


def test_parameters_are_views_of_one_buffer(wide):
    start, end = wide.flat.data_ptr(), wide.flat.data_ptr() + wide.flat.numel() * 4
    for _, p in wide.model.named_parameters():
        assert start <= p.data_ptr() < end


def test_merged_model_computes_with_the_merged_weights(wide, model_zoo):
    from transformers import AutoModelForCausalLM

    base, experts = model_zoo("qwen2", 3)
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    merger.set_linear([0.2, 0.5, 0.3])
    fresh = AutoModelForCausalLM.from_pretrained(base)
    fresh.load_state_dict({k: v.clone() for k, v in merger.state_dict().items()}, strict=False)
    ids = torch.randint(0, 96, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(merger.model(ids).logits, fresh(ids).logits)
    # and the merge is exactly sum_i w_i theta_i of the experts
    thetas = [merger.expert_state(i) for i in (1, 2, 3)]
    for name, value in merger.state_dict().items():
        mix = 0.2 * thetas[0][name] + 0.5 * thetas[1][name] + 0.3 * thetas[2][name]
        torch.testing.assert_close(value, mix, atol=1e-6, rtol=0)


def test_block_ranges_follow_array_split(wide):
    lm = layer_map(wide.model.config)
    assert lm.num_layers == 6
    for blocks in range(1, 7):
        ranges = wide.block_ranges(blocks)
        assert ranges[0][0] == 0
        assert ranges[-1][1] == wide.numel
        for (_, hi), (lo, _) in itertools.pairwise(ranges):
            assert hi == lo
        sizes = [len(a) for a in np.array_split(np.arange(6), blocks)]
        assert list(np.bincount(lm.block_of_layer(blocks))) == sizes


def test_one_hundred_merges_leave_memory_flat(wide):
    proc = psutil.Process()
    rng = np.random.default_rng(0)
    for _ in range(5):  # warm-up: allocator pools, lazily created kernels
        wide.set_linear(rng.dirichlet(np.ones(3)))
        wide.set_blockwise(rng.dirichlet(np.ones(3), size=3))
    before = proc.memory_info().rss
    ptr = wide.flat.data_ptr()
    for _ in range(100):
        wide.set_linear(rng.dirichlet(np.ones(3)))
        wide.set_blockwise(rng.dirichlet(np.ones(3), size=3))
    growth = proc.memory_info().rss - before
    model_bytes = wide.numel * 4
    assert wide.flat.data_ptr() == ptr
    assert growth < 0.2 * model_bytes, f"RSS grew {growth / 2**20:.1f} MiB over 100 merges"


def test_linear_with_a_base_weight_is_task_arithmetic(model_zoo):
    from merging.families import make_family

    base, experts = model_zoo("llama", 3)
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    w, lam = np.array([0.3, 0.9, 0.5]), 0.8
    ta = make_family("task_arithmetic", list(experts), scale=lam)
    ta.apply(ta.recipe(w), merger)  # mergekit's code
    want = {k: v.clone() for k, v in merger.state_dict().items()}
    merger.set_linear(lam * w, base_weight=1 - lam * w.sum())
    for name, value in merger.state_dict().items():
        torch.testing.assert_close(value, want[name], atol=1e-6, rtol=0)
    delta = merger.task_vector(2)
    for name, value in delta.items():
        torch.testing.assert_close(
            merger.expert_state(2)[name] - merger.expert_state(0)[name], value
        )
