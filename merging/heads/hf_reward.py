"""Any Hugging Face sequence-classification reward model, by path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from merging.checkpoints import load_pretrained
from merging.data import Prompt, render_plain
from merging.device import resolve_device
from merging.heads.base import RewardHead, register
from merging.paths import fingerprint
from merging.policy import load_tokenizer


@register("hf_reward_model")
class HFRewardModel(RewardHead):
    """Scores with a ``*ForSequenceClassification`` model: its single logit, or the last
    label's logit minus the first when it has several. The conversation is written with the
    model's chat template when its tokenizer has one, else as ``\\n\\nHuman: ...\\n\\nAssistant:
    ...`` (the HH-RLHF format such reward models were trained on); long inputs keep their end.
    """

    spec_help = "a reward model folder (config.json)"

    @classmethod
    def names(cls, spec: str) -> bool:
        path = Path(spec).expanduser()
        return (path / "config.json").is_file() and not (path / "head.json").is_file()

    @classmethod
    def from_spec(cls, spec, *, device="auto", trust_remote_code=False) -> HFRewardModel:
        """A ``*ForSequenceClassification`` model folder (any other model is refused)."""
        path = Path(spec).expanduser()
        archs = json.loads((path / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ValueError(f"head {spec!r}: {path} is a {archs} model, not a sequence classifier")
        return cls(path, device=device, trust_remote_code=trust_remote_code)

    @classmethod
    def spec_bytes(cls, spec: str, device_type: str = "cpu") -> int:
        from merging.tensor_files import float32_bytes

        return float32_bytes(Path(spec).expanduser())

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = "auto",
        batch_size: int = 16,
        max_tokens: int = 512,
        trust_remote_code: bool = False,
    ):
        from transformers import AutoModelForSequenceClassification

        self.path = Path(path)
        self.device = resolve_device(device)
        self.model = (
            load_pretrained(
                AutoModelForSequenceClassification,
                self.path,
                who="reward model",
                dtype=torch.float32,
                trust_remote_code=trust_remote_code,
            )
            .to(self.device)
            .eval()
        )
        self.tokenizer = load_tokenizer(self.path, who="reward model")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_tokens = batch_size, max_tokens

    def text(self, prompt: Prompt, response: str) -> str:
        messages = [*prompt.messages, {"role": "assistant", "content": response}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return render_plain(messages)

    @torch.no_grad()
    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        self._check(prompts, responses)
        tok = self.tokenizer
        tok.truncation_side = "left"
        texts = [self.text(p, r) for p, r in zip(prompts, responses, strict=True)]
        out = np.empty(len(texts))
        for start in range(0, len(texts), self.batch_size):
            batch = tok(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            logits = self.model(**batch).logits.float()
            value = logits[:, 0] if logits.shape[1] == 1 else logits[:, -1] - logits[:, 0]
            out[start : start + len(value)] = value.cpu().numpy()
        return out

    def identity(self) -> dict:
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "fingerprint": fingerprint(self.path),
        }
