"""Tiny random models for the merging tests: Llama, Qwen2 and GPT-2, built in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

VOCAB = 96


def tiny_config(arch: str):
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if arch == "llama":
        return LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=5,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
            architectures=["LlamaForCausalLM"], bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )  # fmt: skip
    if arch == "qwen2":
        return Qwen2Config(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
            architectures=["Qwen2ForCausalLM"], bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )  # fmt: skip
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=64,
            architectures=["GPT2LMHeadModel"], bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )  # fmt: skip
    raise ValueError(arch)


def save_tokenizer(folder: Path, vocab_size: int = VOCAB) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for i in range(len(vocab), vocab_size):
        vocab[f"w{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>",
    )  # fmt: skip
    fast.save_pretrained(folder)


def build_model(arch: str, folder: Path, seed: int, *, base: Path | None = None,
                scale: float = 0.05, config=None):  # fmt: skip
    """A random model saved to ``folder``; with ``base``, the base plus a random change."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config or tiny_config(arch))
    if base is not None:
        model = AutoModelForCausalLM.from_pretrained(base)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(scale * torch.randn_like(p))
    model.save_pretrained(folder)
    save_tokenizer(folder, model.config.vocab_size)
    return folder


@pytest.fixture(scope="session")
def model_zoo(tmp_path_factory):
    """``model_zoo(arch, n_experts)`` -> (base folder, {name: expert folder}), cached."""
    cache: dict = {}

    def make(arch: str, n: int = 3):
        if (arch, n) not in cache:
            root = tmp_path_factory.mktemp(f"{arch}{n}")
            base = build_model(arch, root / "base", seed=0)
            experts = {
                f"e{i}": build_model(arch, root / f"e{i}", seed=100 + i, base=base)
                for i in range(n)
            }
            cache[(arch, n)] = (base, experts)
        return cache[(arch, n)]

    return make


def read_folder(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a saved model folder (single or sharded safetensors)."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def run_mergekit(config: dict, out: Path) -> dict[str, torch.Tensor]:
    """Run mergekit's own pipeline on ``config`` and return the merged tensors."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    cfg = MergeConfiguration.model_validate(json.loads(json.dumps(config)))
    run_merge(cfg, str(out), MergeOptions(device="cpu", copy_tokenizer=False,
                                          write_model_card=False, quiet=True))  # fmt: skip
    return read_folder(out)
