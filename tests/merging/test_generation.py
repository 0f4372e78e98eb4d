from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from merging.data import Prompt
from merging.generation import (
    GenerationSettings,
    generate,
    generate_finished,
    greedy_decode,
    plain_greedy,
    render,
    stop_token_ids,
)

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


def _left_padded(tok, prompts):
    tok.padding_side = "left"
    ids = [tok(render(tok, p), add_special_tokens=False)["input_ids"] for p in prompts]
    return tok.pad({"input_ids": ids}, padding=True, return_tensors="pt")


def _until_stop(rows: list[list[int]], stops: set[int]) -> list[list[int]]:
    return [row[: next((i + 1 for i, t in enumerate(row) if t in stops), len(row))] for row in rows]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # rotary and learned positions
def test_greedy_decode_is_transformers_greedy_search_with_rows_leaving(model_zoo, arch):
    """Rows leave the batch (and the cache) as they stop, at different steps; every row's tokens
    are still those of transformers' ``generate``, up to and including its stop token. (The
    tiny Qwen2's tokenizer reads these prompts as the same three tokens: no rows to tell apart.)"""
    base, _ = model_zoo(arch, 2)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # GPT-2's initial scale: the fixture's answers hardly differ by row
        for name, weight in model.named_parameters():
            if "norm" not in name and "ln_" not in name:
                weight.normal_(0, 0.02)
    tok = AutoTokenizer.from_pretrained(base)
    assert plain_greedy(model)
    batch = _left_padded(tok, PROMPTS)
    free = greedy_decode(model, batch["input_ids"], batch["attention_mask"], 12, [-1])
    assert {len(r) for r in free} == {12}
    tokens = sorted({t for row in free for t in row})
    stops = max(  # the one or two tokens whose first places differ most from row to row
        ({a, b} for a in tokens for b in tokens),
        key=lambda s: len({len(r) for r in _until_stop(free, s)}),
    )
    mine = greedy_decode(model, batch["input_ids"], batch["attention_mask"], 12, sorted(stops))
    lengths = {len(r) for r in mine}
    assert len(lengths) >= 2, mine
    assert min(lengths) < 12, mine
    theirs = model.generate(
        **batch,
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=sorted(stops),
        pad_token_id=tok.pad_token_id,
    )[:, batch["input_ids"].shape[1] :].tolist()
    assert mine == _until_stop(theirs, stops)
    assert mine == _until_stop(free, stops)


def test_a_generation_config_with_a_penalty_is_decoded_by_transformers(model_zoo):
    """A repetition penalty in the model's generation config is not a plain argmax: generation
    then goes through transformers' ``generate``, which applies it."""
    base, _ = model_zoo("llama", 2)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    tok = AutoTokenizer.from_pretrained(base)
    settings = GenerationSettings(max_new_tokens=10, batch_size=len(PROMPTS))
    plain = generate(model, tok, PROMPTS, settings)
    model.generation_config.repetition_penalty = 3.0
    assert not plain_greedy(model)
    penalised, _ = generate_finished(model, tok, PROMPTS, settings)
    batch = _left_padded(tok, PROMPTS)
    stops = stop_token_ids(tok, model)
    out = model.generate(
        **batch, max_new_tokens=10, do_sample=False, eos_token_id=stops, pad_token_id=0
    )[:, batch["input_ids"].shape[1] :]
    expected = [tok.decode(row, skip_special_tokens=True).strip() for row in out]
    assert penalised == expected
    assert penalised != plain
