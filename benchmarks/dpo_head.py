"""DPO expert training on SmolLM2-135M-Instruct with the compact language-model head (each pair
packed, or its rows apart) against TRL's fused head, side by side in one run.

    python benchmarks/dpo_head.py [--steps 5] [--batch-size 8] [--device cpu] [--data DIR]

On a CPU, TRL's fused head projects every position of a batch (prompts and padding too) onto the
49,152-token vocabulary and folds the tiles with a dozen elementwise passes, and the backward
projects them all again; :func:`merging.zoo.compact_head.add_compact_lm_head`, which the zoo
builder installs there, projects only the answer tokens once, and runs each chosen and rejected
answer as one packed sequence that computes their prompt once
(:func:`merging.zoo.shared_prefix.pack_pairs`). The three runs train the builder's helpfulness
expert recipe (LoRA rank 16, max length 192) on the same HH-RLHF helpful-base pairs from the
same start. Prints seconds per step, the ratios, each run's final DPO loss and reward accuracy,
and the largest difference between each adapter and TRL's.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"


NAMES = {"packed": "compact, pairs packed", "apart": "compact, rows apart", "trl": "TRL's"}


def train_three(pairs, args, tmp: Path) -> dict:
    """The helpfulness expert trained three times from the same start, once with each head:
    ``{head: (metrics, wall seconds, adapter tensors)}``."""
    from safetensors.torch import load_file

    from merging.zoo import PRESETS, compact_head, default_zoo_dir, dpo_expert

    smol = PRESETS["smol"]
    base = default_zoo_dir("smol") / "base"
    if not (base / "config.json").is_file():
        from merging.zoo.base import convert_smollm2

        base = convert_smollm2(tmp / "base")
    real, packs = dpo_expert.add_compact_lm_head, compact_head.masks_per_position
    runs = {}
    try:
        for head in NAMES:
            dpo_expert.add_compact_lm_head = real if head != "trl" else (lambda model: False)
            compact_head.masks_per_position = packs if head == "packed" else (lambda model: False)
            start = time.perf_counter()
            metrics = dpo_expert.train_dpo_expert(
                base,
                pairs,
                tmp / head,
                steps=args.steps,
                batch_size=args.batch_size,
                learning_rate=smol.dpo_learning_rate,
                beta=smol.dpo_beta,
                max_length=smol.max_length,
                lora_rank=smol.lora_rank,
                device=args.device,
            )
            wall = time.perf_counter() - start
            adapter = load_file(tmp / head / "adapter_model.safetensors")
            runs[head] = (metrics, wall, adapter)
    finally:
        dpo_expert.add_compact_lm_head, compact_head.masks_per_position = real, packs
    return runs


def report(runs: dict, steps: int) -> None:
    """Seconds per step and final metrics of each run, the ratios, and how far each compact
    run's adapter lies from TRL's."""
    for head, (metrics, wall, _) in runs.items():
        print(
            f"{NAMES[head]:>21} head: {metrics['seconds'] / steps:6.2f} s a step "
            f"({metrics['seconds']:.1f} s training, {wall:.1f} s in all), "
            f"final loss {metrics['final_loss']:.6f}, "
            f"reward accuracy {metrics['final_reward_accuracy']:.3f}"
        )
    seconds = {head: metrics["seconds"] for head, (metrics, _, _) in runs.items()}
    print(f"compact apart / TRL training time: {seconds['apart'] / seconds['trl']:.2f}x")
    print(f"packed / compact apart training time: {seconds['packed'] / seconds['apart']:.2f}x")
    print(f"packed / TRL training time: {seconds['packed'] / seconds['trl']:.2f}x")
    b = runs["trl"][2]
    scale = max(b[k].abs().max().item() for k in b)
    for head in ("packed", "apart"):
        a = runs[head][2]
        diff = max((a[k] - b[k]).abs().max().item() for k in a)
        print(
            f"largest difference from TRL's adapter, {NAMES[head]}: {diff:.2e} "
            f"(largest weight {scale:.2e})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="example: python benchmarks/dpo_head.py --steps 5",
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=str(SHARED), help="HH-RLHF folder (original layout)")
    args = parser.parse_args()

    from merging.hh_rlhf import locate_hh_rlhf
    from merging.zoo.datasets import HH_FILES, short_pairs

    pairs = short_pairs(locate_hh_rlhf(args.data) / HH_FILES["helpful"])
    random.Random(0).shuffle(pairs)
    pairs = pairs[: args.steps * args.batch_size]
    with tempfile.TemporaryDirectory() as tmp:
        runs = train_three(pairs, args, Path(tmp))
    report(runs, args.steps)


if __name__ == "__main__":
    main()
