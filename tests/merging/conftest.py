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
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=5,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            architectures=["LlamaForCausalLM"],
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    if arch == "qwen2":
        return Qwen2Config(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            architectures=["Qwen2ForCausalLM"],
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=4,
            n_head=4,
            n_positions=64,
            architectures=["GPT2LMHeadModel"],
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    raise ValueError(arch)


def save_tokenizer(folder: Path, vocab_size: int = VOCAB) -> None:
    """A word-level tokenizer (``w4`` ... ``wN``) with ChatML-like turn markers."""
    from merging.zoo.base import word_level_tokenizer

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "<|im_start|>": 4, "<|im_end|>": 5}
    for i in range(len(vocab), vocab_size):
        vocab[f"w{i}"] = i
    word_level_tokenizer(vocab, eos_token="</s>").save_pretrained(folder)


def build_model(
    arch: str,
    folder: Path,
    seed: int,
    *,
    base: Path | None = None,
    scale: float = 0.05,
    config=None,
):
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


def make_lora(base, folder, seed, *, r, arch, **extra):
    """A LoRA adapter with random A and B, saved; returns (adapter folder, merged folder)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = extra.pop("targets", None) or (
        ["c_attn", "c_fc"] if arch == "gpt2" else ["q_proj", "v_proj", "up_proj"]
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    cfg = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=targets,
        init_lora_weights=False,
        fan_in_fan_out=arch == "gpt2",
        **extra,
    )
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(folder / "adapter")
    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base), folder / "adapter"
    ).merge_and_unload()
    merged.save_pretrained(folder / "merged")
    save_tokenizer(folder / "merged", merged.config.vocab_size)
    return folder / "adapter", folder / "merged"


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
    run_merge(
        cfg,
        str(out),
        MergeOptions(device="cpu", copy_tokenizer=False, write_model_card=False, quiet=True),
    )
    return read_folder(out)


def write_llama_gguf(folder: Path, out: Path) -> Path:
    """Write the tiny Llama in ``folder`` as a float32 GGUF file, the way llama.cpp does.

    Query and key weights are permuted as llama.cpp's converter permutes them (transformers
    undoes it on loading); the vocabulary is the tiny word-level one.
    """
    import gguf
    import numpy as np
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(folder)
    tensors = read_folder(folder)
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:
        return (
            w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape)
        )

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // heads)
    writer.add_rope_freq_base(float(getattr(cfg, "rope_theta", 10000.0) or 10000.0))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_tokenizer_model("llama")
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
    writer.add_token_list(specials + [f"w{i}" for i in range(len(specials), cfg.vocab_size)])
    writer.add_token_scores([0.0] * cfg.vocab_size)
    writer.add_token_types([3, 3, 3, 2, 3, 3] + [1] * (cfg.vocab_size - len(specials)))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    names = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for key, value in tensors.items():
        w = value.float().numpy()
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        elif key == "lm_head.weight":
            name = "output.weight"
        else:
            _, _, layer, rest = key.split(".", 3)
            module = rest.removesuffix(".weight")
            name = f"blk.{layer}.{names[module]}.weight"
            if module == "self_attn.q_proj":
                w = permute(w, heads)
            elif module == "self_attn.k_proj":
                w = permute(w, kv_heads)
        writer.add_tensor(name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
