"""The rewards-in-context model's training step with one paired pass per answer against the
own and counterfactual passes apart, side by side in one run.

    python benchmarks/ric_pass.py [--steps 10] [--zoo DIR] [--device cpu]

Each RiC step scores every answer under its own scores and the first tokens of it under a
counterfactual's, whose prompt differs from the own one only from one marker on.
:func:`merging.zoo.ric_training.train_ric_lora` puts both in one sequence per answer, the
counterfactual's part seeing the shared start of the prompt and itself only
(:func:`merging.zoo.log_probs.paired_log_probs`), where the attention takes such a mask; apart,
that shared start is computed twice. Both runs train the builder's recipe on the examples built
from a zoo's saved answers (``ric/answers.json``), from the same start, for ``--steps`` steps.
Prints seconds per step, the ratio, each run's final supervised loss and margin, and the largest
difference between the two adapters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="example: python benchmarks/ric_pass.py --steps 10",
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--zoo", help="a built smol zoo (default: the user cache)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from safetensors.torch import load_file

    from merging.data import Prompt
    from merging.zoo import load_zoo, ric_training
    from merging.zoo.presets import PRESETS, ric_data_settings, ric_training_settings
    from merging.zoo.ric_data import REWARDS, build_ric_examples
    from merging.zoo.steps import ANSWERS_FILE

    zoo = load_zoo("smol", args.zoo)
    answers = json.loads((Path(zoo.ric) / ANSWERS_FILE).read_text())
    examples, spec = build_ric_examples(
        [Prompt(tuple(m)) for m in answers["prompts"]],
        answers["responses"],
        answers["finished"],
        {name: Path(zoo.heads[name]) for name in ("helpfulness", "harmlessness")},
        Path(zoo.base),
        **ric_data_settings(PRESETS["smol"]),
    )
    settings = ric_training_settings(PRESETS["smol"]) | {"steps": args.steps}
    real = ric_training.masks_per_position
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("paired", "apart"):
            ric_training.masks_per_position = real if mode == "paired" else (lambda model: False)
            start = time.perf_counter()
            metrics = ric_training.train_ric_lora(
                Path(zoo.base),
                examples,
                REWARDS,
                Path(tmp) / mode,
                **settings,
                words=spec.words,
                device=args.device,
            )
            wall = time.perf_counter() - start
            adapter = load_file(Path(tmp) / mode / "adapter_model.safetensors")
            runs[mode] = (metrics, wall, adapter)
    ric_training.masks_per_position = real
    for mode, (metrics, wall, _) in runs.items():
        print(
            f"{mode:>6}: {metrics['seconds'] / args.steps:6.2f} s a step "
            f"({metrics['seconds']:.1f} s training, {wall:.1f} s in all), "
            f"final supervised loss {metrics['final_loss']:.6f}, "
            f"margin {metrics['final_margin_nats']:.6f} nats"
        )
    (paired, _, a), (apart, _, b) = runs["paired"], runs["apart"]
    print(f"paired / apart training time: {paired['seconds'] / apart['seconds']:.2f}x")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    scale = max(b[k].abs().max().item() for k in b)
    print(f"largest adapter difference: {diff:.2e} (largest weight {scale:.2e})")


if __name__ == "__main__":
    main()
