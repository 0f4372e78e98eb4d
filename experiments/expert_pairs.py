"""Train one zoo expert again on another choice of its DPO pairs, into a copy of the zoo.

    python experiments/expert_pairs.py --expert helpfulness --pairs widest --out /tmp/zoo-w \
        --data ../shared/data/hh-rlhf
    python experiments/zoo_report.py --zoo /tmp/zoo-w --prompts 100 --ric-targets ''

``agreeing``: random pairs the objective's head agrees with (expert recipe 1); ``widest``: the
pairs it agrees with by the widest margins, as many as the preset's steps use (recipe 2, what
the smol builder does now). The expert is trained by the builder's own expert step.
The copy's other components are the source zoo's (its manifest points at them).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
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
    from merging.zoo.presets import PRESETS
    from merging.zoo.steps import ZooBuild, expert_step

    preset = PRESETS[args.preset]
    widest = {args.expert} if args.pairs == "widest" else set()
    preset = replace(
        preset,
        widest_margin=tuple(set(preset.widest_margin) - {args.expert} | widest),
        dpo_steps=args.steps or preset.dpo_steps,
    )
    zoo = load_zoo(args.preset, args.zoo)
    out = Path(args.out).expanduser()
    folder = out / f"{args.expert}_expert"
    if folder.exists():
        raise SystemExit(f"{folder} exists already: choose another --out")
    build = ZooBuild.start(preset, args.data, str(resolve_device(args.device)))
    build.base = Path(zoo.base)
    build.heads = {name: Path(zoo.heads[name]) for name in ("helpfulness", "harmlessness")}
    # the pool the step below draws its pairs from (shuffled, then cut to its steps); for
    # ``widest``, exactly the pairs it trains on
    pairs = build.helpful if args.expert == "helpfulness" else build.harmless
    margin = dict(zip(map(id, pairs), np.subtract(*build.scored(args.expert, pairs)), strict=True))
    pool = build.expert_pairs(args.expert)
    print(
        f"{len(pool)} {args.pairs} pairs for {preset.dpo_steps * preset.dpo_batch}: head margin "
        f"{np.mean([margin[id(p)] for p in pool]):.3f} on average; chosen answer shorter in "
        f"{np.mean([len(p.chosen) < len(p.rejected) for p in pool]):.0%}"
    )
    folder.mkdir(parents=True)
    start = time.perf_counter()
    learning_rate = args.learning_rate or preset.dpo_learning_rate
    metrics = expert_step(
        build, folder, lambda *_: None, expert=args.expert, learning_rate=learning_rate
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
