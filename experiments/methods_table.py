"""Each run of a study side by side: its hypervolume with the joint bootstrap's 95% interval over
prompts (one reference point and normalisation for all runs), the paired difference of every
pair of runs, and the wall time per evaluation (AMA's learning counted apart).

    python experiments/methods_table.py STUDY --storage URL [--draws 200]

Written for issue 37's comparison of the combination methods (studies/methods.yaml).
"""

from __future__ import annotations

import argparse

import numpy as np

from merging.study.trials import rank_study
from pareto.report import hypervolume_intervals


def wall_times(results) -> dict[str, tuple[float, float]]:
    """Per run: mean seconds per evaluation (merge, generate, score) and per learned point."""
    out = {}
    for r in results:
        evals = [sum(a.get("timings", {}).values()) for a in r.attrs]
        learned = [a["learn_s"] for a in r.attrs if "learn_s" in a]
        out[r.spec.label] = (float(np.mean(evals)), float(np.mean(learned)) if learned else 0.0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study")
    p.add_argument("--storage", required=True)
    p.add_argument("--draws", type=int, default=200)
    args = p.parse_args()
    ranked = rank_study(args.storage, args.study)
    intervals = hypervolume_intervals(
        ranked.results, ranked.report, reference=ranked.reference, draws=args.draws
    )
    times = wall_times(ranked.results)
    header = (
        "| run | driver | evaluations | hypervolume [95%] | s per evaluation "
        "| s learning per point |"
    )
    print(header)
    print("|---|---|---|---|---|---|")
    for row in ranked.report.runs:
        hv = row.hypervolume
        shown = f"{hv:.3f}"
        if intervals is not None:
            _, low, high = intervals["runs"][row.label]
            shown += f" [{low:.3f}, {high:.3f}]"
        each, learn = times[row.label]
        print(
            f"| {row.label} | {row.driver} | {row.completed} | {shown} | {each:.1f} | "
            + (f"{learn:.0f} |" if learn else "— |")
        )
    if intervals is not None:
        print("\n| difference | hypervolume [95%] |\n|---|---|")
        for (a, b), (d, low, high) in intervals["differences"].items():
            print(f"| {a} − {b} | {d:+.3f} [{low:+.3f}, {high:+.3f}] |")


if __name__ == "__main__":
    main()
