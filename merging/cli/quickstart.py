"""``paretomerge quickstart``: the whole workbench on the embedded default, in one command."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from merging.cli import options

HELP = (
    "Build the smol zoo (once), run the quickstart study comparing interpolation, layerwise "
    "and rewards-in-context on helpfulness, harmlessness and verbosity, and show the fronts."
)

EPILOG = """\
The first run builds the embedded zoo (SmolLM2-135M-Instruct experts, reward heads and a
rewards-in-context model trained on HH-RLHF; 20 to 30 minutes on 2 CPU cores with AVX-512,
1 to 1.5 hours on 2 with AVX2 only), then runs the study (9 to 12 minutes on
the former, about 20 on the latter). Both are cached: running it again shows the results
at once, and an interrupted run continues where it stopped. A quickstart study stored with
other settings or checkpoints (by an earlier version, or before the zoo was rebuilt) is
renamed runs/NAME/study-before-TIME.db, and the study starts afresh.

examples:
  paretomerge quickstart --data ../shared/data/hh-rlhf
  paretomerge quickstart --device cuda
  paretomerge study show quickstart"""


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "quickstart",
        help="build the zoo, run the quickstart study, show its fronts",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument(
        "--data",
        help="HH-RLHF folder in its original layout (helpful-base/test.jsonl.gz, ...); "
        "default $PARETOMERGE_DATA, else the Hugging Face hub",
    )
    q.add_argument("--device", type=options.device, help="cpu, cuda or auto (default auto)")
    q.add_argument(
        "--storage", help="Optuna storage URL (default sqlite:///runs/quickstart/study.db)"
    )
    q.add_argument("--study", help="another study file to run instead of the built-in one")
    q.set_defaults(handler=run, command="quickstart")


def builtin_study(name: str):
    """A study file shipped with paretomerge (``studies/NAME.yaml`` in the source tree)."""
    from importlib.resources import files

    path = files("merging.studies") / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"paretomerge ships no study {name!r}")
    return path


def set_aside(database: Path) -> Path:
    """Rename a SQLite study file to ``NAME-before-STAMP.db`` beside it (its last change's
    time), so that the quickstart can start afresh without losing an older study."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(database.stat().st_mtime))
    kept = database.with_name(f"{database.stem}-before-{stamp}{database.suffix}")
    n = 1
    while kept.exists():
        n += 1
        kept = database.with_name(f"{database.stem}-before-{stamp}-{n}{database.suffix}")
    database.rename(kept)
    return kept


def run(args: argparse.Namespace) -> int:
    from merging.cli.study import print_report
    from merging.study import load_study_spec
    from merging.study.runner import STUDY_FILE, default_out, run_study, storage_url
    from pareto.run_store import RunConflict
    from pareto.storage import sqlite_url

    start = time.perf_counter()
    with_file = args.study or str(builtin_study("quickstart"))
    spec = load_study_spec(with_file)
    url = storage_url(spec, args.storage, None)
    print(f"quickstart: study {spec.name} ({with_file}), storage {url}", flush=True)
    own = args.storage is None and spec.storage is None  # the quickstart's own SQLite file
    try:
        run_study(spec, storage_url=url, data=args.data, device=args.device, log=print)
    except RunConflict:
        if not own:
            raise
        kept = set_aside(default_out(spec) / STUDY_FILE)
        print(
            f"{url} holds a {spec.name} study with other settings or checkpoints (an earlier "
            f"paretomerge's, an edited study file or a rebuilt zoo): kept it as {kept} (open "
            f"it with --storage {sqlite_url(kept)}) and starting afresh",
            flush=True,
        )
        run_study(spec, storage_url=url, data=args.data, device=args.device, log=print)
    print()
    print_report(spec.name, url)
    dashboard = "paretomerge dashboard" + ("" if args.storage is None else f" --storage {url}")
    print(
        f"\nquickstart finished in {time.perf_counter() - start:.0f} s. Next: '{dashboard}' "
        "explores the fronts and the generations in your browser; "
        f"'paretomerge study show {spec.name}' prints this again."
    )
    return 0
