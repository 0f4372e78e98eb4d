"""Print a RiC model's answers at the lowest, middle and highest desired level of one reward.

    python experiments/ric/ric_answers.py --zoo /tmp/ric-800 [--target harmlessness] [--prompts 6]

``zoo_report.py --ric-only`` says whether the RiC model follows a marker; this says what the
answers behind that number look like. It answers the first ``--prompts`` of each half of the
report's held-out prompts (helpful-base, then harmless-base) at three levels of the target's
training range, the other markers at 0 as in the report's sweep, and prints each level's means,
then every answer with the target's score beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zoo_report import SHARED, held_out_prompts, ric_evaluation


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python experiments/ric/ric_answers.py --zoo /tmp/ric-800 --prompts 6",
    )
    parser.add_argument("--preset", default="smol")
    parser.add_argument("--zoo", help="zoo folder (default: the user cache)")
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--target", default="harmlessness", help="the reward whose marker moves")
    parser.add_argument("--prompts", type=int, default=6, help="prompts from each half")
    parser.add_argument(
        "--skip", type=int, default=0, help="as zoo_report.py's: prompts after the first SKIP/2"
    )
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from merging.evaluate import Evaluator, parse_objective
    from merging.expert_set import ExpertSet
    from merging.families import make_family
    from merging.generation import GenerationSettings
    from merging.policy import load_tokenizer
    from merging.resident import ResidentMerger
    from merging.zoo import load_zoo

    zoo = load_zoo(args.preset, args.zoo)
    if zoo.ric is None:
        raise SystemExit(f"the zoo at {zoo.folder} has no RiC model")
    objectives = [parse_objective(s) for s in zoo.objective_specs()]
    names = [o.name for o in objectives]
    if args.target not in names:
        raise SystemExit(f"--target {args.target!r} is not one of {', '.join(names)}")
    prompts = held_out_prompts(Path(args.data), 2 * args.prompts, args.skip)
    tok = load_tokenizer(zoo.base)
    evaluator = Evaluator(
        prompts,
        objectives,
        GenerationSettings(max_new_tokens=args.max_new_tokens),
        device=args.device,
    )
    merger = ResidentMerger(ExpertSet.from_paths(zoo.base, {"ric": zoo.ric}), device=args.device)
    ric = make_family("rewards_in_context", names, ric=zoo.ric)
    i = names.index(args.target)
    results = {}
    for level in (ric.low[i], (ric.low[i] + ric.high[i]) / 2, ric.high[i]):
        desired = [0.0] * len(names)
        desired[i] = float(level)
        results[level] = r = ric_evaluation(ric, merger, evaluator, tok, desired)
        means = ", ".join(f"{k} {v.mean:.3f}" for k, v in r.objectives.items())
        print(f"{args.target} = {level:+.1f}: {means}", flush=True)
    for j, prompt in enumerate(prompts):
        print(f"\nPROMPT {prompt.messages[-1]['content'][:150]!r}")
        for level, r in results.items():
            print(f"  {level:+.1f} [{r.scores[args.target][j]:+.2f}] {r.responses[j][:200]!r}")


if __name__ == "__main__":
    main()
