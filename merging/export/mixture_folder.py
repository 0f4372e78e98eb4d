"""The export of a decoding-time mixture: no merged weights exist, so the folder names the
experts (with their content hashes), holds the weights and the generation settings
(``mixture.json``), and a generation script that runs the mixture with transformers alone."""

from __future__ import annotations

import json
from pathlib import Path

from merging.export.card import generation_settings, portable_name
from merging.recipe import MergeRecipe

MIXTURE_FILE = "mixture.json"
SCRIPT_FILE = "generate.py"


def mixture_description(spec, experts, recipe: MergeRecipe) -> dict:
    """What ``mixture.json`` holds: each expert's weight, checkpoint and content hash, the
    base, and the generation settings the study evaluated with."""
    from merging.paths import content_hash

    def where(checkpoint, base=False) -> dict:
        return {
            "path": str(Path(checkpoint.path).resolve()),
            "portable": portable_name(spec, checkpoint.path, base=base),
            "kind": checkpoint.kind,
            "content_hash": content_hash(checkpoint.path),
        }

    return {
        "method": "decoding-time mixture (MOD): next-token scores sum_i w_i log p_i",
        "base": where(experts.base, base=True),
        "experts": {
            name: {"weight": weight, **where(experts.experts[name])}
            for name, weight in zip(recipe.experts, recipe.weights, strict=True)
        },
        "generation": generation_settings(spec.generation),
    }


def write_mixture(path: Path, spec, experts, recipe: MergeRecipe) -> None:
    """``mixture.json`` and ``generate.py`` into the folder ``path``."""
    text = json.dumps(mixture_description(spec, experts, recipe), indent=2) + "\n"
    (path / MIXTURE_FILE).write_text(text)
    (path / SCRIPT_FILE).write_text(SCRIPT)


SCRIPT = '''"""Generate with a decoding-time mixture of experts (MOD, Shi et al. 2024).

Written by paretomerge export. At every step the next token is the argmax of
sum_i w_i * log p_i(token | context) over the experts in mixture.json (greedy decoding, each
expert with its own KV cache). Needs torch and transformers, and peft for LoRA experts.

    python generate.py "How do I bake bread?"
    python generate.py "Hi" --expert helpfulness=/elsewhere/helpfulness --base /elsewhere/base
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = Path(__file__).resolve().parent
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


def load(path, base):
    """A full checkpoint as it is; a LoRA adapter merged into the base."""
    if (Path(path) / "adapter_config.json").is_file():
        from peft import PeftModel

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        return PeftModel.from_pretrained(model, path).merge_and_unload().eval()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@torch.no_grad()
def mixed_greedy(models, weights, ids, max_new_tokens, stops):
    caches, tokens, step = [None] * len(models), [], ids
    for _ in range(max_new_tokens):
        mixed = 0
        for k, (model, weight) in enumerate(zip(models, weights)):
            out = model(input_ids=step, past_key_values=caches[k], use_cache=True)
            caches[k] = out.past_key_values
            mixed = mixed + weight * torch.log_softmax(out.logits[:, -1].float(), -1)
        token = int(mixed.argmax(-1))
        tokens.append(token)
        if token in stops:
            break
        step = torch.tensor([[token]])
    return tokens


def main():
    mixture = json.loads((HERE / "mixture.json").read_text())
    p = argparse.ArgumentParser(description=__doc__.split("\\n\\n")[0])
    p.add_argument("prompt", help="the user's message")
    p.add_argument("--base", default=mixture["base"]["path"], help="the base checkpoint")
    p.add_argument("--expert", action="append", default=[], metavar="NAME=PATH",
                   help="where an expert is on this machine (default: as in mixture.json)")
    settings = mixture["generation"]
    p.add_argument("--max-new-tokens", type=int, default=settings["max_new_tokens"])
    args = p.parse_args()
    where = {n: e["path"] for n, e in mixture["experts"].items()}
    where.update(item.split("=", 1) for item in args.expert)
    names = [n for n, e in mixture["experts"].items() if e["weight"] > 0]
    models = [load(where[n], args.base) for n in names]
    weights = [mixture["experts"][n]["weight"] for n in names]
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    messages = [{"role": "user", "content": args.prompt}]
    if settings.get("system_prompt"):
        messages.insert(0, {"role": "system", "content": settings["system_prompt"]})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids[:, -settings.get("max_prompt_tokens", 512):]
    vocab = tokenizer.get_vocab()
    stops = {vocab[t] for t in END_OF_TURN if t in vocab} | {tokenizer.eos_token_id}
    tokens = mixed_greedy(models, weights, ids, args.max_new_tokens, stops)
    print(tokenizer.decode(tokens, skip_special_tokens=True).strip())


if __name__ == "__main__":
    main()
'''
