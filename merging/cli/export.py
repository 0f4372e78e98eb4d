"""``paretomerge export``: a study's trial as a Hugging Face folder, mergekit YAML, model card."""

from __future__ import annotations

import argparse

HELP = "Export a trial of a study: merged weights, a mergekit YAML that reproduces them, a card."

EPILOG = """\
A trial is RUN#NUMBER as 'study show' and the dashboard name it (interpolation#12), or just
NUMBER when the study has one run. The output folder holds a Hugging Face folder (safetensors,
config, tokenizer and chat template, generation config with the study's settings),
mergekit_config.yml (run 'mergekit-yaml mergekit_config.yml OUT' for the same weights) and a
model card README.md with the trial's scores. For rewards_in_context the RiC model is exported
with the desired rewards written into its chat template. --front writes the recipes (YAML and
model card, no weights) of every Pareto-optimal trial, one folder each.

examples:
  paretomerge export --study quickstart --knee --out knee/
  paretomerge export --study tiny --trial layerwise#7 --out tiny-layerwise-7/
  paretomerge export --study big --storage postgresql+psycopg://me@db/studies \\
      --trial interpolation#40 --out big-40/ --max-shard-size 1GB
  paretomerge export --study quickstart --front --out quickstart-front/"""


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "export",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--study", required=True, help="the study's name (or its YAML file)")
    e.add_argument("--storage", help="Optuna storage URL (default: sqlite:///runs/NAME/study.db)")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", metavar="RUN#NUMBER", help="the trial to export")
    which.add_argument("--knee", action="store_true", help="the knee of the study's front")
    which.add_argument(
        "--front", action="store_true", help="recipes of every Pareto-optimal trial, no weights"
    )
    e.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    e.add_argument("--force", action="store_true", help="write into a non-empty --out")
    e.add_argument("--device", default="cpu", help="where to merge: cpu (default), cuda, auto")
    e.add_argument(
        "--max-shard-size",
        default="2GB",
        help="largest safetensors file before sharding (default 2GB)",
    )
    e.set_defaults(handler=run, command="export")


def run(args: argparse.Namespace) -> int:
    from merging.cli.study import resolve_study
    from merging.export import export_front, export_trial, select_trial
    from merging.save import prepare_output

    name, url = resolve_study(args.study, args.storage)
    prepare_output(args.out, force=args.force)  # before anything is loaded
    if args.front:
        paths = export_front(url, name, args.out, force=args.force)
        print(f"exported the recipes of {len(paths)} Pareto-optimal trials to {args.out}")
        return 0
    record = select_trial(url, name, args.trial, knee=args.knee)
    print(
        f"{record.key}: "
        + ", ".join(
            f"{o} {v:.4g} ± {e:.2g}"
            for o, v, e in zip(record.run.objectives, record.values, record.stderrs, strict=True)
        )
        + f"; front rank {record.rank}, P(non-dominated) {record.p_nondominated:.2f}"
        + (", the knee" if record.knee else "")
    )
    export_trial(
        record,
        args.out,
        force=args.force,
        device=args.device,
        max_shard_size=args.max_shard_size,
    )
    return 0
