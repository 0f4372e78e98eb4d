"""``paretomerge evaluate``: generate with a policy, score every objective, report mean ± error."""

from __future__ import annotations

import argparse
import json
import sys

from merging.cli import options
from merging.cli.merge import add_policy_arguments, merged, parse_experts, recipe_from_args

HELP = "Evaluate a merged policy (or one checkpoint) on prompts: objectives with standard errors."

EPILOG = """\
The policy is given as for 'paretomerge merge' (--base, --expert, --family, --weights), or as
one checkpoint with --model. Each --objective is NAME=HEAD:SENSE, HEAD one of length_tokens,
target_length:N, a bt_head folder, a reward-model folder, reference_nll[:PATH] (the policy's
log-loss per token on held-out preferred answers) or kl_to_base:BASE (its KL divergence from
BASE on its own answers), SENSE max or min.

Results are cached by a hash of the policy, prompts, settings and heads; evaluating the same
thing again returns at once (--no-cache to recompute).

examples:
  paretomerge evaluate --model ./base --prompts prompts.jsonl \\
      --objective helpfulness=heads/helpfulness:max --objective verbosity=length_tokens:min
  paretomerge evaluate --model ./base --prompts prompts.jsonl \\
      --objective tax=reference_nll:../shared/data/hh-rlhf:min
  paretomerge evaluate --base ./base --expert helpful=./h --expert harmless=./s \\
      --family interpolation --weights 0.5,0.5 --prompts prompts.txt --limit 50 \\
      --objective verbosity=length_tokens:min --json"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="evaluate this checkpoint as it is (instead of a merge)")
    add_policy_arguments(p, required=False)
    p.add_argument(
        "--prompts", required=True, help="prompts: .jsonl (prompt/messages/text) or .txt"
    )
    p.add_argument(
        "--split",
        choices=["train", "validation", "evaluation"],
        help="keep only prompts of this hash split",
    )
    p.add_argument("--limit", type=options.positive_int, help="use the first N prompts")
    p.add_argument(
        "--objective",
        action="append",
        required=True,
        metavar="NAME=HEAD:SENSE",
        help="an objective: its name, the head that scores it, max or min; repeat for each",
    )
    p.add_argument(
        "--max-new-tokens",
        type=options.positive_int,
        default=96,
        help="tokens generated at most per answer",
    )
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument(
        "--temperature",
        type=options.positive_float,
        default=0.7,
        help="with --sample (default 0.7)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--batch-size", default="auto", type=options.batch_size, help="prompts per batch, or auto"
    )
    p.add_argument("--samples", type=options.count, default=3, help="sample generations to show")
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run, command="evaluate")


def run(args: argparse.Namespace) -> int:
    from merging.data import read_prompts, select_split
    from merging.evaluate import Evaluator, parse_objective
    from merging.generation import GenerationSettings

    objectives = [parse_objective(o) for o in args.objective]
    if args.model and (args.base or args.expert):
        raise ValueError("give either --model or --base with --expert, not both")
    if not args.model and not (args.base and args.expert and args.weights):
        raise ValueError("give --model PATH, or --base, --expert and --weights for a merge")
    batch = args.batch_size
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        seed=args.seed,
        batch_size=batch,
    )
    prompts = read_prompts(args.prompts, log=lambda m: print(m, file=sys.stderr))
    if args.split:
        prompts = select_split(prompts, args.split)
    prompts = prompts[: args.limit]
    recipe = None if args.model else recipe_from_args(args, parse_experts(args.expert))
    planned = None if args.model else _plan(args, recipe, settings, prompts, objectives)
    evaluator = Evaluator(
        prompts,
        objectives,
        settings,
        use_cache=not args.no_cache,
        device=args.device,
        n_samples=args.samples,
    )
    model, tokenizer, identity = _policy(args, recipe, planned)
    from tqdm import tqdm

    with tqdm(
        total=len(prompts), desc="generating", unit="prompt", file=sys.stderr, disable=args.json
    ) as bar:
        result = evaluator.evaluate(model, tokenizer, identity, progress=bar.update)
    if args.json:
        print(json.dumps(result.public()))
        return 0
    origin = " (cached)" if result.cached else ""
    print(f"{len(prompts)} prompts, eval {result.eval_hash[:12]}{origin}")
    for name, v in result.objectives.items():
        better = "higher" if v.sense == "max" else "lower"
        print(f"  {name:16s} {v.mean:10.4f} ± {v.stderr:.4f}   ({better} is better)")
    for s in result.samples:
        print(f"\n> {s['prompt'][:200]}\n{s['response'][:400]}")
    return 0


def _plan(args, recipe, settings, prompts, objectives):
    """The expert set and its memory plan, printed before anything is loaded."""
    from merging.cli.merge import memory_plan
    from merging.expert_set import ExpertSet
    from merging.sizes import Generation

    experts = ExpertSet.from_paths(
        args.base, parse_experts(args.expert), trust_remote_code=args.trust_remote_code
    )
    plan = memory_plan(
        args,
        experts,
        generation=Generation.of_settings(settings, len(prompts)),
        heads=[o.head for o in objectives],
        family=recipe.family,
    )
    print(plan.table(), file=sys.stderr if args.json else sys.stdout, flush=True)
    return experts, plan


def _policy(args, recipe, planned):
    if args.model:
        from merging.policy import load_plain_policy

        return load_plain_policy(
            args.model,
            device=args.device,
            dtype=args.dtype,
            trust_remote_code=args.trust_remote_code,
        )
    from merging.families import get_family
    from merging.policy import load_tokenizer, merged_identity

    experts, plan = planned
    merger = merged(args, experts, plan, recipe)
    policy = get_family(recipe.family).policy(recipe, merger)
    return policy, load_tokenizer(args.base), merged_identity(merger, recipe)
