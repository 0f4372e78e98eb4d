"""Experts of real shapes with random weights, for the GPU check and the large-merge benchmark:
the base and full experts as Hugging Face folders, rank-16 LoRA adapters on every projection,
prompts as token ids, and greedy generation that writes every token asked for."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks.shapes import LORA_TARGETS

RANK = 16
SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def random_state(shapes, device, dtype, seed, base=None, noise=0.01):
    """Random weights of ``shapes`` on ``device``: the base, or ``base`` plus noise."""
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if base is not None:
            t = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
            out[name] = (base[name].float() + noise * t).to(dtype)
        elif len(shape) == 1:
            out[name] = torch.ones(shape, device=device, dtype=dtype)
        else:
            t = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
            out[name] = (0.02 * t).to(dtype)
    return out


def write_full(folder: Path, cfg, state, tokenizer: Path | None) -> Path:
    """A Hugging Face folder of ``state`` (safetensors, config, the tokenizer's files)."""
    import shutil

    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors")
    )
    cfg.save_pretrained(folder)
    if tokenizer is not None:
        for f in tokenizer.iterdir():
            if f.is_file():
                shutil.copy(f, folder / f.name)
    return folder


def write_lora(folder: Path, shapes, device, dtype, seed: int) -> Path:
    """A PEFT LoRA adapter of rank :data:`RANK` on every projection, random A and B."""
    from safetensors.torch import save_file

    g = torch.Generator(device=device).manual_seed(seed)
    tensors, modules = {}, set()
    for name, shape in shapes.items():
        module = name.removesuffix(".weight")
        if len(shape) == 2 and module.rsplit(".", 1)[-1] in LORA_TARGETS:
            d_out, d_in = shape
            a = torch.randn((RANK, d_in), generator=g, device=device) / d_in**0.5
            b = torch.randn((d_out, RANK), generator=g, device=device) * 0.01
            tensors[f"base_model.model.{module}.lora_A.weight"] = a.to(dtype).cpu()
            tensors[f"base_model.model.{module}.lora_B.weight"] = b.to(dtype).cpu()
            modules.add(module.rsplit(".", 1)[-1])
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": 2 * RANK,
        "target_modules": sorted(modules),
        "fan_in_fan_out": False,
        "task_type": "CAUSAL_LM",
    }
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def prompt_ids(tokenizer_dir: Path, prompts_file: Path, n: int, vocab: int) -> list[list[int]]:
    """Token ids of ``n`` prompts in the tokenizer's chat template (ids the model can take)."""
    from transformers import AutoTokenizer

    from merging.data import read_prompts
    from merging.generation import render

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    prompts = read_prompts(prompts_file)[:n]
    out = []
    for p in prompts:
        ids = tok(render(tok, p), add_special_tokens=False)["input_ids"][-256:]
        out.append([i % vocab for i in ids])
    return out


def generate_tokens(model, prompts: list[list[int]], batch: int, new_tokens: int) -> int:
    """Greedy generation of ``new_tokens`` for every prompt, ``batch`` at a time (left padded,
    no stop token, so every row writes them all); returns the tokens written."""
    from merging.generation import greedy_decode

    device = next(model.parameters()).device
    written = 0
    for start in range(0, len(prompts), batch):
        rows = prompts[start : start + batch]
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        out = greedy_decode(model, ids.to(device), mask.to(device), new_tokens, [])
        written += sum(len(o) for o in out)
    return written
