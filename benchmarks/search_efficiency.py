"""How much of the exhaustive grid's hypervolume each search driver reaches in few evaluations.

    python benchmarks/search_efficiency.py [--zoo tiny|smol] [--budget 30] [--prompts 8]
        [--max-new-tokens 12] [--families interpolation,layerwise] [--drivers all]
        [--divisions 10,4] [--data DIR] [--storage URL]

For each family, runs every driver (pymoo's nsga2, nsga3, moead, smsemoa and MAP; Optuna's
tpe, optuna-nsga2, gp, random) for ``--budget`` evaluations, plus an exhaustive Das-Dennis grid
of the same family (``--divisions``: per family, ``10`` gives 66 points of the 3-expert
simplex, ``4`` gives 15 x 15 = 225 points for 2 blocks of layers). All runs share one study,
one set of prompts and one evaluation cache, and all hypervolumes of a family use one
reference point and normalisation (the nadir and range of every point evaluated for that
family), so the fractions are comparable. Prints a Markdown table: the hypervolume after 10,
20 and 30 evaluations (in trial order) as a fraction of the grid's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"
DEFAULT_DRIVERS = (
    "nsga2",
    "nsga3",
    "moead",
    "smsemoa",
    "map",
    "tpe",
    "optuna-nsga2",
    "gp",
    "random",
)
FAMILY_SETTINGS = {"layerwise": {"blocks": 2}}


def study_spec(args, families: list[str], divisions: list[int], drivers: tuple[str, ...]):
    """One study: per family, the exhaustive grid and every driver on the same prompts."""
    from merging.study.spec import parse_study_spec

    runs = []
    for family, d in zip(families, divisions, strict=True):
        settings = FAMILY_SETTINGS.get(family, {})
        runs.append(
            {
                "family": family,
                "label": f"{family}.grid",
                "settings": settings,
                "driver": "grid",
                "budget": 100_000,
                "driver_settings": {"divisions": d},
            }
        )
        runs += [
            {"family": family, "label": f"{family}.{drv}", "settings": settings, "driver": drv}
            for drv in drivers
        ]
    return parse_study_spec(
        {
            "name": f"search-efficiency-{args.zoo}",
            "zoo": args.zoo,
            "families": runs,
            "prompts": {"hh_rlhf": ["helpful-base", "harmless-base"], "n": args.prompts},
            "generation": {"max_new_tokens": args.max_new_tokens},
            "search": {"budget": args.budget, "seed": args.seed},
        }
    )


def print_table(results: dict, families, drivers, senses, checkpoints: list[int]) -> None:
    """Each driver's hypervolume after k evaluations as a fraction of its family's grid's."""
    from pareto.hypervolume import hypervolume
    from pareto.reference import reference_point

    header = " | ".join(f"after {k}" for k in checkpoints)
    print(f"| family | driver | {header} |")
    print("|---|---|" + "---|" * len(checkpoints))
    for family in families:
        mine = {k: v for k, v in results.items() if k.startswith(f"{family}.")}
        every = np.vstack([r.values for r in mine.values()])
        ref = reference_point(every, senses)
        bounds = (every.min(axis=0), every.max(axis=0))  # the observed range
        grid = mine[f"{family}.grid"]
        grid_hv = hypervolume(grid.values, ref, senses, bounds=bounds)
        print(
            f"| {family} | grid ({len(grid.values)} points) | "
            + " | ".join(["1.000"] * len(checkpoints))
            + " |"
        )
        for drv in drivers:
            r = mine[f"{family}.{drv}"]
            cells = [
                f"{hypervolume(r.values[:k], ref, senses, bounds=bounds) / grid_hv:.3f}"
                for k in checkpoints
            ]
            print(f"| {family} | {drv} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="tiny", choices=["tiny", "smol"])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--families", default="interpolation,layerwise")
    parser.add_argument("--drivers", default="all")
    parser.add_argument("--divisions", default="10,4", help="grid divisions, one per family")
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--storage", help="Optuna storage URL (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from merging.study.runner import run_study

    families = args.families.split(",")
    divisions = [int(d) for d in args.divisions.split(",")]
    drivers = DEFAULT_DRIVERS if args.drivers == "all" else tuple(args.drivers.split(","))
    spec = study_spec(args, families, divisions, drivers)
    storage = args.storage or f"sqlite:///{tempfile.mkdtemp()}/search.db"
    start = time.perf_counter()
    done = run_study(spec, storage_url=storage, data=args.data, log=lambda _: None)
    seconds = time.perf_counter() - start
    results = {r.spec.label: r.results() for r in done}
    checkpoints = [k for k in (10, 20, 30) if k <= args.budget] or [args.budget]

    print(
        f"\n{args.zoo} zoo, {args.prompts} prompts, {args.max_new_tokens} new tokens; "
        f"{sum(len(r.values) for r in results.values())} evaluations in {seconds:.0f} s\n"
    )
    print_table(results, families, drivers, done[0].spec.senses, checkpoints)
    print(
        "\nhypervolume as a fraction of the exhaustive grid's, same reference point and "
        "normalisation within a family (values above 1 beat the grid)"
    )


if __name__ == "__main__":
    main()
