"""``paretomerge worker``: evaluate trials of a study shared through an Optuna storage."""

from __future__ import annotations

import argparse

from merging.cli import options
from merging.cli.merge import add_memory_arguments
from merging.cli.study import add_heartbeat, memory_options, parse_heartbeat

HELP = "Evaluate trials of a running study (start any number, on any machine)."

EPILOG = """\
A worker reads the study's settings from the storage, loads the same models (paths in the
study file must exist on this machine; a zoo is read from this machine's cache, so share it or
build it from the same data), and evaluates waiting trials until every run of the study is
finished. For Optuna samplers it asks its own sampler for new trials; for pymoo drivers it
takes the generations the 'study run' process enqueues. A worker that dies mid-trial is
noticed by its missing heartbeat and its trial is retried elsewhere.

examples:
  paretomerge worker --storage postgresql+psycopg://me@db:5432/studies --study quickstart
  paretomerge worker --storage sqlite:///runs/tiny/study.db --study tiny --max-trials 5
  paretomerge worker --storage postgresql+psycopg://me@db/studies --study big --wait 600"""


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "worker",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("--storage", required=True, help="Optuna storage URL")
    w.add_argument("--study", required=True, help="the study's name")
    w.add_argument("--data", help="HH-RLHF folder for the prompts")
    w.add_argument("--device", type=options.device, help="cpu, cuda or auto")
    add_memory_arguments(w)
    w.add_argument("--max-trials", type=options.positive_int, help="stop after this many trials")
    w.add_argument(
        "--wait",
        type=options.finite_float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the study to appear in the storage (default: not at all)",
    )
    add_heartbeat(w)
    w.set_defaults(handler=run, command="worker")


def run(args: argparse.Namespace) -> int:
    from merging.study.runner import run_worker

    n = run_worker(
        args.storage,
        args.study,
        data=args.data,
        device=args.device,
        heartbeat=parse_heartbeat(args.heartbeat),
        max_trials=args.max_trials,
        wait=args.wait,
        log=lambda m: print(m, flush=True),
        memory=memory_options(args),
    )
    print(f"worker done: {n} trials evaluated", flush=True)
    return 0
