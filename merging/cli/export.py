"""``paretomerge export``: a study's trial as a Hugging Face folder, mergekit YAML, model card."""

from __future__ import annotations

import argparse
import re

from merging.cli import options

HELP = "Export a trial of a study: merged weights, a mergekit YAML that reproduces them, a card."

EPILOG = """\
A trial is RUN#NUMBER as 'study show' and the dashboard name it (interpolation#12), or just
NUMBER when the study has one run. The output folder holds a Hugging Face folder (safetensors,
config, tokenizer and chat template, generation config with the study's settings),
mergekit_config.yml (run 'mergekit-yaml mergekit_config.yml OUT' for the same weights) and a
model card README.md with the trial's scores. For rewards_in_context the RiC model is exported
with the desired rewards written into its chat template. --front writes the recipes (YAML and
model card, no weights) of every Pareto-optimal trial, one folder each.

The export is written into a hidden folder beside --out and moved into place when complete,
with export.json (written last): an export that is stopped leaves --out as it was, or absent.
--force replaces an earlier export (never a folder holding anything else).

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
    e.add_argument(
        "--force", action="store_true", help="replace an earlier export in --out (deleting it)"
    )
    e.add_argument(
        "--device",
        default="cpu",
        type=options.device,
        help="where to merge: cpu (default), cuda, auto",
    )
    e.add_argument(
        "--max-shard-size",
        default="2GB",
        type=shard_size,
        help="largest safetensors file before sharding: 500MB, 2GB, 1GiB... (default 2GB)",
    )
    e.set_defaults(handler=run, command="export")


def shard_size(text: str) -> str:
    """A file size as ``save_pretrained`` reads it: a whole number and KB, MB, GB, KiB, MiB or
    GiB (kept as written)."""
    if not re.fullmatch(r"0*[1-9][0-9]*[KMG]i?B", text.strip(), re.IGNORECASE):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a file size: write a whole number and a unit, e.g. 500MB, 2GB, 1GiB"
        )
    return text.strip()


def run(args: argparse.Namespace) -> int:
    from merging.cli.study import resolve_study
    from merging.export import check_out, export_front, export_trial
    from merging.study.trials import select_trial

    name, url = resolve_study(args.study, args.storage)
    check_out(args.out, force=args.force)  # before anything is loaded; writes nothing
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
