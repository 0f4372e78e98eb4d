"""``paretomerge study run`` and ``paretomerge study show``: batch merging studies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from merging.cli import options
from merging.cli.merge import add_memory_arguments
from pareto.trial_records import trial_key

HELP = "Run a merging study from its YAML file, or show a study's fronts and hypervolumes."

EPILOG = """\
A study searches one or more merge families with a driver (pymoo: nsga2, nsga3, moead,
smsemoa, grid, map; Optuna: tpe, optuna-nsga2, gp, random) and records every evaluation as an
Optuna trial: by default in ./runs/NAME/study.db (SQLite). Running the same study again
continues to the budget; evaluations already done are never repeated. Many machines can share
a study through PostgreSQL: start 'paretomerge worker' on each.

The prompts come from HH-RLHF: pass --data DIR, set PARETOMERGE_DATA, or name the folder in
the study file (prompts.data).

examples:
  paretomerge study run studies/tiny.yaml --data ../shared/data/hh-rlhf
  paretomerge study run studies/quickstart.yaml --data ../shared/data/hh-rlhf
  paretomerge study run big.yaml --data ../shared/data/hh-rlhf \\
      --storage postgresql+psycopg://me@db:5432/studies
  paretomerge study show tiny
  paretomerge study show tiny --storage sqlite:///runs/tiny/study.db --json"""


def memory_options(args: argparse.Namespace) -> dict:
    """The memory plan's options (``--placement``, ``--device-memory``, ``--host-memory``)."""
    from merging.merger import parse_bytes

    return {
        "placement": args.placement,
        "device_memory": parse_bytes(args.device_memory) if args.device_memory else None,
        "host_memory": parse_bytes(args.host_memory) if args.host_memory else None,
    }


def add_heartbeat(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--heartbeat",
        default="10,60",
        metavar="INTERVAL,GRACE",
        help="seconds between a running trial's heartbeats, and without one before the trial "
        "counts as dead and is retried (default 10,60)",
    )


def parse_heartbeat(text: str) -> tuple[int, int]:
    try:
        interval, grace = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(
            f"--heartbeat {text!r} must be two whole numbers: INTERVAL,GRACE"
        ) from None
    if interval < 1 or grace <= interval:
        raise ValueError(f"--heartbeat {text!r}: need INTERVAL >= 1 and GRACE > INTERVAL")
    return interval, grace


def register(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser(
        "study",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ss = study.add_subparsers(title="commands", metavar="COMMAND")
    r = ss.add_parser(
        "run",
        help="run (or resume) a study to its budget",
        description="Run a merging study from its YAML file to its budget, or resume it: "
        "every trial is recorded in the storage as it completes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("study", help="the study's YAML file")
    r.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db)")
    r.add_argument("--out", help="folder for the study's outputs (default: ./runs/NAME)")
    r.add_argument("--data", help="HH-RLHF folder for the prompts (and a zoo that needs building)")
    r.add_argument(
        "--device", type=options.device, help="cpu, cuda or auto (default: the study's, else auto)"
    )
    add_memory_arguments(r)
    add_heartbeat(r)
    r.add_argument("--no-show", action="store_true", help="do not print the summary at the end")
    r.set_defaults(handler=run_study_command, command="study run")

    s = ss.add_parser(
        "show",
        help="the front, hypervolume per family and driver, and the knee",
        description="Show a study's runs and hypervolumes, and its Pareto front with each "
        "trial's difference from the base model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("study", help="the study's name, or its YAML file")
    s.add_argument("--storage", help="Optuna storage URL (default: sqlite:///runs/NAME/study.db)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=show_command, command="study show")
    study.set_defaults(handler=lambda args: study.print_help() or 2, command="study")


def run_study_command(args: argparse.Namespace) -> int:
    from merging.study import load_study_spec
    from merging.study.runner import run_study, storage_url

    spec = load_study_spec(args.study)
    url = storage_url(spec, args.storage, args.out)
    print(f"study {spec.name}: storage {url}", flush=True)
    run_study(
        spec,
        storage_url=url,
        data=args.data,
        device=args.device,
        heartbeat=parse_heartbeat(args.heartbeat),
        log=print,
        memory=memory_options(args),
    )
    if not args.no_show:
        print()
        print_report(spec.name, url)
    return 0


def resolve_study(name_or_file: str, storage: str | None) -> tuple[str, str]:
    """``(study name, storage URL)`` from a name or a YAML file and an optional URL."""
    from merging.study import load_study_spec
    from merging.study.runner import storage_url
    from pareto.storage import sqlite_url

    if name_or_file.endswith((".yaml", ".yml")) or Path(name_or_file).is_file():
        spec = load_study_spec(name_or_file)
        return spec.name, storage_url(spec, storage, None)
    if storage:
        return name_or_file, storage
    path = Path("runs") / name_or_file / "study.db"
    if not path.is_file():
        raise FileNotFoundError(
            f"no {path}; pass --storage URL (or the study's YAML file) to find study "
            f"{name_or_file!r}"
        )
    return name_or_file, sqlite_url(path)


def show_command(args: argparse.Namespace) -> int:
    name, url = resolve_study(args.study, args.storage)
    print_report(name, url, as_json=args.json)
    return 0


def print_report(name: str, url: str, as_json: bool = False) -> None:
    from merging.study.trials import rank_study
    from pareto.report import hypervolume_intervals

    ranked = rank_study(url, name)
    results, report, reference = ranked.results, ranked.report, ranked.reference
    standing, order = ranked.standing, ranked.order
    intervals = hypervolume_intervals(results, report, reference=reference)
    if as_json:
        print(json.dumps(report_json(report, standing, order, intervals), indent=2))
        return
    text = format_report(
        report, standing, order, x_text=x_descriptions(results), base=reference, hv=intervals
    )
    print(text)


def x_descriptions(results) -> dict[tuple[str, int], str]:
    """``(run, trial number)`` -> its ``x`` with expert (and block) names, on one line."""
    from merging.families import describe_rows, x_rows

    out = {}
    for r in results:
        for n, x, attrs in zip(r.numbers, r.x, r.attrs, strict=True):
            rows = x_rows(attrs.get("recipe"), x, r.spec.experts)
            out[(r.spec.label, int(n))] = describe_rows(rows)
    return out


def report_json(report, standing, order, hv=None) -> dict:
    """``study show --json``: the report (each run's hypervolume with its 95% interval, from
    :func:`~pareto.report.hypervolume_intervals` ``hv``, where trials kept per-prompt scores),
    and for each front trial its P(non-dominated), the prompts it used and its differences from
    the base with their paired 95% intervals."""
    out = report.as_dict()
    for row in out["runs"]:
        if hv is not None and row["label"] in hv["runs"]:
            row["hypervolume_interval"] = list(hv["runs"][row["label"]][1:])
    if hv is not None:
        out["hypervolume_differences"] = [
            {"runs": [a, b], "difference": d, "interval": [low, high]}
            for (a, b), (d, low, high) in hv["differences"].items()
        ]
    out["uncertainty"] = standing.method
    at = {key: i for i, key in enumerate(order)}
    for row in out["front"]:
        i = at[(row["label"], row["trial"])]
        row["p_nondominated"] = float(standing.p_nondominated[i])
        if standing.prompts_used is not None:
            row["prompts_used"] = int(standing.prompts_used[i])
        if standing.base_difference is not None:
            row["base_difference"] = standing.base_difference[i].tolist()
            row["base_interval"] = [standing.base_low[i].tolist(), standing.base_high[i].tolist()]
    out["within_noise"] = int((standing.p_nondominated >= 0.5).sum())
    return out


def format_report(report, standing=None, order=None, *, x_text=None, base=None, hv=None) -> str:
    """The text of ``study show``: runs, hypervolumes, and the front with each trial's
    P(non-dominated) and its difference from the base model (when ``standing`` is given).

    Trials are named ``RUN#NUMBER`` (what ``export --trial`` takes); ``x_text`` maps
    ``(run, number)`` to the trial's ``x`` in words, printed under it; ``base`` (the stored
    reference: ``values``, ``stderr``) adds a row for the base model; ``hv``
    (:func:`~pareto.report.hypervolume_intervals`) adds each run's 95% interval."""
    senses = {"max": "higher is better", "min": "lower is better"}
    lines = [f"study {report.study}"]
    lines.append(
        "objectives: "
        + ", ".join(
            f"{n} ({senses[s]})" for n, s in zip(report.objectives, report.senses, strict=True)
        )
    )
    lines.append("")
    interval = "  [95% over prompts]" if hv is not None else ""
    lines.append(f"{'run':<22}{'driver':<14}{'done':>10}{'front':>7}{'hypervolume':>13}{interval}")
    for r in report.runs:
        span = hv["runs"].get(r.label) if hv is not None else None
        lines.append(
            f"{r.label:<22}{r.driver:<14}{f'{r.completed}/{r.budget}':>10}{r.front_size:>7}"
            f"{r.hypervolume:>13.4f}"
            + (f"  [{span[1]:.4f}, {span[2]:.4f}]" if span is not None else "")
        )
    if report.reference_point is None:
        lines.append("\nno completed trials yet")
        return "\n".join(lines)
    lines.extend(_hypervolume_note(report, intervals=hv is not None))
    lines.extend(_hypervolume_differences(hv))
    lines.append("")
    return "\n".join([*lines, *_front_table(report, standing, order, x_text, base)])


def _hypervolume_differences(hv) -> list[str]:
    """Each pair of runs' hypervolume difference with its paired 95% interval (the same prompt
    draws for both runs, so it is far narrower than the two runs' own intervals suggest)."""
    if hv is None or not hv["differences"]:
        return []
    from pareto.report import format_difference

    lines = ["", "hypervolume differences, paired over prompts [95%] (*: excludes 0):"]
    for (a, b), (d, low, high) in hv["differences"].items():
        mark = " *" if low > 0 or high < 0 else ""
        lines.append(f"  {f'{a} - {b}':<40}{format_difference(d, low, high)}{mark}")
    return lines


def _front_table(report, standing, order, x_text, base) -> list[str]:
    """The study's front, one trial a row (trials with the same scores as one), then the base."""
    at = {key: i for i, key in enumerate(order or [])}
    paired = standing is not None and standing.base_difference is not None
    lines = [f"Pareto front of the study ({len(report.front)} trials, * = knee):"]
    if standing is not None:
        within = int((standing.p_nondominated >= 0.5).sum())
        lines.append(
            f"  P(nd): probability of being non-dominated, by {standing.method}; "
            f"{within} of {len(standing.p_nondominated)} trials have P(nd) >= 0.5"
        )
    if paired:
        lines.append(
            "  each value: mean, then its difference from the base model [paired 95% interval]"
        )
    width = 34 if paired else 22
    header = "  ".join(f"{n:>{width}}" for n in report.objectives)
    extra = f"{'P(nd)':>6}{'prompts':>8}" if standing is not None else ""
    lines.append(f"  {'trial':<28}{extra}  {header}")
    for rows in _same_scores(report.front):
        i = at.get((rows[0].label, rows[0].trial))
        lines += _front_rows(rows, standing, i, paired, width, x_text)
    if base and base.get("values"):
        cells = "  ".join(
            f"{f'{v:.4g} ± {e:.2g}':>{width}}"
            for v, e in zip(
                base["values"], base.get("stderr") or [0.0] * len(base["values"]), strict=True
            )
        )
        cols = " " * 14 if standing is not None else ""
        lines.append(f"  {'base model':<28}{cols}  {cells}")
    return lines


def _front_rows(rows, standing, i, paired: bool, width: int, x_text) -> list[str]:
    """One front trial (``rows``: it and the trials with its very scores): its values, its
    ``x`` in words, and the others' names."""
    row = rows[0]
    if paired and i is not None:
        cells = "  ".join(
            f"{_with_difference(v, standing, i, j):>{width}}" for j, v in enumerate(row.values)
        )
    else:
        cells = "  ".join(
            f"{f'{v:.4g} ± {e:.2g}':>{width}}" for v, e in zip(row.values, row.stderrs, strict=True)
        )
    cols = ""
    if standing is not None and i is not None:
        used = "" if standing.prompts_used is None else str(int(standing.prompts_used[i]))
        cols = f"{standing.p_nondominated[i]:>6.2f}{used:>8}"
    mark = "*" if any(r.knee for r in rows) else " "
    if standing is not None and i is None:
        cols = " " * 14
    x = (x_text or {}).get((row.label, row.trial)) or f"x: {json.dumps(_rounded(row.x))}"
    lines = [f"{mark} {trial_key(row.label, row.trial):<28}{cols}  {cells}", f"    {x}"]
    if len(rows) > 1:
        others = ", ".join(trial_key(r.label, r.trial) for r in rows[1:])
        lines.append(f"    the same scores: {others}")
    return lines


def _hypervolume_note(report, *, intervals: bool = False) -> list[str]:
    """What the hypervolume column means, in two lines (three with ``intervals``)."""
    low, high = (np.asarray(b, dtype=float) for b in report.bounds)
    ref = np.asarray(report.reference_point, dtype=float)
    worst = np.where(np.asarray(report.senses) == "max", low, high)
    margins = np.abs(ref - worst) / (high - low)
    margin = float(margins.max())  # the same for every objective with a range
    ceiling = float(np.prod(1 + margins))
    point = ", ".join(f"{n} {v:.4g}" for n, v in zip(report.objectives, ref, strict=True))
    return [
        "hypervolume: the share of objective space a run's front dominates, each objective "
        "scaled from the study's worst observed value (0) to its best (1),",
        f"  counted from a reference point {margin:.0%} beyond the worst ({point}); higher is "
        f"better, {ceiling:.4g} at most (one trial best at everything)",
    ] + (
        [
            "  the 95% intervals resample the prompts on that same scale, so their upper end can "
            f"pass {ceiling:.4g}: a resampled front may beat the best observed values"
        ]
        if intervals
        else []
    )


def _with_difference(value: float, standing, i: int, j: int) -> str:
    from pareto.report import format_difference

    d, lo, hi = (standing.base_difference[i, j], standing.base_low[i, j], standing.base_high[i, j])
    return f"{value:.4g} {format_difference(d, lo, hi)}"


def _same_scores(front) -> list[list]:
    """The front's rows grouped by run and identical scores (a tie, such as RiC points whose
    markers changed no answer), in the order of each group's first row, the knee first within
    its group: printed once each."""
    groups: dict[tuple, list] = {}
    for row in front:
        groups.setdefault((row.label, tuple(row.values), tuple(row.stderrs)), []).append(row)
    return [sorted(rows, key=lambda r: not r.knee) for rows in groups.values()]


def _rounded(x):
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return round(float(x), 3)
