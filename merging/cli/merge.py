"""``paretomerge merge``: merge experts for one preference and write a Hugging Face folder."""

from __future__ import annotations

import argparse

from merging.cli import options

HELP = "Merge experts with one family and weight vector; write a loadable Hugging Face folder."

EPILOG = """\
weights:
  interpolation, slerp       one weight per expert, on the simplex (they sum to 1)
  layerwise                  one group per block, groups separated by ';'
  task_arithmetic, ties,     one weight per expert (scaling coefficients, not normalised)
  dare_ties

examples:
  paretomerge merge --base ./base --expert helpful=./helpful --expert harmless=./harmless \\
      --family interpolation --weights 0.7,0.3 --out merged/
  paretomerge merge --base ./base --expert helpful=./helpful --expert harmless=./harmless \\
      --family layerwise --blocks 3 --weights "0.9,0.1;0.5,0.5;0.1,0.9" --out merged/
  paretomerge merge --base ./base --expert a=./lora_a --expert b=./lora_b \\
      --family ties --weights 0.6,0.4 --density 0.5 --out merged/"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_arguments(p, required=True)
    p.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.set_defaults(handler=run, command="merge")


def add_policy_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The options that say which merged policy: shared by merge and evaluate."""
    p.add_argument(
        "--base", required=required, help="base model: Hugging Face folder or .gguf file"
    )
    p.add_argument(
        "--expert",
        action="append",
        required=required,
        metavar="NAME=PATH",
        help="an expert (Hugging Face folder, LoRA adapter folder or .gguf); repeat per expert",
    )
    p.add_argument(
        "--family", default="interpolation", help="merge family (default: interpolation)"
    )
    p.add_argument("--weights", required=required, help="weights, see below")
    p.add_argument(
        "--blocks",
        type=options.positive_int,
        help="layerwise: number of blocks (default: from --weights)",
    )
    p.add_argument(
        "--density",
        type=options.fraction,
        help="ties, dare_ties: fraction of each task vector kept",
    )
    p.add_argument(
        "--scale",
        type=options.finite_float,
        help="task_arithmetic, ties, dare_ties: lambda (default 1)",
    )
    p.add_argument("--merge-seed", type=int, default=0, help="dare_ties: seed of the random masks")
    p.add_argument(
        "--device",
        default="auto",
        type=options.device,
        help="auto (CUDA when present), cpu, cuda, cuda:N",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="resident dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow checkpoints that run their own code (off by default)",
    )
    add_memory_arguments(p)


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    """Where the experts live (the memory plan): shared by every command that merges."""
    from merging.plan import PLACEMENTS

    p.add_argument(
        "--placement",
        default="auto",
        choices=PLACEMENTS,
        help="where the base and experts live: auto (the first that fits: resident, "
        "factorised, streamed, mmap), or one of them; see 'paretomerge plan --help'",
    )
    p.add_argument(
        "--device-memory",
        metavar="BYTES",
        type=options.memory_amount,
        help="memory the plan may use on the device (20GB, 16GiB; default: what is free)",
    )
    p.add_argument(
        "--host-memory",
        metavar="BYTES",
        type=options.memory_amount,
        help="host memory the plan may use (default: what is available)",
    )


def memory_plan(args: argparse.Namespace, experts, *, generation=None, heads=(), family=None):
    """The memory plan for ``experts`` from the command's options, printed before any weight is
    read; raises :class:`~merging.plan.PlanError` (one line, exit status 2) when nothing fits."""
    from merging.families import get_family
    from merging.merger import parse_bytes, plan_experts

    plan = plan_experts(
        experts,
        device=args.device,
        dtype=args.dtype,
        placement=get_family(family).placement_for(args.placement) if family else args.placement,
        generation=generation,
        heads=heads,
        whole_tensors=bool(family and get_family(family).whole_tensors),
        device_memory=parse_bytes(args.device_memory) if args.device_memory else None,
        host_memory=parse_bytes(args.host_memory) if args.host_memory else None,
        trust_remote_code=args.trust_remote_code,
    )
    return plan


def parse_experts(items: list[str]) -> dict[str, str]:
    experts: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--expert {item!r} must be written NAME=PATH")
        if name in experts:
            raise ValueError(f"--expert {name!r} is given twice")
        experts[name] = path
    return experts


def parse_weights(text: str) -> list[list[float]]:
    groups = []
    for group in text.split(";"):
        try:
            groups.append([float(v) for v in group.split(",") if v.strip()])
        except ValueError:
            raise ValueError(f"--weights {text!r}: every weight must be a number") from None
    return groups


def recipe_from_args(args: argparse.Namespace, experts: dict[str, str]):
    """Check the family, weights and settings, and return the MergeRecipe they describe."""
    from merging.families import get_family, make_family

    groups = parse_weights(args.weights)
    family_cls = get_family(args.family)
    x, settings = family_cls.x_from_groups(groups, args.blocks)
    for option in ("density", "scale"):
        value = getattr(args, option)
        if value is not None:
            if option not in family_cls.settings():
                raise ValueError(f"--{option} does not apply to the {args.family} family")
            settings[option] = value
    recipe = make_family(args.family, list(experts), **settings).recipe(x)
    if args.merge_seed:
        recipe = recipe.model_copy(update={"seed": args.merge_seed})
    return recipe


def merged(args: argparse.Namespace, expert_set, plan, recipe):
    """The merger of ``expert_set`` placed as ``plan`` says, ``recipe`` applied: the policy that
    'merge' saves and 'evaluate' scores."""
    from merging.families import get_family
    from merging.merger import open_merger

    merger = open_merger(
        expert_set,
        plan,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
    )
    get_family(recipe.family).apply(recipe, merger)
    return merger


def run(args: argparse.Namespace) -> int:
    from merging.expert_set import ExpertSet
    from merging.families import get_family
    from merging.save import prepare_output, save_merged

    experts = parse_experts(args.expert)
    recipe = recipe_from_args(args, experts)
    if not get_family(recipe.family).merged_checkpoint:
        raise ValueError(
            f"family {recipe.family!r} merges no weights (it combines the experts while "
            "decoding), so there is no checkpoint to write: score it with 'paretomerge "
            "evaluate', or export a study's trial with 'paretomerge export'"
        )
    prepare_output(args.out, force=args.force)
    print(f"checking {len(experts)} expert(s) against the base ...", flush=True)
    expert_set = ExpertSet.from_paths(args.base, experts, trust_remote_code=args.trust_remote_code)
    plan = memory_plan(args, expert_set, family=recipe.family)
    print(plan.table(), flush=True)
    print("loading the base and the experts ...", flush=True)
    merger = merged(args, expert_set, plan, recipe)
    out = save_merged(merger, args.out, recipe=recipe, force=args.force)
    print(f"wrote {out} ({args.family}, weights {args.weights})")
    return 0
