"""How fast is one candidate merge? In-place interpolation against its bounds and mergekit.

    python benchmarks/merge_speed.py [--experts 3] [--repeat 5] [--device auto] [--skip-mergekit]

Builds a base and ``--experts`` experts with SmolLM2-135M-Instruct's configuration and random
weights (float32), then measures, in one run:

* ``interpolation``: one in-place ``sum_i w_i theta_i`` into the resident model;
* ``layerwise``: the same with 3 blocks;
* the copy bound: ``copy_`` of the bytes the merge must read (one row of weights per expert)
  into another buffer: any merge reads at least these bytes once, and a copy also writes them;
* one model copy (for scale);
* ``mergekit-yaml`` doing the same linear merge from disk to disk, as a user runs it per
  candidate (process start included), and mergekit's ``run_merge`` called in-process.

Prints each time and the ratios. Needs about 5 GB of free memory and 2.2 GB of disk.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def smollm2_135m_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        architectures=["LlamaForCausalLM"],
        bos_token_id=1,
        eos_token_id=2,
    )


def build(root: Path, n: int) -> tuple[Path, dict[str, Path]]:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(smollm2_135m_config())
    model.save_pretrained(root / "base")
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    experts = {}
    for i in range(n):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(base_state[name] + 0.01 * torch.randn_like(p))
        model.save_pretrained(root / f"expert{i}")
        experts[f"expert{i}"] = root / f"expert{i}"
    return root / "base", experts


def best_of(fn, repeat: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def copy_bounds(stack: torch.Tensor, repeat: int, device: torch.device) -> tuple[float, float]:
    """Time of copying the expert rows (what interpolation reads) and of copying one model."""
    experts = stack[1:]
    scratch = torch.empty_like(experts)
    whole = best_of(lambda: scratch.copy_(experts), repeat, device)
    one = best_of(lambda: scratch[0].copy_(experts[0]), repeat, device)
    return whole, one


def mergekit_times(interp, recipe, merger, base: Path, experts: dict, root: Path):
    """mergekit's CLI and in-process times for the same merge, and the largest difference of
    its weights from ours."""
    interp.apply(recipe, merger)
    mine = {k: v.detach().to("cpu", torch.float32).clone() for k, v in merger.state_dict().items()}
    config = interp.mergekit_config(recipe, str(base), {k: str(v) for k, v in experts.items()})
    cfg_path = root / "merge.yml"
    cfg_path.write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).with_name("mergekit-yaml")
    cli = [str(exe), str(cfg_path), str(root / "mk_cli"), "--no-copy-tokenizer", "--quiet"]
    start = time.perf_counter()
    subprocess.run(cli, check=True)
    t_cli = time.perf_counter() - start

    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    start = time.perf_counter()
    run_merge(
        MergeConfiguration.model_validate(config),
        str(root / "mk_api"),
        MergeOptions(device="cpu", copy_tokenizer=False, write_model_card=False, quiet=True),
    )
    t_api = time.perf_counter() - start
    from safetensors.torch import load_file

    theirs = {}
    for f in (root / "mk_cli").glob("*.safetensors"):
        theirs.update(load_file(str(f)))
    worst = max(float((mine[k] - theirs[k]).abs().max()) for k in mine if k in theirs)
    return t_cli, t_api, worst


def our_times(merger, experts: dict, repeat: int):
    """Interpolation and layerwise merges in place, and the copy bounds; the interpolation
    family and recipe are returned for the mergekit comparison."""
    from merging.families import make_family

    dev = merger.device
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(len(experts)))
    interp = make_family("interpolation", list(experts))
    recipe = interp.recipe(weights)
    t_interp = best_of(lambda: interp.apply(recipe, merger), repeat, dev)
    layer = make_family("layerwise", list(experts), blocks=3)
    lrecipe = layer.recipe(rng.dirichlet(np.ones(len(experts)), size=3))
    t_layer = best_of(lambda: layer.apply(lrecipe, merger), repeat, dev)
    t_copy_read, t_copy_model = copy_bounds(merger.stack, repeat, dev)
    read_gb = merger.stack[1:].numel() * merger.stack.element_size() / 1e9
    rows = [
        ("interpolation, in place", t_interp),
        ("layerwise (3 blocks), in place", t_layer),
        (f"copy bound: copy the {read_gb:.2f} GB the merge reads", t_copy_read),
        ("one model copy", t_copy_model),
    ]
    return rows, interp, recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--skip-mergekit", action="store_true")
    args = parser.parse_args()

    from merging.expert_set import ExpertSet
    from merging.resident import ResidentMerger

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"building a base and {args.experts} experts (SmolLM2-135M shape, random) ...")
        base, experts = build(root, args.experts)
        merger = ResidentMerger(
            ExpertSet.from_paths(base, experts), device=args.device, dtype=args.dtype
        )
        print(
            f"device {merger.device}, dtype {merger.dtype}, {merger.numel / 1e6:.1f}M parameters "
            f"per model, torch threads {torch.get_num_threads()}"
        )
        rows, interp, recipe = our_times(merger, experts, args.repeat)
        t_interp, t_copy_read = rows[0][1], rows[2][1]
        if not args.skip_mergekit:
            t_cli, t_api, worst = mergekit_times(interp, recipe, merger, base, experts, root)
            rows += [
                ("mergekit-yaml (CLI, disk to disk)", t_cli),
                ("mergekit run_merge (in-process)", t_api),
            ]

        print(f"\n{'what':52s} {'time':>10s} {'vs interpolation':>17s}")
        for what, t in rows:
            print(f"{what:52s} {t * 1e3:8.1f}ms {t / t_interp:16.2f}x")
        print(f"\ninterpolation / copy bound: {t_interp / t_copy_read:.2f}x (target: at most 1.5x)")
        if not args.skip_mergekit:
            print(
                f"mergekit-yaml / interpolation: {t_cli / t_interp:.0f}x faster per candidate "
                f"(in-process run_merge: {t_api / t_interp:.0f}x); target: at least 50x"
            )
            print(f"largest difference from mergekit-yaml's weights: {worst:.2e}")


if __name__ == "__main__":
    main()
