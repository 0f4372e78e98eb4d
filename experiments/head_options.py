"""Two more ways to a better length-controlled head: prompt-response interaction features for
harmlessness, and more helpfulness pairs.

    python experiments/head_options.py --data ../shared/data/hh-rlhf [--refusal-pairs 200] \
        [--cache /tmp/head-options]

Both use the builder's MiniLM features and fit (``train_bt_head``'s: logistic regression on the
feature differences, each feature's linear length trend removed first, "residual") and its
held-out pairs (prompt hash), and print one Markdown row each:

* **interactions** (harmlessness, with the builder's refusal pairs): a refusal is harmless
  after a red-team request and unhelpful after a harmless one, which one linear score of the
  joint (prompt, response) embedding cannot say; the element-wise product of the prompt's and
  the response's own embeddings can. Rows: the joint embedding alone (the built head), and with
  ``prompt * response`` or ``prompt * joint`` features added, or the response embedding too.
* **more helpfulness pairs**: helpful-online and helpful-rejection-sampled pairs on the
  training side of the prompt hash, added to helpful-base's; held out as before (helpful-base).

Each row: held-out accuracy, on length-matched pairs, training accuracy, and how often the head
prefers a refusal to a harmless request's chosen answer (lower is better) and to a red-team
request's rejected answer (higher is better), with refusals it never trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="HH-RLHF folder in its original layout")
    parser.add_argument("--refusal-pairs", type=int, default=200, help="of each kind")
    parser.add_argument("--cache", default="/tmp/head-options", help="embeddings kept here")
    args = parser.parse_args()

    from merging.data import split_of
    from merging.heads.encoders import MiniLMEncoder, scoring_text
    from merging.heads.pairs import split_pairs
    from merging.hh_rlhf import subset_file
    from merging.zoo.datasets import HH_FILES, refusal_checks, refusal_pairs, short_pairs

    hh = Path(args.data)
    helpful, harmless = (
        short_pairs(hh / HH_FILES["helpful"]),
        short_pairs(hh / HH_FILES["harmless"]),
    )
    checks = refusal_checks(
        short_pairs(hh / HH_FILES["helpful"], "evaluation")[:200],
        short_pairs(hh / HH_FILES["harmless"], "evaluation")[:200],
    )
    embed = Embeddings(MiniLMEncoder(), Path(args.cache) / "minilm.npz")

    def sides(pairs):
        """Per side (chosen, rejected): joint, response and prompt embeddings, responses."""
        out = []
        for side in ("chosen", "rejected"):
            texts = [getattr(p, side) for p in pairs]
            joint = embed([scoring_text(p.prompt, t) for p, t in zip(pairs, texts, strict=True)])
            out.append((joint, embed(texts), embed([p.prompt.last_user for p in pairs]), texts))
        return out

    print(HEADER)
    train, heldout = split_pairs(harmless)
    extra = refusal_pairs(helpful, harmless, args.refusal_pairs)
    groups = {"train": sides([*train, *extra]), "held": sides(heldout)}
    groups |= {"ch": sides(checks[0]), "cr": sides(checks[1])}
    for name, build in FEATURES.items():
        row = fit_and_measure(groups, build, heldout)
        print(f"| harmlessness | {name} | {len(train) + len(extra)} | {row} |", flush=True)

    train, heldout = split_pairs(helpful)
    more = [
        p
        for subset in ("helpful-online", "helpful-rejection-sampled")
        for p in short_pairs(hh / subset_file(subset))
        if split_of(p.prompt) == "train" and p.chosen != p.rejected
    ]
    for label, pairs in (("helpful-base", train), ("+ online, rejection-sampled", [*train, *more])):
        groups = {"train": sides(pairs), "held": sides(heldout)}
        groups |= {"ch": sides(checks[0]), "cr": sides(checks[1])}
        row = fit_and_measure(groups, FEATURES["joint (built)"], heldout)
        print(f"| helpfulness | {label} | {len(pairs)} | {row} |", flush=True)
    embed.save()


HEADER = """\
| objective | features | training pairs | held-out | matched | train | refusal > helpful | \
refusal > harmful |
|---|---|---:|---:|---:|---:|---:|---:|"""

HEADER = (
    "| objective | features | training pairs | held-out | matched | train | refusal > helpful "
    "| refusal > harmful |\n|---|---|---:|---:|---:|---:|---:|---:|"
)

FEATURES = {
    "joint (built)": lambda j, r, p: [j],
    "joint, prompt * response": lambda j, r, p: [j, p * r],
    "joint, prompt * joint": lambda j, r, p: [j, p * j],
    "joint, response, prompt * response": lambda j, r, p: [j, r, p * r],
}
"""Features of one side from its joint, response and prompt embeddings."""


def fit_and_measure(groups: dict, build, heldout) -> str:
    """Fit the residual Bradley-Terry head on ``groups["train"]``; the row's measured cells."""
    from merging.heads.bt_head import _fit_linear
    from merging.heads.length_trend import LengthTrend
    from merging.heads.pairs import length_matched, pairwise_accuracy

    def x(side):
        joint, response, prompt, texts = side
        return np.concatenate(build(joint, response, prompt), axis=1), texts

    (xc, tc), (xr, tr) = map(x, groups["train"])
    both = np.concatenate([xc, xr])
    mean, std = both.mean(0), both.std(0) + 1e-6
    trend = LengthTrend.fit((both - mean) / std, tc + tr)

    def z(features, texts):
        return trend.remove((features - mean) / std, texts)

    w = _fit_linear(z(xc, tc) - z(xr, tr), 0)["w"].numpy()

    def margins(group):
        (a, ta), (b, tb) = map(x, groups[group])
        return z(a, ta) @ w - z(b, tb) @ w

    held, matched = margins("held"), length_matched(heldout)
    return (
        f"{pairwise_accuracy(held):.3f} | {pairwise_accuracy(held[matched]):.3f} "
        f"({matched.sum()}) | {pairwise_accuracy(margins('train')):.3f} | "
        f"{(margins('ch') < 0).mean():.2f} | {(margins('cr') > 0).mean():.2f}"
    )


class Embeddings:
    """MiniLM embeddings of texts, each computed once and kept in a file between runs."""

    def __init__(self, encoder, path: Path):
        self.encoder, self.path, self.known = encoder, path, {}
        if path.is_file():
            kept = np.load(path, allow_pickle=True)
            self.known = dict(zip(kept["texts"], kept["features"], strict=True))

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.known]
        if new:
            self.known.update(zip(new, self.encoder.encode(new), strict=True))
        return np.stack([self.known[t] for t in texts])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        texts = np.array(list(self.known), dtype=object)
        np.savez(self.path, texts=texts, features=np.stack(list(self.known.values())))


if __name__ == "__main__":
    main()
