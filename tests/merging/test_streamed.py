"""The streamed merger: rows on the device, in host memory or in files, and LoRA factorised,
against the resident merger on tiny Llama, Qwen2 (tied embeddings) and GPT-2 models."""

from __future__ import annotations

import numpy as np
import psutil
import pytest
import torch

from merging.expert_set import ExpertSet
from merging.families import make_family
from merging.resident import ResidentMerger
from merging.rows import FileRows, StackRows
from merging.streamed import StreamedMerger
from tests.merging.conftest import build_model, make_lora, tiny_config

ARCHS = ["llama", "qwen2", "gpt2"]
MERGES = [([0.2, 0.5, 0.3], 0.0), ([0.3, 0.9, 0.5], -0.7), ([0.0, 0.0, 0.0], 1.0)]


def small_chunks(merger: StreamedMerger, chunk: int = 100) -> StreamedMerger:
    """Many chunks per tensor, so that chunk edges fall inside every parameter."""
    merger.chunk = chunk
    merger._staging = merger._make_staging()
    return merger


@pytest.fixture(scope="module")
def lora_zoo(tmp_path_factory):
    """Per architecture: a base, two LoRA adapters (one with rsLoRA, one on the embeddings, or
    with modules_to_save), a full expert, and each adapter's merged full form."""
    cache = {}

    def make(arch):
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"lora-{arch}")
            base = build_model(arch, root / "base", 0)
            a = make_lora(base, root / "a", 1, r=4, arch=arch, use_rslora=True)
            if arch == "gpt2":
                b = make_lora(base, root / "b", 2, r=8, arch=arch)
            elif arch == "llama":
                b = make_lora(base, root / "b", 2, r=8, arch=arch, modules_to_save=["lm_head"])
            else:  # Qwen2: the tied embedding adapted
                b = make_lora(
                    base, root / "b", 2, r=8, arch=arch, targets=["embed_tokens", "down_proj"]
                )
            f = build_model(arch, root / "f", 7, base=base)
            cache[arch] = base, a, b, f
        return cache[arch]

    return make


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rows", ["file", "device", "host"])
def test_streamed_full_experts_equal_the_resident_merge_bit_for_bit(model_zoo, arch, rows):
    base, experts = model_zoo(arch, 3)
    es = ExpertSet.from_paths(base, experts)
    resident = ResidentMerger(es, device="cpu")
    streamed = small_chunks(StreamedMerger(es, rows=rows, device="cpu"))
    assert streamed.rows.placement == {"host": "device"}.get(rows, rows)  # a CPU's host memory
    for weights, base_weight in MERGES:
        resident.set_linear(weights, base_weight)
        streamed.set_linear(weights, base_weight)
        assert torch.equal(streamed.flat, resident.flat)
    blocks = np.random.default_rng(0).dirichlet(np.ones(3), size=3)
    resident.set_blockwise(blocks)
    streamed.set_blockwise(blocks)
    assert torch.equal(streamed.flat, resident.flat)
    ties = make_family("ties", list(experts), density=0.5)
    recipe = ties.recipe([0.5, 0.3, 0.4])
    ties.apply(recipe, resident)
    ties.apply(recipe, streamed)
    assert torch.equal(streamed.flat, resident.flat)
    ids = torch.randint(0, 96, (2, 7))
    with torch.no_grad():
        assert torch.equal(streamed.model(ids).logits, resident.model(ids).logits)
    for name, value in resident.state_dict().items():
        assert torch.equal(streamed.state_dict()[name], value)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rows", ["device", "file"])
def test_factorised_lora_equals_the_expanded_merge(lora_zoo, arch, rows):
    base, (a, _), (b, b_merged), f = lora_zoo(arch)
    es = ExpertSet.from_paths(base, {"a": a, "b": b, "f": f})
    expanded = ResidentMerger(es, device="cpu")
    factorised = small_chunks(StreamedMerger(es, rows=rows, device="cpu"), chunk=64)
    assert factorised.full == ("f",)
    assert factorised.lora == ("a", "b")
    merges = [([0.2, 0.5, 0.3], 0.0), ([0.3, 0.9, 0.5], -0.7), ([0.0, 0.0, 0.0], 1.0)]
    for weights, base_weight in merges:
        expanded.set_linear(weights, base_weight)
        factorised.set_linear(weights, base_weight)
        torch.testing.assert_close(factorised.flat, expanded.flat, atol=2e-6, rtol=1e-6)
    blocks = np.random.default_rng(1).dirichlet(np.ones(3), size=2)
    expanded.set_blockwise(blocks)
    factorised.set_blockwise(blocks)
    torch.testing.assert_close(factorised.flat, expanded.flat, atol=2e-6, rtol=1e-6)
    # one adapter alone is PEFT's own merge of it (merge_and_unload)
    factorised.set_linear([0.0, 1.0, 0.0])
    peft_merged = ResidentMerger(ExpertSet.from_paths(base, {"b": b_merged}), device="cpu")
    peft_merged.set_linear([1.0])
    torch.testing.assert_close(factorised.flat, peft_merged.flat, atol=2e-6, rtol=1e-6)
    for family, x in (("ties", [0.5, 0.3, 0.4]), ("dare_ties", [0.6, 0.2, 0.5])):
        fam = make_family(family, ["a", "b", "f"], density=0.6)
        recipe = fam.recipe(x)
        fam.apply(recipe, expanded)
        fam.apply(recipe, factorised)
        torch.testing.assert_close(factorised.flat, expanded.flat, atol=2e-6, rtol=1e-6)


def test_lora_only_sets_touch_only_the_adapted_weights(lora_zoo):
    """Weights no adapter touches are the base's; the factors take r * (d_in + d_out) floats."""
    base, (a, _), _, _ = lora_zoo("llama")
    es = ExpertSet.from_paths(base, {"a": a})
    merger = StreamedMerger(es, rows="file", device="cpu")
    merger.set_linear([1.0])
    base_state = ResidentMerger(es, device="cpu").expert_state(0)
    adapted = set(merger.targets.targets)
    assert adapted == {
        f"model.layers.{i}.{m}.weight"
        for i in range(5)
        for m in ("self_attn.q_proj", "self_attn.v_proj", "mlp.up_proj")
    }
    for name, value in merger.state_dict().items():
        if name not in adapted:
            assert torch.equal(value, base_state[name])
        else:
            assert not torch.equal(value, base_state[name])
    cfg = tiny_config("llama")
    kv = cfg.num_key_value_heads * cfg.hidden_size // cfg.num_attention_heads
    per_layer = 4 * ((32 + 32) + (32 + kv) + (32 + 48))  # r * (d_in + d_out)
    assert merger.targets.nbytes() == 5 * per_layer * 4


def test_bfloat16_sums_in_float32_and_rounds_once(model_zoo):
    """In bfloat16 storage the sum is exact float32 arithmetic rounded once, with float32
    weights (0.3 is not rounded to bfloat16's 0.30078)."""
    base, experts = model_zoo("llama", 3)
    es = ExpertSet.from_paths(base, experts)
    exact = ResidentMerger(es, device="cpu", dtype="float32")
    w = [0.3, 0.45, 0.25]
    thetas = [exact.stack[i].to(torch.bfloat16).float() for i in (1, 2, 3)]
    want = (w[0] * thetas[0] + w[1] * thetas[1] + w[2] * thetas[2]).to(torch.bfloat16)
    for merger in (
        ResidentMerger(es, device="cpu", dtype="bfloat16"),
        StreamedMerger(es, rows="file", device="cpu", dtype="bfloat16"),
    ):
        merger.set_linear(w)
        assert merger.flat.dtype == torch.bfloat16
        diff = (merger.flat.float() - want.float()).abs()
        ulp = want.float().abs() * 2.0**-7
        # a three-term float32 sum is exact to 2 float32 ulps of its terms' magnitudes in any
        # order; CPUs sum in different orders (AMX, AVX-512 or AVX2 kernels), which shows where
        # the terms cancel to nearly 0 and the bfloat16 ulp of the result is no bound
        order = 2 * 2.0**-23 * sum(abs(wi * t) for wi, t in zip(w, thetas, strict=True))
        assert bool((diff <= ulp + order).all())
        assert (diff == 0).float().mean() > 0.99


def test_memory_mapped_merges_do_not_keep_the_experts_in_memory(tmp_path):
    """Reading the experts from their files: the process's memory grows by far less than the
    experts' size over merges (their pages are let go after each chunk)."""
    cfg = tiny_config("llama")
    cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers = 512, 1024, 8
    cfg.vocab_size = 4096
    base = build_model("llama", tmp_path / "base", 0, config=cfg)
    experts = {
        f"e{i}": build_model("llama", tmp_path / f"e{i}", 1 + i, base=base) for i in range(3)
    }
    es = ExpertSet.from_paths(base, experts)
    proc = psutil.Process()
    merger = StreamedMerger(es, rows="file", device="cpu")
    assert isinstance(merger.rows, FileRows)
    expert_bytes = 3 * merger.layout.numel * 4  # about 150 MB
    before = proc.memory_info().rss
    rng = np.random.default_rng(0)
    for _ in range(3):
        merger.set_linear(rng.dirichlet(np.ones(3)))
    grown = proc.memory_info().rss - before
    assert grown < 0.25 * expert_bytes, f"RSS grew {grown / 1e6:.0f} MB"
    stacked = StreamedMerger(es, rows="host", device="cpu")
    assert isinstance(stacked.rows, StackRows)
    stacked.set_linear([0.2, 0.3, 0.5])
    merger.set_linear([0.2, 0.3, 0.5])
    assert torch.equal(stacked.flat, merger.flat)


def test_nan_in_an_expert_file_is_refused_before_any_merge(model_zoo, tmp_path):
    from safetensors.torch import load_file, save_file

    from merging.errors import CheckpointError

    base, experts = model_zoo("llama", 2)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in experts["e1"].iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(bad / "model.safetensors"))
    tensors["model.norm.weight"][3] = float("nan")
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    es = ExpertSet.from_paths(base, {"e0": experts["e0"], "e1": bad})
    for rows in ("file", "device"):
        with pytest.raises(
            CheckpointError, match=r"expert 'e1' \(.*bad\): tensor model.norm.weight has 1"
        ):
            StreamedMerger(es, rows=rows, device="cpu")
