"""The memory plan: its decisions for real shapes against given budgets, and its refusals."""

from __future__ import annotations

import pytest

from benchmarks.shapes import LORA_TARGETS, PARAMETERS, config
from merging.plan import PlanError, plan_memory
from merging.sizes import ExpertSize, Generation, ModelShape, activation_bytes

GB = 10**9


@pytest.fixture(scope="module")
def shapes():
    """Meta-device models of the three real shapes (no memory, no download)."""
    return {name: ModelShape.from_config(config(name)) for name in PARAMETERS}


def full(n):
    return [ExpertSize(f"e{i}") for i in range(n)]


def lora(shape, n, rank=16):
    return [ExpertSize.lora_of_shape(f"l{i}", shape, rank, LORA_TARGETS) for i in range(n)]


def test_shapes_have_the_published_parameter_counts(shapes):
    for name, count in PARAMETERS.items():
        assert shapes[name].numel == count


def test_three_bfloat16_8b_experts_are_resident_on_an_h200(shapes):
    s = shapes["llama-3-8b"]
    plan = plan_memory(
        s, full(3), device="cuda:0", dtype="bfloat16", device_free=139 * GB, host_free=120 * GB
    )
    assert plan.way == "resident"
    assert plan.device_bytes == plan.resident_bytes == 5 * s.numel * 2  # base, 3, working
    assert plan.host_bytes == 0


def test_8b_on_an_80gb_device_streams_from_host_memory_or_maps_the_files(shapes):
    s = shapes["llama-3-8b"]
    gen = Generation(n_prompts=64, batch_size=16)
    kwargs = {"device": "cuda:0", "dtype": "bfloat16", "device_free": 80 * GB, "generation": gen}
    plan = plan_memory(s, full(3), host_free=200 * GB, **kwargs)
    assert plan.way == "streamed"
    assert plan.host_bytes == 4 * s.numel * 2  # base and three experts, pinned
    assert plan.resident_bytes > 80 * GB > plan.device_bytes
    # too little host memory for four copies: the files are read in place
    plan = plan_memory(s, full(3), host_free=40 * GB, **kwargs)
    assert plan.way == "mmap"
    assert plan.host_bytes < GB  # two pinned staging buffers
    assert plan.rows == "file"
    # with the base in a GGUF file (not mappable) nothing fits: refused in one line
    with pytest.raises(PlanError) as err:
        plan_memory(s, full(3), host_free=40 * GB, base_mappable=False, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert "streamed" in message
    assert "would fit: 1 expert(s) instead of 3" in message


def test_lora_experts_stay_factorised_when_the_expanded_set_does_not_fit(shapes):
    s = shapes["llama-3-8b"]
    experts = lora(s, 3)
    # r * (d_in + d_out) values per adapted weight, per expert
    per_layer = 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + 3 * (4096 + 14336))
    assert experts[0].factor_values == 32 * per_layer
    plan = plan_memory(
        s, experts, device="cuda:0", dtype="bfloat16", device_free=40 * GB, host_free=40 * GB
    )
    assert plan.way == "factorised"
    factors = [c for c in plan.components if "LoRA" in c.what]
    assert [c.nbytes for c in factors] == [32 * per_layer * 4] * 3
    assert plan.device_bytes == 2 * s.numel * 2 + 3 * 32 * per_layer * 4


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_1_5b_float32_experts_on_a_cpu_budget(shapes, n):
    """Resident while (n + 2) copies fit in 40 GB; then the files are mapped."""
    s = shapes["qwen2.5-1.5b"]
    copies = (n + 2) * s.numel * 4
    plan = plan_memory(
        s, full(n), device="cpu", dtype="float32", device_free=40 * GB, host_free=40 * GB
    )
    assert plan.way == ("resident" if copies <= 40 * GB else "mmap")
    assert plan.resident_bytes == copies
    if plan.way == "mmap":
        assert plan.device_bytes == s.numel * 4 + 1 * (1 + n) * (1 << 18) * 4  # one staging
    # the machine: 24 GB never holds three float32 1.5B experts resident
    small = plan_memory(
        s, full(n), device="cpu", dtype="float32", device_free=24 * GB, host_free=24 * GB
    )
    assert small.way == "mmap"
    lo = plan_memory(
        s, lora(s, n), device="cpu", dtype="float32", device_free=24 * GB, host_free=24 * GB
    )
    assert lo.way == "factorised"  # working model and base, factors beside them
    assert lo.device_bytes < 2 * s.numel * 4 + n * 0.1 * GB


def test_the_smol_zoo_stays_resident_as_today(shapes):
    """The quickstart's three rank-16 LoRA experts on 135M: the resident (expanded) way."""
    s = shapes["smollm2-135m"]
    gen = Generation(n_prompts=12, batch_size="auto", prompt_tokens=512, new_tokens=80)
    plan = plan_memory(
        s,
        lora(s, 3),
        device="cpu",
        dtype="float32",
        device_free=16 * GB,
        host_free=16 * GB,
        generation=gen,
        heads_bytes=2 * 91 * 10**6,
    )
    assert plan.way == "resident"
    assert plan.batch == 12  # generation's own rule: min(64, prompts, 2 GiB of KV cache)
    kv = next(c for c in plan.components if c.what.startswith("KV"))
    assert kv.nbytes == 12 * 2 * 30 * 3 * 64 * 592 * 4


def test_the_automatic_batch_follows_generation_s_rule(shapes):
    from merging.generation import batch_that_fits

    s = shapes["llama-3-8b"]
    gen = Generation(n_prompts=1000)
    plan = plan_memory(
        s,
        full(2),
        device="cuda:0",
        dtype="bfloat16",
        device_free=100 * GB,
        host_free=100 * GB,
        generation=gen,
    )
    per_sequence = s.kv_bytes(2, 608) + s.vocab * 4
    taken = 4 * s.numel * 2
    assert plan.batch == batch_that_fits("cuda", 1000, per_sequence, 100 * GB - taken)
    act = next(c for c in plan.components if c.what.startswith("activations"))
    assert act.nbytes == activation_bytes(s, plan.batch, 512, 2, True)


def test_a_smaller_batch_is_suggested_when_the_cache_is_what_does_not_fit(shapes):
    s = shapes["qwen2.5-1.5b"]
    gen = Generation(n_prompts=256, batch_size=256)
    with pytest.raises(PlanError, match=r"would fit: a batch of (\d+)") as err:
        plan_memory(
            s,
            lora(s, 3),
            device="cuda:0",
            dtype="bfloat16",
            device_free=12 * GB,
            host_free=64 * GB,
            generation=gen,
        )
    batch = int(err.value.args[0].split("a batch of ")[1].split(" ")[0])
    plan = plan_memory(
        s,
        lora(s, 3),
        device="cuda:0",
        dtype="bfloat16",
        device_free=12 * GB,
        host_free=64 * GB,
        generation=Generation(256, batch),
    )
    assert plan.device_bytes <= 12 * GB


def test_impossible_and_forced_placements_are_one_line(shapes):
    s = shapes["llama-3-8b"]
    with pytest.raises(PlanError) as err:
        plan_memory(
            s, full(3), device="cuda:0", dtype="float32", device_free=10 * GB, host_free=500 * GB
        )
    message = str(err.value)
    assert "\n" not in message
    assert "working model (8.03B values) 32.12 GB" in message
    assert "--dtype bfloat16" in message
    assert "a device with more than 32.12 GB" in message
    with pytest.raises(PlanError, match="no expert is a LoRA adapter"):
        plan_memory(
            s,
            full(3),
            device="cuda:0",
            dtype="bfloat16",
            device_free=200 * GB,
            host_free=200 * GB,
            placement="factorised",
        )
    with pytest.raises(PlanError, match="not a safetensors file"):
        plan_memory(
            s,
            full(3),
            device="cuda:0",
            dtype="bfloat16",
            device_free=200 * GB,
            host_free=200 * GB,
            placement="mmap",
            base_mappable=False,
        )
    forced = plan_memory(
        s,
        full(3),
        device="cuda:0",
        dtype="bfloat16",
        device_free=200 * GB,
        host_free=200 * GB,
        placement="mmap",
    )
    assert forced.way == "mmap"


def test_mergekit_families_reserve_one_whole_tensor_of_every_expert(shapes):
    s = shapes["llama-3-8b"]
    kwargs = {
        "device": "cuda:0",
        "dtype": "bfloat16",
        "device_free": 139 * GB,
        "host_free": 139 * GB,
    }
    plain = plan_memory(s, full(3), **kwargs)
    whole = plan_memory(s, full(3), whole_tensors=True, **kwargs)
    assert whole.device_bytes - plain.device_bytes == 5 * 128256 * 4096 * 4


def test_a_second_expert_set_is_planned_beside_the_first(shapes):
    s = shapes["qwen2.5-1.5b"]
    kwargs = {"device": "cuda:0", "dtype": "bfloat16", "host_free": 64 * GB}
    first = plan_memory(s, full(3), device_free=24 * GB, **kwargs)
    assert first.way == "resident"  # 5 copies of 3.1 GB
    assert first.merger_device_bytes == 5 * s.numel * 2
    alone = plan_memory(s, lora(s, 1), device_free=24 * GB, **kwargs)
    assert alone.way == "resident"
    second = plan_memory(
        s, lora(s, 1), device_free=24 * GB, reserved=first.merger_device_bytes, **kwargs
    )
    assert second.way == "factorised"  # 3 more copies no longer fit beside the first set
    assert second.device_bytes == first.merger_device_bytes + 2 * s.numel * 2 + sum(
        c.nbytes for c in second.components if "LoRA" in c.what
    )


def test_adapters_that_adapt_nothing_are_refused_in_one_line_not_a_crash(shapes):
    """A LoRA expert whose factors match no module (GPT-2 with Llama targets) has 0 bytes of
    rows; the refusal's suggestions once divided by them (ZeroDivisionError)."""
    s = shapes["llama-3-8b"]
    empty = [ExpertSize(f"l{i}", lora=True, factor_values=0, rank=16) for i in range(3)]
    with pytest.raises(PlanError) as err:
        plan_memory(
            s, empty, device="cuda:0", dtype="bfloat16", device_free=10 * GB, host_free=12 * GB
        )
    assert "\n" not in str(err.value)
    assert "instead of 3" not in str(err.value)  # dropping an empty expert frees nothing
