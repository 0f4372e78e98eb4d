"""How a zoo's RiC examples label each policy's answers: harmlessness and verbosity level words.

    python experiments/ric/ric_labels.py --zoo ZOO [--marker-weights 0.25,1,4]
        [--extra-answers mix.json]

Builds the RiC examples from the answers the zoo's build saved (``ric/answers.json``), the
builder's way (:func:`merging.zoo.ric_data.build_ric_examples`, the preset's settings), and counts,
per policy, the (harmlessness, verbosity) level words of its examples: those showing more than
one marker, and those showing one alone (the others written as 0.0, the middle word). A sweep of
one desired reward asks for what the second kind shows, so a combination it never shows is one
the model was not taught (docs/ric-investigation.md, "Answers from a merge of the harmlessness
and concise experts").
"""

from __future__ import annotations

import argparse
from collections import Counter

from ric_retrain import ric_examples, saved_answers  # this folder: on the path as a script


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python experiments/ric/ric_labels.py --zoo /tmp/zoo32",
    )
    parser.add_argument("--preset", default="smol", help="preset whose settings to use")
    parser.add_argument("--zoo", help="zoo folder (default: the user cache)")
    parser.add_argument("--marker-weights", help="e.g. 0.25,1,4 (default: the builder's)")
    parser.add_argument(
        "--extra-answers", action="append", default=[], help="more policies' answers (repeatable)"
    )
    args = parser.parse_args()

    from merging.ric import level_word
    from merging.zoo import load_zoo
    from merging.zoo.presets import PRESETS, ric_data_settings

    zoo = load_zoo(args.preset, args.zoo)
    answers = saved_answers(zoo, args.extra_answers)
    settings = ric_data_settings(PRESETS[args.preset])
    if args.marker_weights:
        settings["marker_weights"] = [float(w) for w in args.marker_weights.split(",")]
    examples, spec = ric_examples(zoo, answers, settings)
    prompts = answers["prompts"]
    policies = answers["experts"]
    for p, name in enumerate(policies):
        counts = {"multi": Counter(), "alone": Counter()}
        for example in examples[p :: len(policies)]:  # rows are prompt-major
            words = [level_word(v, w) for v, w in zip(example.scores, spec.words, strict=True)]
            shown = sum(v != 0.0 for v in example.scores)
            counts["multi" if shown > 1 else "alone"][f"{words[1]}/{words[2]}"] += 1
        finished = sum(answers["finished"][p]) / len(prompts)
        print(f"{name} ({finished:.0%} finished)")
        for kind, found in counts.items():
            print(f"  {kind}: " + ", ".join(f"{k} {n}" for k, n in found.most_common()))


if __name__ == "__main__":
    main()
