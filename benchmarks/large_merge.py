"""Experts larger than this machine's memory allows resident: every way of the plan, side by side.

    python benchmarks/large_merge.py [--root /tmp/large_merge] [--candidates 2]

Builds, once, a base and three full experts of Qwen2.5-1.5B's shape (its config, random
weights, the experts being the base plus noise; float32 safetensors, 6.2 GB each) and three
rank-16 LoRA adapters on every projection of that base. Then, each in a fresh process so that
its peak memory is its own, every way of the memory plan (resident, streamed, mmap for the full
experts; resident, factorised, mmap for the LoRA ones) is asked for: where the plan allows it,
the merger is built, ``--candidates`` weight vectors are merged, and after each merge the model
generates on a few HH-RLHF prompts; where it does not, the plan's one-line refusal is shown.
Prints, side by side: the peak resident memory (RSS) of each process, the time per merge and
per generation, and the memory the resident design would have needed.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.gpu_models import (  # noqa: E402
    generate_tokens,
    prompt_ids,
    random_state,
    write_full,
    write_lora,
)
from benchmarks.shapes import config  # noqa: E402

SHAPE = "qwen2.5-1.5b"
WAYS = {"full": ("resident", "streamed", "mmap"), "lora": ("resident", "factorised", "mmap")}


def build(root: Path, tokenizer: Path) -> None:
    """The base, three full experts and three LoRA adapters (skipped when already built)."""
    from merging.sizes import ModelShape

    done = root / "built.json"
    if done.is_file():
        return
    start = time.perf_counter()
    cfg = config(SHAPE)
    shapes = ModelShape.from_config(cfg).shapes
    cpu = torch.device("cpu")
    base = random_state(shapes, cpu, torch.float32, 0)
    write_full(root / "base", cfg, base, tokenizer)
    for i in range(3):
        expert = random_state(shapes, cpu, torch.float32, 1 + i, base)
        write_full(root / f"full{i}", cfg, expert, None)
        del expert
        print(f"  full{i} written ({time.perf_counter() - start:.0f} s)", flush=True)
    for i in range(3):
        write_lora(root / f"lora{i}", shapes, cpu, torch.float32, 10 + i)
    done.write_text(json.dumps({"seconds": time.perf_counter() - start}))
    print(f"built in {time.perf_counter() - start:.0f} s", flush=True)


def run_way(root: Path, kind: str, way: str, candidates: int, prompts: Path, tokenizer: Path):
    """One way in this process: the plan, and if it fits, build, merge, generate."""
    from merging.expert_set import ExpertSet
    from merging.merger import open_merger, plan_experts
    from merging.plan import PlanError
    from merging.sizes import Generation

    experts = {f"{kind}{i}": root / f"{kind}{i}" for i in range(3)}
    expert_set = ExpertSet.from_paths(root / "base", experts)
    n_prompts, new_tokens = 4, 16
    gen = Generation(n_prompts=n_prompts, batch_size=n_prompts, prompt_tokens=256, new_tokens=16)
    result = {"kind": kind, "way": way}
    try:
        plan = plan_experts(expert_set, device="cpu", placement=way, generation=gen)
    except PlanError as err:
        result["refused"] = str(err)
        return result
    print(plan.table(), file=sys.stderr, flush=True)
    result["resident_gb"] = plan.resident_bytes / 1e9
    result["planned_gb"] = (plan.device_bytes + plan.host_bytes) / 1e9
    t = time.perf_counter()
    merger = open_merger(expert_set, plan, device="cpu")
    result["build_s"] = time.perf_counter() - t
    ids = prompt_ids(tokenizer, prompts, n_prompts, merger.model.config.vocab_size)
    rng = np.random.default_rng(0)
    merges, gens = [], []
    for _ in range(candidates):
        w = rng.dirichlet(np.ones(3))
        t = time.perf_counter()
        merger.set_linear(list(w))
        merges.append(time.perf_counter() - t)
        t = time.perf_counter()
        tokens = generate_tokens(merger.model, ids, n_prompts, new_tokens)
        gens.append(time.perf_counter() - t)
        if tokens != n_prompts * new_tokens:
            raise RuntimeError(f"generated {tokens} tokens, expected {n_prompts * new_tokens}")
    result["merge_s"] = merges
    result["generate_s"] = gens
    result["peak_rss_gb"] = peak_rss() / 1e9
    return result


def peak_rss() -> int:
    """This process's peak resident memory, file pages mapped in included (``VmHWM``).

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it across ``fork`` and ``exec``, so a child
    would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def table(results: list[dict]) -> str:
    lines = [
        "| experts | way | peak RSS | build | time per merge | generate (4 prompts x 16 tokens) "
        "| the resident design needs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = "3 full, float32" if r["kind"] == "full" else "3 LoRA r=16"
        if "refused" in r:
            needed = re.search(r": ([0-9.]+ GB needed, [0-9.]+ GB free)", r["refused"])
            why = needed.group(1) if needed else r["refused"]
            lines.append(f"| {name} | {r['way']} | refused by the plan ({why}) | | | | |")
            continue
        merges = " / ".join(f"{m:.1f} s" for m in r["merge_s"])
        gens = " / ".join(f"{g:.1f} s" for g in r["generate_s"])
        lines.append(
            f"| {name} | {r['way']} | **{r['peak_rss_gb']:.1f} GB** | {r['build_s']:.0f} s | "
            f"{merges} | {gens} | {r['resident_gb']:.1f} GB |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/tmp/large_merge", help="where the experts are written")
    p.add_argument("--candidates", type=int, default=2, help="merges per way")
    p.add_argument("--tokenizer", default=str(ROOT / ".gpu" / "tokenizer"))
    p.add_argument("--prompts", default=str(ROOT / ".gpu" / "prompts.jsonl"))
    p.add_argument("--run", nargs=2, metavar=("KIND", "WAY"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    root = Path(args.root)
    tokenizer, prompts = Path(args.tokenizer), Path(args.prompts)
    if args.run:
        result = run_way(root, *args.run, args.candidates, prompts, tokenizer)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if not tokenizer.is_dir() or not prompts.is_file():
        print(
            "large_merge: run 'python benchmarks/gpu_check.py --prepare .gpu' first (the "
            "SmolLM2 tokenizer and HH-RLHF prompts)",
            file=sys.stderr,
        )
        return 2
    root.mkdir(parents=True, exist_ok=True)
    build(root, tokenizer)
    results = []
    for kind, ways in WAYS.items():
        for way in ways:
            cmd = [
                sys.executable,
                __file__,
                "--root",
                str(root),
                "--run",
                kind,
                way,
                "--candidates",
                str(args.candidates),
                "--tokenizer",
                str(tokenizer),
                "--prompts",
                str(prompts),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{kind} {way}: the process failed (exit {done.returncode})")
            results.append(json.loads(line.removeprefix("RESULT ")))
            print(f"{kind} {way}: {results[-1]}", flush=True)
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
