"""Retrain a zoo's rewards-in-context model from its saved answers, with more steps or elsewhere.

    python experiments/ric/ric_retrain.py --out /tmp/ric-800 --steps 800 --device cuda [--zoo DIR]
        [--preset smol] [--batch-size 8] [--learning-rate 1e-3] [--contrast 2.0] [--seed 2]
        [--train-tokens 96] [--marker-weights 0.25,1,1] [--one-marker 0.5]
        [--contrast-tokens 8,32,8] [--random-batches] [--policy-weight 0,1]
        [--extra-answers mix.json]
    python experiments/zoo_report.py --zoo /tmp/ric-800 --ric-only

The zoo builder's RiC step is limited to what 2 CPU cores do in its share of 30 minutes (about
90 steps of 8 answers; docs/ric-investigation.md). This script trains the RiC model again, the
builder's way (:func:`merging.zoo.ric_data.build_ric_examples` on the experts' answers the build
saved in ``ric/answers.json``, then :func:`merging.zoo.ric_training.train_ric_lora` with the
preset's settings), changing only what its options say, so that a longer run or one on a GPU
can be measured against the build's own. ``--out`` becomes a zoo folder: its ``zoo.json`` is the
source zoo's manifest with ``ric`` pointing at the new model (base, heads and experts are the
source zoo's, not copied), which ``zoo_report.py --zoo`` reads; ``ric/step.json`` records the
training's time, metrics and settings, as the builder's step does, with the contrastive
margin per reward (which markers the run learned to read) and by tenth of training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python experiments/ric/ric_retrain.py --out /tmp/ric-800 --steps 800",
    )
    parser.add_argument("--preset", default="smol", help="preset whose settings to start from")
    parser.add_argument("--zoo", help="source zoo folder (default: the user cache)")
    parser.add_argument("--out", required=True, help="folder for the new zoo manifest and model")
    parser.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="answers a step (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, help="default: the preset's")
    parser.add_argument("--contrast", type=float, help="contrastive weight (default: preset's)")
    parser.add_argument(
        "--contrast-tokens",
        help="first response tokens the contrastive term compares: one count, or one per reward "
        "(helpfulness,harmlessness,verbosity: the marker a row's counterfactual changed), "
        "e.g. 8,32,8 (default: the preset's)",
    )
    parser.add_argument(
        "--train-tokens", type=int, help="response tokens trained on (default: the preset's)"
    )
    parser.add_argument(
        "--marker-weights",
        help="how often each reward's marker is shown alone or varied, e.g. 0.25,1,1 "
        "(default: the builder's)",
    )
    parser.add_argument(
        "--one-marker", type=float, help="share of one-marker examples (default: the builder's)"
    )
    parser.add_argument(
        "--policy-weight",
        help="move each head's rank this share of the way to its policy's mean rank over the "
        "prompts of the same source: one share, or one per head (helpfulness,harmlessness), "
        "e.g. 0,1 (default: the builder's)",
    )
    parser.add_argument(
        "--random-batches",
        action="store_true",
        help="draw each batch at random instead of grouping answers of similar length",
    )
    parser.add_argument(
        "--extra-answers",
        action="append",
        default=[],
        help="more policies' answers to the same prompts, to train on too "
        "(experiments/ric/ric_mix_answers.py writes them); repeatable",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--seed", type=int, help="of the examples' draw and the training (default: the preset's)"
    )
    args = parser.parse_args()

    from tqdm import tqdm

    from merging.device import build_dtype, resolve_device
    from merging.zoo import load_zoo
    from merging.zoo.presets import PRESETS, ric_data_settings, ric_training_settings
    from merging.zoo.progress import STEP_FILE
    from merging.zoo.ric_data import REWARDS
    from merging.zoo.ric_training import train_ric_lora

    preset = PRESETS[args.preset]
    zoo = load_zoo(args.preset, args.zoo)
    out = Path(args.out).expanduser()
    if (out / "ric").exists():
        raise SystemExit(f"{out / 'ric'} exists already: choose another --out")
    answers = saved_answers(zoo, args.extra_answers)
    weights = [float(w) for w in args.marker_weights.split(",")] if args.marker_weights else None
    data_settings = ric_data_settings(preset) | given(
        marker_weights=weights,
        one_marker=args.one_marker,
        policy_weight=shares(args.policy_weight),
        seed=args.seed,
    )
    examples, spec = ric_examples(zoo, answers, data_settings)
    folder = out / "ric"
    folder.mkdir(parents=True)
    spec.save(folder)
    settings = ric_training_settings(preset) | given(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        contrast=args.contrast,
        contrast_tokens=counts(args.contrast_tokens),
        max_response_tokens=args.train_tokens,
        length_batches=False if args.random_batches else None,
        seed=args.seed,
    )
    bar = tqdm(total=settings["steps"], desc="RiC training", unit="step")
    device = str(resolve_device(args.device))
    start = time.perf_counter()
    metrics = train_ric_lora(
        Path(zoo.base),
        examples,
        REWARDS,
        folder,
        **settings,
        words=spec.words,
        device=device,
        report=lambda done, _: bar.update(done - bar.n),
    )
    bar.close()
    seconds = round(time.perf_counter() - start, 1)
    metrics |= {"device": device, "retrained": True, **data_settings}
    metrics |= {"dtype": build_dtype(device)}
    metrics |= {"policies": answers["experts"]}  # the experts, then any --extra-answers
    record = {"seconds": seconds, "metrics": metrics, "training": settings}
    (folder / STEP_FILE).write_text(json.dumps(record, indent=2) + "\n")
    manifest = zoo.model_copy(update={"folder": str(out.resolve()), "ric": str(folder.resolve())})
    (out / "zoo.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"measure it: python experiments/zoo_report.py --zoo {out} --ric-only")


def saved_answers(zoo, extras: list[str]) -> dict:
    """The answers the zoo's RiC step saved (``ric/answers.json``: prompts, and per policy its
    responses and whether each ended), with the policies of each ``extras`` file after them; a
    zoo without them, or an extra file answering other prompts, stops with one line."""
    from merging.zoo.steps import ANSWERS_FILE

    if zoo.ric is None:
        raise SystemExit(f"the zoo at {zoo.folder} has no RiC model, so no saved answers")
    saved = Path(zoo.ric) / ANSWERS_FILE
    if not saved.is_file():
        raise SystemExit(f"{saved} is missing: rebuild the zoo's ric step to save its answers")
    answers = json.loads(saved.read_text())
    for extra in extras:
        more = json.loads(Path(extra).read_text())
        if more["prompts"] != answers["prompts"]:
            raise SystemExit(f"{extra} answers other prompts than {saved}")
        for key in ("experts", "responses", "finished"):
            answers[key] = answers[key] + more[key]
    return answers


def ric_examples(zoo, answers: dict, data_settings: dict) -> tuple:
    """``(examples, spec)`` from :func:`saved_answers`, as the builder's RiC step makes them
    (:func:`merging.zoo.ric_data.build_ric_examples`) with these data settings."""
    from merging.data import Prompt
    from merging.zoo.ric_data import answer_sources, build_ric_examples

    prompts = [Prompt(tuple(m)) for m in answers["prompts"]]
    return build_ric_examples(
        prompts,
        answers["responses"],
        answers["finished"],
        {name: Path(zoo.heads[name]) for name in ("helpfulness", "harmlessness")},
        Path(zoo.base),
        sources=answer_sources(len(prompts)),
        **data_settings,
    )


def counts(text: str | None) -> int | list[int] | None:
    """``--contrast-tokens``: one count, or a comma-separated count per reward."""
    if text is None:
        return None
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def shares(text: str | None) -> float | list[float] | None:
    """``--policy-weight``: one share, or a comma-separated share per head."""
    if text is None:
        return None
    values = [float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def given(**overrides) -> dict:
    """The options the user gave (an explicit 0 included), to override the preset's."""
    return {k: v for k, v in overrides.items() if v is not None}


if __name__ == "__main__":
    main()
