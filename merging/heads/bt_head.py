"""Bradley-Terry reward heads on frozen encoders, trained from preference pairs.

``P(chosen > rejected) = sigmoid(r(chosen) - r(rejected))`` with ``r(x) = head(z(x))``, ``z`` the
encoder's features standardised over the training texts. The linear head is an L2-regularised
logistic regression on feature differences (scikit-learn, strength chosen by cross-validation);
the MLP head is a one-hidden-layer network trained with the same loss in torch. A head is saved
as a small folder: ``head.json`` (encoder, training data, split, metrics) and
``head.safetensors``. A length-controlled head (``length_control="residual"``) is trained and
scores on features without their linear trend in the response's length
(:mod:`merging.heads.length_trend`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from merging.data import PreferencePair, Prompt
from merging.heads.base import RewardHead, register
from merging.heads.encoders import Encoder, make_encoder, scoring_text
from merging.heads.length_trend import LengthTrend
from merging.heads.pairs import length_matched, pairwise_accuracy, split_pairs
from merging.paths import fingerprint

HEAD_FILE, WEIGHTS_FILE = "head.json", "head.safetensors"
SMOLLM2_PARAMETERS = 134_515_008


@register("bt_head")
class BTHead(RewardHead):
    """A trained Bradley-Terry head: encoder + standardisation + linear or MLP scorer."""

    def __init__(
        self,
        encoder: Encoder,
        mean: np.ndarray,
        std: np.ndarray,
        weights: dict[str, torch.Tensor],
        architecture: str = "linear",
        meta: dict | None = None,
        folder: Path | None = None,
        length_trend: LengthTrend | None = None,
    ):
        self.encoder, self.mean, self.std = encoder, mean, std
        self.weights, self.architecture = weights, architecture
        self.meta = meta or {}
        self.folder = folder
        self.length_trend = length_trend

    def features(
        self, prompts: Sequence[Prompt], responses: Sequence[str], progress=None
    ) -> np.ndarray:
        tok = getattr(self.encoder, "tokenizer", None)
        texts = [scoring_text(p, r, tok) for p, r in zip(prompts, responses, strict=True)]
        z = (self.encoder.encode(texts, progress) - self.mean) / self.std
        return z if self.length_trend is None else self.length_trend.remove(z, responses)

    def reward_of_features(self, z: np.ndarray) -> np.ndarray:
        return _forward(
            self.weights, self.architecture, torch.from_numpy(z.astype(np.float32))
        ).numpy()

    def score(self, prompts, responses) -> np.ndarray:
        self._check(prompts, responses)
        if not len(responses):
            return np.zeros(0)
        return self.reward_of_features(self.features(prompts, responses)).astype(float)

    def identity(self) -> dict:
        fp = fingerprint(self.folder) if self.folder is not None else None
        return {"kind": self.kind, "folder_fingerprint": fp, "encoder": self.encoder.identity()}

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.contiguous() for k, v in self.weights.items()}
        tensors["mean"] = torch.from_numpy(self.mean.astype(np.float32))
        tensors["std"] = torch.from_numpy(self.std.astype(np.float32))
        if self.length_trend is not None:
            tensors.update(self.length_trend.tensors())
        save_file(tensors, str(path / WEIGHTS_FILE))
        doc = {
            "kind": self.kind,
            "architecture": self.architecture,
            "encoder": self.encoder.spec,
            "length_control": "residual" if self.length_trend is not None else None,
            **self.meta,
        }
        (path / HEAD_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        self.folder = path
        return path

    spec_help = "a bt_head folder (head.json)"

    @classmethod
    def names(cls, spec: str) -> bool:
        return (Path(spec).expanduser() / HEAD_FILE).is_file()

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False) -> BTHead:
        return cls.load(Path(spec).expanduser(), device=device)

    @classmethod
    def spec_bytes(cls, spec: str, device_type: str = "cpu") -> int:
        """The head's weights and its encoder's, in float32; the MiniLM encoder runs on the
        CPU, so it counts only where the evaluation device is the CPU."""
        from merging.tensor_files import float32_bytes

        path = Path(spec).expanduser()
        encoder = json.loads((path / HEAD_FILE).read_text()).get("encoder") or {}
        total = float32_bytes(path)
        if isinstance(encoder, dict) and encoder.get("kind") == "minilm":
            if device_type == "cpu":
                from merging.heads.encoders import minilm_dir

                total += float32_bytes(minilm_dir())
        elif isinstance(encoder, dict) and encoder.get("path"):
            total += float32_bytes(Path(encoder["path"]))
        elif isinstance(encoder, dict) and encoder.get("kind") == "causal_lm":
            total += SMOLLM2_PARAMETERS * 4  # the embedded SmolLM2 policy, in float32
        return total

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = "auto") -> BTHead:
        from safetensors.torch import load_file

        path = Path(folder)
        doc = json.loads((path / HEAD_FILE).read_text())
        if doc.get("kind") != "bt_head":
            raise ValueError(f"{path}: {HEAD_FILE} is not a bt_head (kind {doc.get('kind')!r})")
        tensors = load_file(str(path / WEIGHTS_FILE))
        mean, std = tensors.pop("mean").numpy(), tensors.pop("std").numpy()
        trend = LengthTrend.from_tensors(tensors)  # removes its tensors; None in older heads
        encoder = make_encoder(doc["encoder"], device=device)
        skip = {"kind", "architecture", "encoder", "length_control"}
        meta = {k: v for k, v in doc.items() if k not in skip}
        return cls(
            encoder, mean, std, tensors, doc.get("architecture", "linear"), meta, path, trend
        )


def _forward(weights: dict[str, torch.Tensor], architecture: str, z: torch.Tensor) -> torch.Tensor:
    if architecture == "linear":
        return z @ weights["w"]
    hidden = torch.relu(z @ weights["w1"] + weights["b1"])
    return hidden @ weights["w2"]


def _fit_linear(d: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
    from sklearn.linear_model import LogisticRegressionCV

    x = np.concatenate([d, -d])
    y = np.concatenate([np.ones(len(d)), np.zeros(len(d))])
    model = LogisticRegressionCV(
        Cs=np.logspace(-4, 1, 11), cv=5, fit_intercept=False, max_iter=2000, random_state=seed
    )
    with warnings.catch_warnings():  # scikit-learn 1.9 warns about attributes we do not use
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(x, y)
    return {"w": torch.from_numpy(model.coef_[0].astype(np.float32))}


def _fit_mlp(
    zc: np.ndarray,
    zr: np.ndarray,
    seed: int,
    hidden: int = 64,
    weight_decay: float = 1e-2,
    epochs: int = 300,
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dim = zc.shape[1]
    w1 = (torch.randn(dim, hidden, generator=g) / dim**0.5).requires_grad_()
    b1 = torch.zeros(hidden, requires_grad=True)
    w2 = (torch.randn(hidden, generator=g) / hidden**0.5).requires_grad_()
    params = {"w1": w1, "b1": b1, "w2": w2}
    opt = torch.optim.AdamW(params.values(), lr=1e-3, weight_decay=weight_decay)
    c, r = torch.from_numpy(zc.astype(np.float32)), torch.from_numpy(zr.astype(np.float32))
    for _ in range(epochs):
        opt.zero_grad()
        margin = _forward(params, "mlp", c) - _forward(params, "mlp", r)
        loss = torch.nn.functional.softplus(-margin).mean()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def train_bt_head(
    pairs: Sequence[PreferencePair],
    encoder: Encoder,
    *,
    architecture: str = "linear",
    length_control: str | None = None,
    extra_pairs: Sequence[PreferencePair] = (),
    seed: int = 0,
    data: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[BTHead, dict]:
    """Train on the ``train`` split of ``pairs`` (and on every one of ``extra_pairs``, which
    the caller built from training prompts only); measure on the others (validation +
    evaluation). ``length_control="residual"`` trains a length-controlled head
    (:mod:`merging.heads.length_trend`).

    Returns the head and its metrics: held-out accuracy, overall and on the length-matched
    held-out pairs, the "prefer the longer response" baseline on the same held-out pairs,
    pair counts and timings.
    """
    if architecture not in ("linear", "mlp"):
        raise ValueError(f"architecture must be linear or mlp; got {architecture!r}")
    if length_control not in (None, "residual"):
        raise ValueError(f"length_control must be None or 'residual'; got {length_control!r}")
    train, heldout = split_pairs(pairs)
    start = time.perf_counter()
    every = [*train, *extra_pairs, *heldout]
    tok = getattr(encoder, "tokenizer", None)
    texts = [scoring_text(p.prompt, r, tok) for p in every for r in (p.chosen, p.rejected)]
    feats = encoder.encode(texts, progress)
    encode_s = time.perf_counter() - start
    n = len(train) + len(extra_pairs)
    zc, zr, mean, std = _standardised(feats, n)
    trend = None
    if length_control == "residual":
        zc, zr, trend = _without_length_trend(zc, zr, every, n)
    fit_start = time.perf_counter()
    if architecture == "linear":
        weights = _fit_linear(zc[:n] - zr[:n], seed)
    else:
        weights = _fit_mlp(zc[:n], zr[:n], seed)
    fit_s = time.perf_counter() - fit_start
    head = BTHead(encoder, mean, std, weights, architecture, length_trend=trend)
    metrics = _accuracies(head, zc, zr, n, heldout)
    metrics |= {"encode_seconds": round(encode_s, 1), "fit_seconds": round(fit_s, 1)}
    head.meta = {
        "data": data,
        "split": "train: prompt-hash split 'train' (80%); held out: 'validation' + 'evaluation'",
        "extra_pairs": len(extra_pairs),
        "metrics": metrics,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return head, metrics


def _standardised(feats: np.ndarray, n: int):
    """``(zc, zr, mean, std)``: the chosen (even rows of ``feats``) and rejected (odd rows)
    responses' features standardised over the first ``n`` pairs' (the training pairs)."""
    chosen, rejected = feats[0::2], feats[1::2]
    train_feats = np.concatenate([chosen[:n], rejected[:n]])
    mean, std = train_feats.mean(0), train_feats.std(0) + 1e-6
    return (chosen - mean) / std, (rejected - mean) / std, mean, std


def _without_length_trend(
    zc: np.ndarray, zr: np.ndarray, every: Sequence[PreferencePair], n: int
) -> tuple[np.ndarray, np.ndarray, LengthTrend]:
    """``(zc, zr, trend)``: the features less their length trend, fitted over the first ``n``
    pairs' responses (the training pairs), and that trend."""
    train_responses = [p.chosen for p in every[:n]] + [p.rejected for p in every[:n]]
    trend = LengthTrend.fit(np.concatenate([zc[:n], zr[:n]]), train_responses)
    zc = trend.remove(zc, [p.chosen for p in every])
    zr = trend.remove(zr, [p.rejected for p in every])
    return zc, zr, trend


def _accuracies(
    head: BTHead, zc: np.ndarray, zr: np.ndarray, n: int, heldout: Sequence[PreferencePair]
) -> dict:
    """The head's accuracy on the held-out pairs (after the first ``n``), overall and
    length-matched, the "prefer the longer response" baseline on them, its training accuracy,
    and the pair counts."""
    margins = head.reward_of_features(zc[n:]) - head.reward_of_features(zr[n:])
    train_margins = head.reward_of_features(zc[:n]) - head.reward_of_features(zr[:n])
    length = np.array([len(p.chosen) - len(p.rejected) for p in heldout], dtype=float)
    matched = length_matched(heldout)
    return {
        "heldout_accuracy": pairwise_accuracy(margins),
        "heldout_length_matched_accuracy": pairwise_accuracy(margins[matched])
        if matched.any()
        else None,
        "length_baseline_accuracy": pairwise_accuracy(np.sign(length)),
        "train_accuracy": pairwise_accuracy(train_margins),
        "train_pairs": n,
        "heldout_pairs": len(heldout),
        "heldout_length_matched_pairs": int(matched.sum()),
    }
