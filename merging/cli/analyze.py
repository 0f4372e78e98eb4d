"""``paretomerge analyze``: the Pareto front, hypervolume and knee of a results file."""

from __future__ import annotations

import argparse
import json
import sys

from merging.cli import options

HELP = "Pareto front, hypervolume and knee of a CSV or JSON-lines results file."

EPILOG = """\
The file holds one row per evaluated candidate (CSV with a header, or one JSON object per
line); any columns may be present beside the objectives. Rows are numbered from 0 in file order.

Without --ref, the reference point is the observed nadir moved outward by 10% of each
objective's range (see pareto.reference); the point used is always printed.

examples:
  paretomerge analyze studies/examples/soups_sweep.csv \\
      --objectives helpfulness:max,harmlessness:max,verbosity:min
  paretomerge analyze results.jsonl --objectives helpfulness:max,verbosity:min \\
      --ref 0,200 --json"""

CELL_WIDTH = 22


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="results file: .csv, .tsv, .jsonl (optionally .gz)")
    p.add_argument(
        "--objectives",
        required=True,
        metavar="NAME:SENSE,...",
        help="objective columns with their senses, e.g. helpfulness:max,verbosity:min",
    )
    p.add_argument(
        "--ref",
        metavar="V1,V2,...",
        help="reference point, one value per objective in the order of --objectives",
    )
    p.add_argument(
        "--margin",
        type=options.finite_float,
        default=0.1,
        help="for the default reference point: fraction of each range beyond the nadir "
        "(default: 0.1)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(handler=run, command="analyze")


def parse_ref(text: str, n_objectives: int) -> list[float]:
    parts = [v.strip() for v in text.split(",") if v.strip()]
    if len(parts) != n_objectives:
        raise ValueError(
            f"--ref has {len(parts)} value(s) for {n_objectives} objectives; "
            "give one per objective, in the order of --objectives"
        )
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--ref value {part!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"--ref value {part!r} must be finite")
        values.append(value)
    return values


def run(args: argparse.Namespace) -> int:
    from pareto import parse_objectives, read_results, summarize_front

    objectives = parse_objectives(args.objectives)
    if len(objectives) < 2:
        raise ValueError("--objectives needs at least two objectives to form a front")
    ref = parse_ref(args.ref, len(objectives)) if args.ref is not None else None
    table = read_results(args.file)
    points = table.objective_matrix(objectives)
    senses = [o.sense for o in objectives]
    summary = summarize_front(points, senses, ref=ref, margin=args.margin)
    if args.json:
        payload = {
            "file": table.path,
            "rows": len(table),
            "objectives": [{"name": o.name, "sense": o.sense} for o in objectives],
            "front": list(summary.front),
            "hypervolume": summary.hypervolume,
            "reference_point": list(summary.reference_point),
            "reference_given": summary.reference_given,
            "knee": summary.knee,
            "beyond_reference": list(summary.beyond_reference),
        }
        json.dump(payload, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print_report(table, objectives, summary, args.margin)
    return 0


def _cell(value: object) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def print_report(table, objectives, summary, margin: float) -> None:
    names = [o.name for o in objectives]
    others = [c for c in table.columns if c not in names]
    header = ["row", *others, *names]
    body = []
    for i in summary.front:
        row = table.rows[i]
        mark = "*" if i == summary.knee else " "
        body.append([f"{i}{mark}", *(_cell(row.get(c, "")) for c in [*others, *names])])
    widths = [max(len(h), *(len(r[j]) for r in body)) for j, h in enumerate(header)]
    print(f"{table.path}: {len(table)} rows, {len(summary.front)} Pareto-optimal")
    print("objectives: " + ", ".join(f"{o.name} ({o.sense})" for o in objectives))
    print()
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in body:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print()
    ref = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, summary.reference_point, strict=True))
    how = (
        "given"
        if summary.reference_given
        else f"default: observed nadir moved out by {margin:g} of each objective's range"
    )
    print(f"hypervolume: {summary.hypervolume:.6g}")
    print(f"reference point: {ref} ({how})")
    if summary.beyond_reference:
        rows = ", ".join(map(str, summary.beyond_reference))
        print(f"note: front rows {rows} are not better than the reference and add nothing")
    knee = table.rows[summary.knee]
    values = ", ".join(f"{n}={_cell(knee.get(n))}" for n in names)
    print(f"knee: row {summary.knee} ({values}), marked * above")
