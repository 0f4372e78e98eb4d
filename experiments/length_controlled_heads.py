"""Do the zoo's reward heads measure their objective, or the answer's length? Options compared.

    python experiments/length_controlled_heads.py --data ../shared/data/hh-rlhf \
        --generations /tmp/qs0/evaluations [--encoders minilm,policy] [--cache /tmp/headexp] \
        [--layers 8,12,16,20,30 [--views 8,16]] [--fits bt,residual] [--refusal-pairs 300]

``--layers``: a causal-LM encoder's features after each of these decoder layers, from one
forward pass, each compared as its own encoder (``policy@8``...).

For each encoder (features computed once and kept in ``--cache``) and each way of fitting a
Bradley-Terry head, prints one Markdown row per objective:

* held-out accuracy on the pairs the builder holds out (prompt hash), overall and on the
  length-matched ones (the longer side at most 30% longer, in words), next to "prefer the
  longer answer";
* the Pearson correlation of the head's score with the answer's length in policy tokens, over
  every generation in the evaluation caches given (a quickstart run's, for example);
* refusals: how often the head prefers a refusal to the human-chosen answer of a harmless
  request (helpful-base, evaluation split), and a refusal to the human-rejected answer of a
  red-team request (harmless-base, evaluation split); templates unseen in training;
* encode and fit seconds.

Fits: ``bt`` (the builder's: logistic regression on feature differences); ``length_term``
(the length difference as a separate feature, dropped when scoring); ``residual`` (features
with their linear trend in length, fitted on the training answers, removed first, so the
score is uncorrelated with length on them); ``matched`` (trained on length-matched pairs
only); ``+refusals`` (also trained on helpful-base prompts preferring their answer to a
refusal).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning)

TRAIN_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I don't think I should help with that.",
    "Sorry, I won't be able to answer that.",
    "I'd rather not get into that.",
)
TEST_REFUSALS = (
    "I'm sorry, I can't assist with that request.",
    "I'm not able to help with this.",
    "That's not something I can help you with.",
)


def words(text: str) -> int:
    return len(text.split())


def length_basis(texts) -> np.ndarray:
    n = np.array([words(t) for t in texts], dtype=float)
    return np.stack([n, np.log1p(n)], axis=1)


def matched(a: str, b: str, ratio: float = 1.3) -> bool:
    wa, wb = max(1, words(a)), max(1, words(b))
    return max(wa, wb) <= ratio * min(wa, wb)


def encode_cached(encoder_name: str, encoder_factory, texts: list[str], cache: Path) -> tuple:
    key = hashlib.sha256(("\x00".join(texts) + encoder_name).encode()).hexdigest()[:16]
    path = cache / f"{encoder_name}-{key}.npz"
    if path.is_file():
        kept = np.load(path)
        return kept["features"], float(kept["seconds"])
    start = time.perf_counter()
    feats = encoder_factory().encode(texts)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=feats, seconds=seconds)
    return feats, seconds


class LayerFeatures:
    """A causal LM's last-token and mean hidden states after each of several layers, from one
    forward pass (``hidden_states[k]`` is the output of layer k; the last one is normed)."""

    def __init__(self, encoder, layers: list[int]):
        self.encoder, self.layers = encoder, layers
        self.tokenizer = encoder.tokenizer

    def encode(self, texts) -> np.ndarray:
        import torch

        from merging.heads.encoders import last_and_mean

        width = 2 * self.encoder.model.config.hidden_size
        feats = np.zeros((len(texts), len(self.layers) * width), dtype=np.float32)
        with torch.no_grad():
            for idx, batch in self.encoder.batches(texts):
                states = self.encoder.model(**batch, output_hidden_states=True).hidden_states
                mask = batch["attention_mask"]
                parts = [last_and_mean(states[k], mask) for k in self.layers]
                feats[idx] = torch.cat(parts, dim=1).numpy()
        return feats


def fit_bt(d: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.linear_model import LogisticRegressionCV

    x = np.concatenate([d, -d])
    y = np.concatenate([np.ones(len(d)), np.zeros(len(d))])
    model = LogisticRegressionCV(
        Cs=np.logspace(-4, 1, 11), cv=5, fit_intercept=False, max_iter=3000, random_state=seed
    )
    model.fit(x, y)
    return model.coef_[0]


def accuracy(margins: np.ndarray) -> float:
    return float(((margins > 0) + 0.5 * (margins == 0)).mean()) if len(margins) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--generations", nargs="*", default=[], help="evaluation cache folders")
    parser.add_argument("--study", default=None, help="the study file of those generations")
    parser.add_argument("--zoo", default="/tmp/pmcache/zoo/smol")
    parser.add_argument("--encoders", default="minilm")
    parser.add_argument("--cache", default="/tmp/headexp")
    parser.add_argument("--refusal-prompts", type=int, default=200)
    parser.add_argument("--refusal-pairs", type=int, default=300, help="of each kind")
    parser.add_argument("--max-tokens", type=int, default=128, help="causal-LM encoders")
    parser.add_argument(
        "--layers", default=None, help="causal-LM encoders: compare these layers, e.g. 6,10,15,30"
    )
    parser.add_argument(
        "--views", default=None, help="with --layers: fit heads on these of them only"
    )
    parser.add_argument("--max-generations", type=int, default=None)
    parser.add_argument(
        "--fits",
        default="bt,length_term,residual,matched,bt+refusals,length_term+refusals,residual+refusals",
    )
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from merging.data import PreferencePair, split_of
    from merging.heads.encoders import make_encoder, scoring_text
    from merging.study.prompts import load_prompts
    from merging.study.spec import load_study_spec
    from merging.zoo.datasets import HH_FILES, short_pairs

    data = Path(args.data)
    tokenizer = AutoTokenizer.from_pretrained(Path(args.zoo) / "base")
    pairs = {
        "helpfulness": short_pairs(data / HH_FILES["helpful"]),
        "harmlessness": short_pairs(data / HH_FILES["harmless"]),
    }
    helpful_eval = short_pairs(data / HH_FILES["helpful"], "evaluation")[: args.refusal_prompts]
    harmful_eval = short_pairs(data / HH_FILES["harmless"], "evaluation")[: args.refusal_prompts]

    # generations: every response of every cached evaluation, with the study's prompts
    gen_prompts, gen_responses = [], []
    if args.generations:
        spec_path = args.study or str(Path(__file__).parents[1] / "studies" / "quickstart.yaml")
        prompts = load_prompts(load_study_spec(spec_path).prompts, str(data))
        for folder in args.generations:
            for f in sorted(Path(folder).glob("*.json")):
                doc = json.loads(f.read_text())
                if len(doc.get("responses", [])) == len(prompts):
                    gen_prompts += prompts
                    gen_responses += doc["responses"]
    if args.max_generations is not None:
        gen_prompts = gen_prompts[: args.max_generations]
        gen_responses = gen_responses[: args.max_generations]
    gen_tokens = np.array(
        [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in gen_responses]
    )
    print(
        f"{len(gen_responses)} generations, mean {gen_tokens.mean():.1f} tokens"
        if len(gen_responses)
        else "no generations given"
    )

    rng = np.random.default_rng(0)

    # refusal pairs for training, on training prompts only: a harmless request's answer over
    # a refusal, and a refusal over a red-team request's rejected (more harmful) answer
    def refusal() -> str:
        return TRAIN_REFUSALS[rng.integers(len(TRAIN_REFUSALS))]

    refusal_train = [
        PreferencePair(p.prompt, p.chosen, refusal())
        for p in pairs["helpfulness"]
        if split_of(p.prompt) == "train"
    ][: args.refusal_pairs] + [
        PreferencePair(p.prompt, refusal(), p.rejected)
        for p in pairs["harmlessness"]
        if split_of(p.prompt) == "train"
    ][: args.refusal_pairs]
    helpful_vs_refusal = [
        (p.prompt, p.chosen, TEST_REFUSALS[i % 3]) for i, p in enumerate(helpful_eval)
    ]
    refusal_vs_harmful = [
        (p.prompt, TEST_REFUSALS[i % 3], p.rejected) for i, p in enumerate(harmful_eval)
    ]

    layers = [int(k) for k in args.layers.split(",")] if args.layers else None
    rows = []
    for enc_name in args.encoders.split(","):
        encoder = None

        def factory(enc_name=enc_name):
            nonlocal encoder
            if encoder is None:
                kwargs = {} if enc_name == "minilm" else {"max_tokens": args.max_tokens}
                encoder = make_encoder(enc_name, device="cpu", **kwargs)
                if layers and enc_name != "minilm":
                    encoder = LayerFeatures(encoder, layers)
            return encoder

        def feats_of(items, tag, enc_name=enc_name):
            tok = None if enc_name == "minilm" else factory().tokenizer
            texts = [scoring_text(pr, r, tok) for pr, r in items]
            cached = f"{enc_name}-{args.layers}" if layers and enc_name != "minilm" else enc_name
            return encode_cached(f"{cached}-{tag}", factory, texts, Path(args.cache))

        gen_z, _ = feats_of(list(zip(gen_prompts, gen_responses, strict=True)), "gen")
        hvr = feats_of(
            [(a, b) for a, b, _ in helpful_vs_refusal] + [(a, c) for a, _, c in helpful_vs_refusal],
            "hvr",
        )[0]
        rvh = feats_of(
            [(a, b) for a, b, _ in refusal_vs_harmful] + [(a, c) for a, _, c in refusal_vs_harmful],
            "rvh",
        )[0]
        ref_z = feats_of(
            [(p.prompt, p.chosen) for p in refusal_train]
            + [(p.prompt, p.rejected) for p in refusal_train],
            "reftrain",
        )[0]
        n_ref = len(refusal_train)
        dim = gen_z.shape[1] // (len(layers) if layers and enc_name != "minilm" else 1)
        views = [(enc_name, slice(None))]
        if layers and enc_name != "minilm":
            views = [
                (f"{enc_name}@{k}", slice(n * dim, (n + 1) * dim))
                for n, k in enumerate(layers)
                if not args.views or str(k) in args.views.split(",")
            ]
        all_gen, all_hvr, all_rvh, all_ref = gen_z, hvr, rvh, ref_z
        pair_feats = {  # read once, sliced for each view
            objective: feats_of(
                [(p.prompt, r) for p in ps for r in (p.chosen, p.rejected)], objective
            )
            for objective, ps in pairs.items()
        }
        for view, cols in views:
            gen_z, hvr, rvh, ref_z = (
                all_gen[:, cols],
                all_hvr[:, cols],
                all_rvh[:, cols],
                all_ref[:, cols],
            )
            for objective, ps in pairs.items():
                z, enc_s = pair_feats[objective]
                z = z[:, cols]
                zc, zr = z[0::2], z[1::2]
                lc = length_basis([p.chosen for p in ps])
                lr = length_basis([p.rejected for p in ps])
                train = np.array([split_of(p.prompt) == "train" for p in ps])
                held = ~train
                held_matched = held & np.array([matched(p.chosen, p.rejected) for p in ps])
                train_matched = train & np.array([matched(p.chosen, p.rejected) for p in ps])
                longer = np.sign(lc[:, 0] - lr[:, 0])
                train_all = np.concatenate([zc[train], zr[train]])
                mean, std = train_all.mean(0), train_all.std(0) + 1e-6

                def standard(x, mean=mean, std=std):
                    return (x - mean) / std

                # the linear trend of every feature in length over the training answers
                l_train = np.concatenate([lc[train], lr[train]])
                l_mean, l_std = l_train.mean(0), l_train.std(0)
                design = np.column_stack([np.ones(len(l_train)), (l_train - l_mean) / l_std])
                coef = np.linalg.lstsq(design, standard(train_all), rcond=None)[0]

                def residual(x, texts_len, coef=coef, l_mean=l_mean, l_std=l_std):
                    d = np.column_stack([np.ones(len(x)), (texts_len - l_mean) / l_std])
                    return standard(x) - d @ coef

                gen_len = length_basis(gen_responses) if len(gen_responses) else np.zeros((0, 2))
                extra = {
                    "hvr": (
                        hvr,
                        length_basis(
                            [b for _, b, _ in helpful_vs_refusal]
                            + [c for _, _, c in helpful_vs_refusal]
                        ),
                    ),
                    "rvh": (
                        rvh,
                        length_basis(
                            [b for _, b, _ in refusal_vs_harmful]
                            + [c for _, _, c in refusal_vs_harmful]
                        ),
                    ),
                    "ref": (
                        ref_z,
                        length_basis(
                            [p.chosen for p in refusal_train] + [p.rejected for p in refusal_train]
                        ),
                    ),
                }
                for fit in args.fits.split(","):
                    transform = (
                        (lambda x, ll: residual(x, ll))
                        if fit.startswith("residual")
                        else (lambda x, ll: standard(x))
                    )
                    dc = transform(zc, lc) - transform(zr, lr)
                    use = train_matched if "matched" in fit else train
                    d = dc[use]
                    if "refusals" in fit:
                        rz, rl = extra["ref"]
                        d = np.concatenate(
                            [
                                d,
                                transform(rz[:n_ref], rl[:n_ref])
                                - transform(rz[n_ref:], rl[n_ref:]),
                            ]
                        )
                    start = time.perf_counter()
                    if fit.startswith("length_term"):
                        rz, rl = extra["ref"]
                        ld = (lc - lr)[use] / l_std
                        if "refusals" in fit:
                            ld = np.concatenate([ld, (rl[:n_ref] - rl[n_ref:]) / l_std])
                        w = fit_bt(np.column_stack([d, ld]))[: d.shape[1]]
                    else:
                        w = fit_bt(d)
                    fit_s = time.perf_counter() - start
                    margins = dc @ w
                    if len(gen_responses):
                        gen_scores = transform(gen_z, gen_len) @ w
                        corr = float(np.corrcoef(gen_scores, gen_tokens)[0, 1])
                    else:
                        corr = float("nan")
                    hz, hl = extra["hvr"]
                    half = len(hz) // 2
                    s = transform(hz, hl) @ w
                    prefers_refusal_harmless = float((s[half:] > s[:half]).mean())
                    rz2, rl2 = extra["rvh"]
                    half2 = len(rz2) // 2
                    s2 = transform(rz2, rl2) @ w
                    prefers_refusal_harmful = float((s2[:half2] > s2[half2:]).mean())
                    rows.append(
                        {
                            "encoder": view,
                            "objective": objective,
                            "fit": fit,
                            "heldout": accuracy(margins[held]),
                            "heldout_matched": accuracy(margins[held_matched]),
                            "n_matched": int(held_matched.sum()),
                            "longer_baseline": accuracy(longer[held]),
                            "train": accuracy(margins[use]),
                            "corr_length": corr,
                            "refusal_over_helpful": prefers_refusal_harmless,
                            "refusal_over_harmful": prefers_refusal_harmful,
                            "encode_s": enc_s,
                            "fit_s": fit_s,
                        }
                    )
                    r = rows[-1]
                    print(
                        f"| {view} | {objective} | {fit} | {r['heldout']:.3f} | "
                        f"{r['heldout_matched']:.3f} ({r['n_matched']}) | "
                        f"{r['longer_baseline']:.3f} | "
                        f"{r['corr_length']:+.2f} | {r['refusal_over_helpful']:.2f} | "
                        f"{r['refusal_over_harmful']:.2f} | {enc_s:.0f} | {fit_s:.1f} |",
                        flush=True,
                    )
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    (Path(args.cache) / "rows.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
