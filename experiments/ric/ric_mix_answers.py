"""Answers of linear merges of a zoo's experts to its RiC training prompts, as extra RiC data.

    python experiments/ric/ric_mix_answers.py --zoo ZOO --mix 0,0.5,0.5 --out /tmp/mix.json
    python experiments/ric/ric_retrain.py --zoo ZOO --extra-answers /tmp/mix.json --out /tmp/ric-mix

The experts alone give no harmless answer that is not also long; an even merge of the
harmlessness and concise experts answers both harmlessly and briefly. ``--mix`` gives one
policy's weights on the experts, in the order the zoo lists them (``zoo show``); repeat it for
several. The output has the saved answers' layout, with the mixes as its policies. Measured in
docs/ric-investigation.md ("Answers from a merge of the harmlessness and concise experts"; not
adopted by the builder).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ric_retrain import saved_answers  # this folder: on the path as a script


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python experiments/ric/ric_mix_answers.py --mix 0,0.5,0.5 --out mix.json",
    )
    parser.add_argument("--preset", default="smol", help="preset whose settings to use")
    parser.add_argument("--zoo", help="zoo folder (default: the user cache)")
    parser.add_argument(
        "--mix", action="append", required=True, help="weights on the experts, e.g. 0,0.5,0.5"
    )
    parser.add_argument("--out", required=True, help="JSON file for the answers")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args()

    from tqdm import tqdm

    from merging.data import Prompt
    from merging.device import resolve_device
    from merging.zoo import load_zoo
    from merging.zoo.presets import PRESETS
    from merging.zoo.ric_data import policy_answers

    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists already: choose another --out")
    zoo = load_zoo(args.preset, args.zoo)
    saved = saved_answers(zoo, [])
    experts = {name: Path(path) for name, path in zoo.experts.items()}
    names = list(experts)
    mixes = [[float(w) for w in text.split(",")] for text in args.mix]
    if any(len(m) != len(names) for m in mixes):
        raise SystemExit(f"--mix: one weight per expert ({', '.join(names)})")
    prompts = [Prompt(tuple(m)) for m in saved["prompts"]]
    bar = tqdm(total=len(prompts) * len(mixes), desc="answers", unit="answer")
    start = time.perf_counter()
    responses, finished = policy_answers(
        Path(zoo.base),
        experts,
        prompts,
        max_new_tokens=PRESETS[args.preset].ric_answer_tokens,
        device=str(resolve_device(args.device)),
        mixes=mixes,
        progress=bar.update,
    )
    bar.close()
    record = {"prompts": saved["prompts"], "experts": [f"mix {m}" for m in args.mix]}
    record |= {"responses": responses, "finished": finished, "mixes": mixes}
    out.write_text(json.dumps(record) + "\n")
    seconds = time.perf_counter() - start
    shares = [round(sum(f) / len(f), 3) for f in finished]
    print(f"{len(mixes)} policies, {len(prompts)} prompts, {seconds:.0f} s; finished {shares}")


if __name__ == "__main__":
    main()
