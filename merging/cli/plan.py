"""``paretomerge plan``: the memory plan of a merge (and its evaluation), with nothing loaded."""

from __future__ import annotations

import argparse

from merging.cli import options
from merging.cli.merge import add_policy_arguments, parse_experts

HELP = "Show where the base and experts would live and what each part takes; nothing is loaded."

EPILOG = """\
The plan is computed from the base's config, the experts' file headers, the device's free
memory and, with --prompts, the generation's KV cache and activations. 'merge', 'evaluate',
'study run' and 'worker' print the same plan before they load anything, and refuse in one line
(exit status 2) when it cannot fit. The ways, in the order 'auto' tries them:

  resident    base and every expert on the device (LoRA experts expanded): (experts + 2)
              copies of the model; the fastest merge
  factorised  base and full experts on the device, LoRA experts as their factors
              (r * (d_in + d_out) values per adapted weight, not d_in * d_out)
  streamed    base and full experts in host memory (pinned on CUDA), copied to the device a
              chunk at a time while the previous chunk is summed (CUDA only)
  mmap        base and full experts read from their safetensors files a chunk at a time

examples:
  paretomerge plan --base ./base --expert helpful=./helpful --expert harmless=./harmless
  paretomerge plan --base ./base --expert a=./a --expert b=./b --device cuda \\
      --prompts 200 --max-new-tokens 128 --objective helpfulness=heads/helpfulness:max
  paretomerge plan --base ./base --expert a=./a --expert b=./b --device-memory 20GB"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_arguments(p, required=False)
    p.add_argument(
        "--prompts",
        type=options.count,
        default=0,
        metavar="N",
        help="size an evaluation of N prompts too (default: the merge alone)",
    )
    p.add_argument(
        "--batch-size", default="auto", type=options.batch_size, help="prompts per batch, or auto"
    )
    p.add_argument(
        "--max-new-tokens",
        type=options.positive_int,
        default=96,
        help="tokens generated at most per answer",
    )
    p.add_argument(
        "--max-prompt-tokens",
        type=options.positive_int,
        default=512,
        help="prompt tokens at most (default 512)",
    )
    p.add_argument(
        "--objective",
        action="append",
        default=[],
        metavar="NAME=HEAD:SENSE",
        help="an objective whose reward head the device holds (repeat per objective)",
    )
    p.set_defaults(handler=run, command="plan")


def run(args: argparse.Namespace) -> int:
    from merging.cli.merge import memory_plan
    from merging.evaluate import parse_objective
    from merging.expert_set import ExpertSet
    from merging.families import get_family
    from merging.sizes import Generation

    if not args.base or not args.expert:
        raise ValueError("give --base and at least one --expert")
    get_family(args.family)
    batch = args.batch_size
    objectives = [parse_objective(o) for o in args.objective]
    generation = (
        Generation(args.prompts, batch, args.max_prompt_tokens, args.max_new_tokens)
        if args.prompts
        else None
    )
    experts = ExpertSet.from_paths(
        args.base, parse_experts(args.expert), trust_remote_code=args.trust_remote_code
    )
    plan = memory_plan(
        args,
        experts,
        generation=generation,
        heads=[o.head for o in objectives],
        family=args.family,
    )
    print(plan.table())
    return 0
