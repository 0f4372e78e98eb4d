"""What racing saves: one study run twice, every prompt for every candidate against racing.

    python benchmarks/racing.py [--zoo smol|tiny] [--prompts 32] [--budget 16]
        [--families interpolation,layerwise,rewards_in_context] [--max-new-tokens 80]
        [--batch 8] [--epsilon 0.05] [--data DIR] [--json OUT]
    python benchmarks/racing.py --compare FULL_URL RACING_URL [--batch 16] [--epsilon 0.05]

Runs the quickstart study (its families, driver, seed and generation settings; ``--prompts``
and ``--budget`` override its size) twice on the same prompts: first scoring every candidate on
every prompt, then racing (``racing: {batch, epsilon}``). Each mode starts with an empty
evaluation cache, so both generate everything they score. Prints one Markdown table, per run
and for the whole study: the prompt evaluations spent, the candidates raced out, the time, the
hypervolume of each mode's front (one reference point and normalisation per run, from both
modes' trials), its ratio, and the IGD+ of the racing front against the full front; and how
many trials reach P(non-dominated) >= 0.5 (paired bootstrap) in each mode.

``--compare`` prints the same table for two studies already run (one storage each, the one
with every prompt first), for example the quickstart with and without a ``racing:`` setting;
``--batch`` and ``--epsilon`` then only label the table, and the wall times are not known.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="smol", choices=["smol", "tiny"])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--families", default="interpolation,layerwise,rewards_in_context")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("FULL_URL", "RACING_URL"),
        help="tabulate two studies already run instead of running them",
    )
    args = parser.parse_args()
    if args.compare:
        measured = {
            m: {"runs": stored_runs(url), "wall_s": float("nan")}
            for m, url in zip(("full", "racing"), args.compare, strict=True)
        }
        args.prompts = prompt_count(measured["full"]["runs"][0])
        rows = table(measured, args.prompts)
        args.budget = max(r["trials"] for r in rows[:-1])
        print(markdown(rows, args))
        return

    import yaml

    from merging.study.runner import run_study
    from merging.study.spec import parse_study_spec
    from merging.zoo import default_zoo_dir, load_zoo
    from pareto.storage import sqlite_url

    zoo_folder = default_zoo_dir(args.zoo)  # before the cache moves to a fresh folder
    load_zoo(args.zoo, zoo_folder)  # built, or a clear error
    study = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "studies" / "quickstart.yaml").read_text()
    )
    wanted = args.families.split(",")
    study["families"] = [f for f in study["families"] if f["family"] in wanted]
    study.update(name="racing-bench", zoo=args.zoo, zoo_folder=str(zoo_folder))
    study["prompts"]["n"] = args.prompts
    study["search"]["budget"] = args.budget
    if args.max_new_tokens:
        study["generation"]["max_new_tokens"] = args.max_new_tokens

    measured = {}
    for mode in ("full", "racing"):
        spec = parse_study_spec(
            {
                **study,
                **(
                    {"racing": {"batch": args.batch, "epsilon": args.epsilon}}
                    if mode == "racing"
                    else {}
                ),
            }
        )
        folder = Path(tempfile.mkdtemp(prefix=f"racing-{mode}-"))
        os.environ["PARETOMERGE_CACHE"] = str(folder / "cache")  # an empty evaluation cache
        start = time.perf_counter()
        runs = run_study(
            spec, storage_url=sqlite_url(folder / "study.db"), data=args.data, log=lambda _: None
        )
        wall = time.perf_counter() - start
        measured[mode] = {"wall_s": wall, "runs": runs}
        print(f"{mode}: {wall:.0f} s", flush=True)
    rows = table(measured, args.prompts)
    print()
    print(markdown(rows, args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def stored_runs(url: str) -> list:
    """The runs of the one paretomerge study in the storage at ``url``."""
    from pareto.runs import open_runs, study_names
    from pareto.storage import open_storage

    try:
        storage = open_storage(url)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    names = study_names(storage)
    if len(names) != 1:
        raise SystemExit(f"{url}: holds {len(names)} studies ({', '.join(names)}), not one")
    return open_runs(storage, names[0])


def prompt_count(run) -> int:
    """How many prompts the study scored each candidate on: the base model's score rows."""
    from pareto.trial_records import trial_scores

    reference = run.study.user_attrs.get("reference") or {}
    scores = trial_scores(reference, run.spec.objectives)
    if scores is None:
        raise SystemExit("the study kept no per-prompt scores of the base model")
    return len(scores)


def table(measured: dict, n_prompts: int) -> list[dict]:
    """One row per run and one for the whole study."""
    from pareto.racing import front_recovered
    from pareto.report import study_report, trial_standing

    full_runs = measured["full"]["runs"]
    senses = full_runs[0].spec.senses
    results = {m: [r.results() for r in measured[m]["runs"]] for m in ("full", "racing")}
    rows = []
    groups = [(r.spec.label, [i]) for i, r in enumerate(full_runs)] + [
        ("whole study", list(range(len(full_runs))))
    ]
    for label, index in groups:
        values = {m: np.vstack([results[m][i].values for i in index]) for m in results}
        used = {
            m: sum(a.get("prompts_used", n_prompts) for i in index for a in results[m][i].attrs)
            for m in results
        }
        raced = sum(bool(a.get("raced_out")) for i in index for a in results["racing"][i].attrs)
        hv_full, hv_racing, igd = front_recovered(values["full"], values["racing"], senses)
        seconds = {
            m: sum(sum(a.get("timings", {}).values()) for i in index for a in results[m][i].attrs)
            for m in results
        }
        rows.append(
            {
                "run": label,
                "trials": len(values["full"]),
                "prompt_evaluations_full": int(used["full"]),
                "prompt_evaluations_racing": int(used["racing"]),
                "saved": 1 - used["racing"] / used["full"],
                "raced_out": raced,
                "seconds_full": seconds["full"],
                "seconds_racing": seconds["racing"],
                "hypervolume_full": hv_full,
                "hypervolume_racing": hv_racing,
                "hypervolume_ratio": hv_racing / hv_full if hv_full else float("nan"),
                "igd_plus": igd,
            }
        )
    for m in ("full", "racing"):
        reference = measured[m]["runs"][0].study.user_attrs.get("reference")
        standing = trial_standing(results[m], study_report(results[m]), reference=reference)
        rows[-1][f"p_nondominated_half_{m}"] = int((standing.p_nondominated >= 0.5).sum())
        rows[-1][f"wall_s_{m}"] = measured[m]["wall_s"]
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [
        f"Racing (batch {args.batch}, epsilon {args.epsilon}) against every prompt for every "
        f"candidate: {args.prompts} prompts, budget {args.budget} per run, {args.zoo} zoo.",
        "",
        "| run | trials | prompt evaluations: full | racing | saved | raced out "
        "| evaluation time: full | racing | hypervolume: full | racing | ratio | IGD+ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['trials']} | {r['prompt_evaluations_full']} | "
            f"{r['prompt_evaluations_racing']} | {r['saved']:.0%} | {r['raced_out']} | "
            f"{r['seconds_full']:.0f} s | {r['seconds_racing']:.0f} s | "
            f"{r['hypervolume_full']:.4f} | {r['hypervolume_racing']:.4f} | "
            f"{r['hypervolume_ratio']:.3f} | {r['igd_plus']:.4f} |"
        )
    last = rows[-1]
    walls = (
        f"Wall time of the whole study: full {last['wall_s_full']:.0f} s, racing "
        f"{last['wall_s_racing']:.0f} s. "
        if np.isfinite(last["wall_s_full"])
        else ""
    )
    lines += [
        "",
        f"{walls}Trials with P(non-dominated) >= 0.5 (paired bootstrap): "
        f"full {last['p_nondominated_half_full']}, racing {last['p_nondominated_half_racing']} "
        f"of {last['trials']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
