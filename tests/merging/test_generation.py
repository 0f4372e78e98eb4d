from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from merging.data import Prompt
from merging.generation import GenerationSettings, generate, render, stop_token_ids

PROMPTS = [
    Prompt(({"role": "user", "content": " ".join(f"w{7 + (i * j) % 80}" for j in range(n))},))
    for i, n in enumerate([3, 9, 5, 14, 2, 7, 11])
]


@pytest.fixture(scope="module")
def policy(model_zoo):
    base, _ = model_zoo("llama", 2)
    return AutoModelForCausalLM.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)


def test_chat_template_and_stop_tokens(policy):
    model, tok = policy
    text = render(tok, PROMPTS[0])
    assert text.startswith("<|im_start|>user w7")
    assert text.endswith("<|im_start|>assistant ")
    stops = stop_token_ids(tok, model)
    assert tok.convert_tokens_to_ids("<|im_end|>") in stops
    assert tok.eos_token_id in stops


@pytest.mark.parametrize("do_sample", [False, True])
def test_same_policy_prompts_and_seed_give_the_same_generations(policy, do_sample):
    model, tok = policy
    settings = GenerationSettings(max_new_tokens=8, do_sample=do_sample, batch_size=3, seed=4)
    first = generate(model, tok, PROMPTS, settings)
    second = generate(model, tok, PROMPTS, settings)
    assert first == second
    assert len(first) == len(PROMPTS)
    assert all(isinstance(r, str) for r in first)
    if do_sample:
        other = generate(model, tok, PROMPTS, settings.model_copy(update={"seed": 5}))
        assert other != first


def test_batched_greedy_matches_one_at_a_time(policy):
    model, tok = policy
    settings = GenerationSettings(max_new_tokens=6, batch_size=4)
    batched = generate(model, tok, PROMPTS, settings)
    single = generate(model, tok, PROMPTS, settings.model_copy(update={"batch_size": 1}))
    assert batched == single


def test_progress_is_reported(policy):
    model, tok = policy
    seen = []
    generate(
        model,
        tok,
        PROMPTS,
        GenerationSettings(max_new_tokens=2, batch_size=3),
        progress=seen.append,
    )
    assert sum(seen) == len(PROMPTS)


def test_cpu_batch_is_capped_by_its_kv_cache(policy):
    from types import SimpleNamespace

    from merging.generation import CPU_BATCH, CPU_CACHE_BYTES, auto_batch_size

    model, _ = policy
    cpu, settings = torch.device("cpu"), GenerationSettings(max_new_tokens=96)
    assert auto_batch_size(model, cpu, 1000, settings) == CPU_BATCH
    assert auto_batch_size(model, cpu, 5, settings) == 5
    # a 7B-sized cache in float32: 32 layers, 8 KV heads of 128, 512 + 96 tokens
    big = SimpleNamespace(
        config=SimpleNamespace(
            num_hidden_layers=32, num_key_value_heads=8, head_dim=128, vocab_size=32000
        ),
        parameters=lambda: iter([torch.zeros(1)]),
    )
    per_sequence = 2 * 32 * 8 * 128 * 608 * 4 + 32000 * 4
    assert auto_batch_size(big, cpu, 1000, settings) == CPU_CACHE_BYTES // per_sequence == 13
