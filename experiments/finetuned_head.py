"""A small encoder fine-tuned end to end as a length-controlled reward head: does it beat the
frozen features?

    python experiments/finetuned_head.py --data ../shared/data/hh-rlhf \
        --generations /tmp/qs32/cache1/evaluations [--objective helpfulness] [--epochs 2]

MiniLM (all-MiniLM-L6-v2, 22M parameters, from its PyPI package) with a linear score on its
mean-pooled output, trained on the zoo's training pairs (HH-RLHF short pairs, held out by
prompt hash as the builder does) with the Bradley-Terry loss. Length is controlled as in ODIN
(Chen et al. 2024): the training logit is ``s(chosen) - s(rejected) + beta . (l(chosen) -
l(rejected))`` with ``l`` the answer's standardised word count and its log, and ``beta``
learned beside the score and dropped when scoring; ``--decorrelate`` adds the squared
covariance of the score with length over each batch to the loss. Prints the held-out accuracy
(overall and on length-matched pairs), the score's correlation with the answer's length in
policy tokens over the generations given (the evaluation caches of a quickstart run), and the
training time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def words(text: str) -> int:
    return len(text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--generations", nargs="*", default=[])
    parser.add_argument("--study", default=None, help="the study file of those generations")
    parser.add_argument("--zoo", default=str(Path.home() / ".cache/paretomerge/zoo/smol"))
    parser.add_argument(
        "--objective", default="helpfulness", choices=["helpfulness", "harmlessness"]
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="pairs a step")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--decorrelate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    from merging.data import split_of
    from merging.heads.encoders import minilm_dir, scoring_text
    from merging.study.prompts import load_prompts
    from merging.study.spec import load_study_spec
    from merging.zoo.datasets import HH_FILES, short_pairs

    torch.manual_seed(args.seed)
    data = Path(args.data)
    kind = "helpful" if args.objective == "helpfulness" else "harmless"
    pairs = short_pairs(data / HH_FILES[kind])
    train = [p for p in pairs if split_of(p.prompt) == "train"]
    held = [p for p in pairs if split_of(p.prompt) != "train"]

    def length(texts) -> np.ndarray:
        n = np.array([words(t) for t in texts], dtype=float)
        return np.stack([n, np.log1p(n)], axis=1)

    l_train = length([p.chosen for p in train] + [p.rejected for p in train])
    l_mean, l_std = l_train.mean(0), l_train.std(0)

    folder = minilm_dir()
    tok = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder)
    score = torch.nn.Linear(encoder.config.hidden_size, 1)
    beta = torch.nn.Parameter(torch.zeros(2))
    optimiser = torch.optim.AdamW(
        [
            {"params": encoder.parameters(), "lr": args.lr},
            {"params": [*score.parameters(), beta], "lr": 1e-3},
        ],
        weight_decay=0.01,
    )

    def scores(texts: list[str]) -> torch.Tensor:
        batch = tok(
            texts, padding=True, truncation=True, max_length=args.max_tokens, return_tensors="pt"
        )
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return score((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)

    def texts_of(ps, side):
        return [scoring_text(p.prompt, getattr(p, side)) for p in ps]

    @torch.no_grad()
    def score_texts(texts: list[str]) -> np.ndarray:
        encoder.eval()
        out = [scores(texts[i : i + 64]).numpy() for i in range(0, len(texts), 64)]
        return np.concatenate(out) if out else np.zeros(0)

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        encoder.train()
        order = rng.permutation(len(train))
        losses = []
        for i in range(0, len(order), args.batch):
            ps = [train[j] for j in order[i : i + args.batch]]
            s = scores(texts_of(ps, "chosen") + texts_of(ps, "rejected"))
            sc, sr = s[: len(ps)], s[len(ps) :]
            lc = torch.tensor((length([p.chosen for p in ps]) - l_mean) / l_std, dtype=s.dtype)
            lr = torch.tensor((length([p.rejected for p in ps]) - l_mean) / l_std, dtype=s.dtype)
            loss = torch.nn.functional.softplus(-(sc - sr + (lc - lr) @ beta)).mean()
            if args.decorrelate:
                ll = torch.cat([lc[:, 0], lr[:, 0]])
                cov = ((s - s.mean()) * (ll - ll.mean())).mean()
                loss = loss + args.decorrelate * cov**2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        print(
            f"epoch {epoch + 1}: loss {np.mean(losses):.4f}, beta {beta.detach().numpy()}",
            flush=True,
        )
    train_s = time.perf_counter() - start

    margins = score_texts(texts_of(held, "chosen")) - score_texts(texts_of(held, "rejected"))
    matched = np.array(
        [
            max(words(p.chosen), words(p.rejected))
            <= 1.3 * max(1, min(words(p.chosen), words(p.rejected)))
            for p in held
        ]
    )
    longer = np.array([np.sign(words(p.chosen) - words(p.rejected)) for p in held])

    def accuracy(m):
        return float(((m > 0) + 0.5 * (m == 0)).mean())

    corr = float("nan")
    if args.generations:
        policy_tok = AutoTokenizer.from_pretrained(Path(args.zoo) / "base")
        spec_path = args.study or str(Path(__file__).parents[1] / "studies" / "quickstart.yaml")
        prompts = load_prompts(load_study_spec(spec_path).prompts, str(data))
        gen_texts, gen_len = [], []
        for folder_ in args.generations:
            for f in sorted(Path(folder_).glob("*.json")):
                doc = json.loads(f.read_text())
                if len(doc.get("responses", [])) == len(prompts):
                    for p, r in zip(prompts, doc["responses"], strict=True):
                        gen_texts.append(scoring_text(p, r))
                        gen_len.append(len(policy_tok(r, add_special_tokens=False)["input_ids"]))
        if gen_texts:
            corr = float(np.corrcoef(score_texts(gen_texts), gen_len)[0, 1])
    print(
        f"| minilm fine-tuned ({args.epochs} epochs, decorrelate {args.decorrelate}) | "
        f"{args.objective} | {accuracy(margins):.3f} ({len(held)}) | "
        f"{accuracy(margins[matched]):.3f} ({int(matched.sum())}) | "
        f"{accuracy(longer):.3f} | {corr:+.2f} | {train_s:.0f} s |",
        flush=True,
    )


if __name__ == "__main__":
    main()
