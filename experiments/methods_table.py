"""Each run of a study side by side: its hypervolume with the joint bootstrap's 95% interval over
prompts (one reference point and normalisation for all runs), the paired difference of every
pair of runs, and the wall time per evaluation (AMA's learning counted apart).

    python experiments/methods_table.py STUDY --storage URL [--draws 200] [--same-x A B]

Written for issue 37's comparison of the combination methods (studies/methods.yaml).
"""

from __future__ import annotations

import argparse

import numpy as np

from merging.study.trials import rank_study
from pareto.prompt_scores import PromptScores
from pareto.report import hypervolume_intervals
from pareto.uncertainty import joint_bootstrap, percentile_interval


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
    p.add_argument(
        "--same-x",
        nargs=2,
        metavar=("A", "B"),
        help="also B minus A per objective at every x both runs evaluated (* excludes 0)",
    )
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
    if args.same_x:
        a, b = args.same_x
        objectives = ranked.report.objectives
        rows = same_x_differences(ranked.results, a, b, args.draws)
        print(f"\n{b} − {a} at the same x ({max(len(rows) - 1, 0)} shared), 95% over prompts:\n")
        print("| x | " + " | ".join(objectives) + " |")
        print("|---|" + "---|" * len(objectives))
        print("\n".join(rows))


def same_x_differences(results, a: str, b: str, draws: int, seed: int = 0) -> list[str]:
    """Rows of a table: for each ``x`` that runs ``a`` and ``b`` both evaluated (two families
    of one space, such as ``decoding`` and ``interpolation`` at equal weights), ``b`` minus
    ``a`` per objective with its 95% interval from the joint bootstrap over prompts (the same
    prompt draws for every trial), then their mean over the shared ``x``."""
    by_label = {r.spec.label: r for r in results}
    ra, rb = by_label[a], by_label[b]
    shared, rows = [], []
    for xa, sa in zip(ra.x, ra.prompt_scores, strict=True):
        for xb, sb in zip(rb.x, rb.prompt_scores, strict=True):
            if np.shape(xa) == np.shape(xb) and np.allclose(xa, xb, atol=1e-9):
                shared.append(np.round(np.asarray(xa), 3).tolist())
                rows += [sa, sb]
                break
    if not shared:
        return []
    boot = joint_bootstrap(PromptScores.from_rows(rows), n_draws=draws, seed=seed)
    diff_means = boot.means[1::2] - boot.means[0::2]  # shared x, objectives
    diff_draws = boot.draws[:, 1::2] - boot.draws[:, 0::2]  # draws, shared x, objectives
    names = [*map(str, shared), f"mean of the {len(shared)}"]
    means = [*diff_means, diff_means.mean(axis=0)]
    per_draw = [*diff_draws.transpose(1, 0, 2), diff_draws.mean(axis=1)]
    out = []
    for name, mean, draw in zip(names, means, per_draw, strict=True):
        low, high = percentile_interval(draw, 0.95)
        cells = [
            f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" + (" *" if lo > 0 or hi < 0 else "")
            for d, lo, hi in zip(mean, low, high, strict=True)
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


if __name__ == "__main__":
    main()
