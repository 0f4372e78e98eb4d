"""Two ``paretomerge study run`` processes on one SQLite study, started together, N times.

    python experiments/two_study_runs.py [--repeats 20] [--data DIR] [--zoo tiny]

Each repetition writes a small study (the tiny zoo's interpolation and layerwise families,
NSGA-II, budget 8 each, 4 prompts) into a fresh folder, starts two ``study run`` processes on
it at once, and checks what they left: each run's complete trials equal its budget, no
(generation, slot) and no point was evaluated twice, both processes exited 0 and neither
printed a traceback. Prints one line per repetition and a summary; exit status 1 if any
repetition failed. ``tests/pareto/test_two_drivers.py`` checks the same through the search loop
with a closed form, 20 times per driver, in the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"

STUDY = {
    "name": "two",
    "zoo": "tiny",
    "families": [{"family": "interpolation"}, {"family": "layerwise", "settings": {"blocks": 2}}],
    "prompts": {"hh_rlhf": ["helpful-base"], "split": "evaluation", "n": 4},
    "generation": {"max_new_tokens": 4},
    "search": {"driver": "nsga2", "budget": 8, "seed": 0, "settings": {"population": 4}},
}


def check(url: str) -> list[str]:
    """What is wrong with the study the two processes left (empty when nothing is)."""
    import numpy as np

    from pareto.runs import open_runs
    from pareto.storage import open_storage

    problems = []
    for run in open_runs(open_storage(url), STUDY["name"]):
        counts, results = run.counts(), run.results()
        if counts.complete != run.spec.budget:
            problems.append(
                f"{run.spec.label}: {counts.complete} complete, budget {run.spec.budget}"
            )
        slots = Counter((a.get("generation"), a.get("slot")) for a in results.attrs)
        points = Counter(tuple(np.round(np.ravel(x), 12)) for x in results.x)
        if max(slots.values(), default=0) > 1 or max(points.values(), default=0) > 1:
            problems.append(f"{run.spec.label}: a trial was evaluated twice")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--data", default=str(SHARED))
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PARETOMERGE_DATA": args.data}
    paretomerge = str(Path(sys.executable).with_name("paretomerge"))
    command = [paretomerge, "study", "run", "study.yaml", "--no-show"]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="two-runs-") as tmp:
        for repeat in range(args.repeats):
            folder = Path(tmp) / str(repeat)
            folder.mkdir()
            (folder / "study.yaml").write_text(yaml.safe_dump(STUDY))
            start = time.perf_counter()
            processes = [
                subprocess.Popen(
                    command,
                    cwd=folder,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            outputs = [p.communicate()[1] for p in processes]
            seconds = time.perf_counter() - start
            problems = [f"exit status {p.returncode}" for p in processes if p.returncode]
            problems += ["a traceback" for err in outputs if "Traceback" in err]
            db = folder / "runs" / STUDY["name"] / "study.db"
            problems += check(f"sqlite:///{db}") if db.is_file() else ["no study.db"]
            failed += bool(problems)
            print(f"repeat {repeat + 1}: {seconds:.1f} s, {'; '.join(problems) or 'ok'}")
            if problems:
                for err in outputs:
                    print("  " + "\n  ".join(err.strip().splitlines()[-5:]))
    print(f"{args.repeats - failed} of {args.repeats} repetitions ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
