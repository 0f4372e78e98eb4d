"""What racing would have saved on a study already run with every prompt: a replay.

    python experiments/racing_replay.py --storage sqlite:///runs/methods/study.db \
        --study methods [--batches 4,8] [--epsilons 0.05,0.1,0.2]

Each run's completed trials are taken in the order they were evaluated and raced, one after
another, against the trials replayed before them (:func:`pareto.racing.race`), reading each
batch from the trial's stored per-prompt scores instead of generating it. The candidates are
the ones the driver chose when it saw full evaluations, so this measures the stopping rule,
not a driver that sees raced values. Prints, per setting and run, the prompt evaluations
spent, the candidates raced out, and the hypervolume and IGD+ of the replayed values (raced
ones estimated through the base model, :func:`pareto.racing.raced_estimate`) against the
full ones, in one normalisation per run.
"""

from __future__ import annotations

import argparse

import numpy as np


def replay(scores: list[np.ndarray], senses, settings) -> tuple[list[np.ndarray], list]:
    """Race each trial's ``(n, m)`` scores against the ones before it; the scores each kept and
    the race results."""
    from pareto.racing import race

    kept, outcomes = [], []
    for s in scores:
        outcome = race(lambda lo, hi, s=s: s[lo:hi], len(s), kept, senses, settings)
        kept.append(outcome.scores)
        outcomes.append(outcome)
    return kept, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--batches", default="4,8")
    parser.add_argument("--epsilons", default="0.05,0.1,0.2")
    parser.add_argument("--runs", default=None, help="comma-separated run names (default all)")
    args = parser.parse_args()

    from pareto.racing import RacingSettings, front_recovered, raced_estimate
    from pareto.runs import open_runs
    from pareto.storage import open_storage
    from pareto.trial_records import trial_attrs, trial_scores

    runs = open_runs(open_storage(args.storage), args.study)
    if args.runs:
        runs = [r for r in runs if r.spec.label in args.runs.split(",")]
    stored = []  # each run's base scores and its trials' per-prompt scores, read once
    for run in runs:
        names = run.spec.objectives
        trials = sorted(run.trials(), key=lambda t: t.number)
        scores = [trial_scores(trial_attrs(t), names) for t in trials if t.values]
        scores = [s for s in scores if s is not None]
        if scores:
            anchor = trial_scores(run.study.user_attrs.get("reference") or {}, names)
            stored.append((run.spec, anchor, scores))
    print(
        "| batch | epsilon | run | trials | prompt evaluations: full | replayed | saved "
        "| raced out | hypervolume ratio | IGD+ |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        for eps in (float(e) for e in args.epsilons.split(",")):
            settings = RacingSettings(batch=batch, epsilon=eps)
            for spec, anchor, scores in stored:
                kept, outcomes = replay(scores, spec.senses, settings)
                full = np.array([s.mean(axis=0) for s in scores])
                raced = np.array(
                    [
                        raced_estimate(k, anchor)[0] if o.raced_out else k.mean(axis=0)
                        for k, o in zip(kept, outcomes, strict=True)
                    ]
                )
                hv_full, hv_raced, igd = front_recovered(full, raced, spec.senses)
                spent = sum(len(k) for k in kept)
                total = sum(len(s) for s in scores)
                print(
                    f"| {batch} | {eps} | {spec.label} | {len(scores)} | {total} | {spent} "
                    f"| {1 - spent / total:.0%} | {sum(o.raced_out for o in outcomes)} "
                    f"| {hv_raced / hv_full:.3f} | {igd:.4f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
