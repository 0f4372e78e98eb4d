"""Train one zoo expert again on another choice of its DPO pairs, into a copy of the zoo.

    python experiments/expert_pairs.py --expert helpfulness --pairs widest --out /tmp/zoo-w \
        --data ../shared/data/hh-rlhf
    python experiments/zoo_report.py --zoo /tmp/zoo-w --prompts 100 --ric-targets ''

``agreeing``: random pairs the objective's head agrees with (expert recipe 1); ``widest``: the
pairs it agrees with by the widest margins, as many as the preset's steps use (recipe 2, what
the smol builder does now). Pairs are shuffled and trained on as the builder's expert step does.
The copy's other components are the source zoo's (its manifest points at them).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expert", choices=("helpfulness", "harmlessness"), required=True)
    parser.add_argument("--pairs", choices=("agreeing", "widest"), default="widest")
    parser.add_argument("--zoo", help="source zoo folder (default: the user cache)")
    parser.add_argument("--preset", default="smol")
    parser.add_argument("--data", required=True, help="the HH-RLHF folder")
    parser.add_argument("--out", required=True, help="folder for the zoo copy")
    parser.add_argument("--steps", type=int, help="DPO steps (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, help="default: the preset's")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import numpy as np

    from merging.device import resolve_device
    from merging.zoo import load_zoo
    from merging.zoo.datasets import agreeing_pairs, widest_margin_pairs
    from merging.zoo.dpo_expert import train_dpo_expert
    from merging.zoo.presets import PRESETS
    from merging.zoo.steps import ZooBuild

    preset = PRESETS[args.preset]
    zoo = load_zoo(args.preset, args.zoo)
    out = Path(args.out).expanduser()
    folder = out / f"{args.expert}_expert"
    if folder.exists():
        raise SystemExit(f"{folder} exists already: choose another --out")
    device = str(resolve_device(args.device))
    build = ZooBuild.start(preset, args.data, device)
    build.heads = {name: Path(zoo.heads[name]) for name in ("helpfulness", "harmlessness")}
    pairs = build.helpful if args.expert == "helpfulness" else build.harmless
    chosen, rejected = build.scored(args.expert, pairs)
    steps = args.steps or preset.dpo_steps
    n = steps * preset.dpo_batch
    choose = agreeing_pairs if args.pairs == "agreeing" else widest_margin_pairs
    picked = choose(pairs, (chosen, rejected), *([] if args.pairs == "agreeing" else [n]))
    random.Random(0).shuffle(picked)  # as the builder's expert step does
    picked = picked[:n]
    margin = {id(p): c - r for p, c, r in zip(pairs, chosen, rejected, strict=True)}
    margins = [margin[id(p)] for p in picked]
    print(
        f"{len(picked)} {args.pairs} pairs, head margin {np.mean(margins):.3f} on average; "
        f"chosen answer shorter in {np.mean([len(p.chosen) < len(p.rejected) for p in picked]):.0%}"
    )
    start = time.perf_counter()
    metrics = train_dpo_expert(
        Path(zoo.base),
        picked,
        folder,
        steps=steps,
        batch_size=preset.dpo_batch,
        learning_rate=args.learning_rate or preset.dpo_learning_rate,
        beta=preset.dpo_beta,
        max_length=preset.max_length,
        lora_rank=preset.lora_rank,
        device=device,
    )
    metrics["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(metrics, indent=2))
    experts = zoo.experts | {args.expert: str(folder.resolve())}
    manifest = zoo.model_copy(update={"folder": str(out.resolve()), "experts": experts})
    (out / "zoo.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    report = f"python experiments/zoo_report.py --zoo {out} --prompts 100 --ric-targets ''"
    print(f"measure it: {report}")


if __name__ == "__main__":
    main()
