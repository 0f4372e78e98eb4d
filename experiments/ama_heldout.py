"""Does AMA learn on these experts? Each learned point of a study's ``ama`` run against the
even average it started from, on held-out rows (the evaluation side of the prompt-hash split,
which learning never saw): every stand-in's loss, and the total weighted by the point's own
preference vector. A point that learned has a lower weighted total than the start.

    python experiments/ama_heldout.py studies/methods.yaml --storage URL --data DIR \
        [--run ama] [--rows 32] [--trials 0 1 2 3] [--relearn STEPS PAIRS_PER_STEP]

``--relearn`` learns each chosen point's preference again with other settings (the study's
learning rate, penalty and beta, on the same training rows' side of the split) and adds its
held-out losses as a row ``relearned``: is a point that did not learn short of data?

Written for issue 37's comparison (docs/methods.md): the learning curve a study records is
the loss of each step's few training pairs, too noisy to say whether learning helped.
"""

from __future__ import annotations

import argparse

import numpy as np

from merging.ama import RatioLearner
from merging.stand_ins import load_stand_in
from merging.study.session import StudySession
from merging.study.spec import load_study_spec
from pareto.runs import open_runs
from pareto.storage import open_storage


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study_file")
    p.add_argument("--storage", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--run", default="ama")
    p.add_argument("--rows", type=int, default=32, help="held-out rows per stand-in")
    p.add_argument("--trials", type=int, nargs="+", help="these trial numbers only")
    p.add_argument("--relearn", type=int, nargs=2, metavar=("STEPS", "PAIRS_PER_STEP"))
    args = p.parse_args()
    spec = load_study_spec(args.study_file)
    [run] = [
        r for r in open_runs(open_storage(args.storage), spec.name) if r.spec.label == args.run
    ]
    results = run.results()
    settings = next(f for f in spec.families if f.run_label == args.run).search(spec.search)
    driver = dict(settings.settings)
    beta = float(driver.get("beta", 0.1))
    session = StudySession(spec, data=args.data, evaluate=False, build=False)
    family = session.families[args.run]
    sources = results.attrs[0]["stand_ins"]
    stand_ins = [
        load_stand_in(o, sources[o], session.data, "evaluation", args.rows)
        for o in run.spec.objectives
    ]
    learner = RatioLearner(session.merger(family), family.blocks, session.tokenizer(), stand_ins)
    k = len(run.spec.experts)
    start = np.full((family.blocks, k), 1.0 / k)
    at_start = np.asarray(learner.losses(start, beta))
    names = list(run.spec.objectives)
    print(f"held-out rows per stand-in: {[len(s.pairs) for s in stand_ins]}, beta {beta}")
    print("even start: " + ", ".join(f"{n} {v:.4f}" for n, v in zip(names, at_start, strict=True)))
    print("\n| trial | preference | " + " | ".join(names) + " | weighted: start → learned |")
    print("|---|---|" + "---|" * len(names) + "---|")
    trainer = None
    if args.relearn:
        steps, per_step = args.relearn
        train = [
            load_stand_in(o, sources[o], session.data, "train", min(256, steps * per_step))
            for o in run.spec.objectives
        ]
        trainer = RatioLearner(session.merger(family), family.blocks, session.tokenizer(), train)
    better, shown = 0, 0
    for number, x, attrs in zip(results.numbers, results.x, results.attrs, strict=True):
        if args.trials and number not in args.trials:
            continue
        pref = np.asarray(attrs["preference"])
        points = [(f"{args.run}#{number}", np.asarray(x))]
        if trainer is not None:
            ratios, _ = trainer.learn(
                pref,
                steps=args.relearn[0],
                pairs_per_step=args.relearn[1],
                learning_rate=float(driver.get("learning_rate", 0.2)),
                penalty=float(driver.get("penalty", 0.1)),
                beta=beta,
            )
            shown_ratios = np.round(ratios, 2).tolist()
            points.append((f"relearned {args.relearn[0]}x{args.relearn[1]} {shown_ratios}", ratios))
        for name, ratios in points:
            learned = np.asarray(learner.losses(ratios, beta))
            before, after = float(pref @ at_start), float(pref @ learned)
            better += after < before and name.startswith(args.run)
            cells = " | ".join(
                f"{v:.4f} ({v - s:+.4f})" for v, s in zip(learned, at_start, strict=True)
            )
            print(
                f"| {name} | {np.round(pref, 3).tolist()} | {cells} | {before:.4f} → {after:.4f} |"
            )
        shown += 1
    print(f"\n{better} of {shown} learned points lower their weighted held-out loss")


if __name__ == "__main__":
    main()
