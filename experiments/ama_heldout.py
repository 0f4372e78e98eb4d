"""Does AMA learn on these experts? Each learned point of a study's ``ama`` run against the
even average it started from, on held-out rows (the evaluation side of the prompt-hash split,
which learning never saw): every stand-in's loss, and the total weighted by the point's own
preference vector. A point that learned has a lower weighted total than the start.

    python experiments/ama_heldout.py studies/methods.yaml --storage URL --data DIR \
        [--run ama] [--rows 32]

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
    args = p.parse_args()
    spec = load_study_spec(args.study_file)
    [run] = [
        r for r in open_runs(open_storage(args.storage), spec.name) if r.spec.label == args.run
    ]
    results = run.results()
    settings = next(f for f in spec.families if f.run_label == args.run).search(spec.search)
    beta = float(settings.settings.get("beta", 0.1))
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
    better = 0
    for number, x, attrs in zip(results.numbers, results.x, results.attrs, strict=True):
        pref = np.asarray(attrs["preference"])
        learned = np.asarray(learner.losses(np.asarray(x), beta))
        before, after = float(pref @ at_start), float(pref @ learned)
        better += after < before
        cells = " | ".join(
            f"{v:.4f} ({v - s:+.4f})" for v, s in zip(learned, at_start, strict=True)
        )
        print(
            f"| {args.run}#{number} | {np.round(pref, 3).tolist()} | {cells} | "
            f"{before:.4f} → {after:.4f} |"
        )
    print(f"\n{better} of {len(results.numbers)} learned points lower their weighted held-out loss")


if __name__ == "__main__":
    main()
