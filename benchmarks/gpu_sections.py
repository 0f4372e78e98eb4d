"""The GPU check's measurements: copy bandwidth and peak memory on the device, every way of
merging one shape's experts, generation at the automatic batch, and a study end to end. Each
section adds rows to the check's :class:`benchmarks.gpu_check.Report`."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.gpu_models import (
    RANK,
    SMALL,
    generate_tokens,
    prompt_ids,
    random_state,
    write_full,
    write_lora,
)
from benchmarks.shapes import config

# -- the device ---------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``fn`` (seconds), after one warm-up."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def bandwidths(device: torch.device, small: bool) -> dict[str, float]:
    """Copy bandwidth on the device and from pinned host memory (bytes moved per second)."""
    n = (1 << 22) if small else (1 << 30)  # values of bfloat16: 8 MB or 2 GiB
    src = torch.empty(n, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src), device)
    out = {"device_copy": 2 * n * 2 / t}  # bytes read and written
    if device.type == "cuda":
        host = torch.empty(n, dtype=torch.bfloat16, pin_memory=True)
        t = timed(lambda: dst.copy_(host, non_blocking=True), device)
        out["host_to_device"] = n * 2 / t
    return out


def peak_reset(device: torch.device) -> int:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return 0


def peak_since(device: torch.device, start: int) -> int | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - start
    return None


# -- the sections -----------------------------------------------------------------------------


def bytes_moved(way: str, experts, model_bytes: int, device) -> tuple[int, str]:
    """The bytes one merge of ``way`` must move at least, and the copy bandwidth that bounds it:
    every expert and the output on the device (resident), the full experts, the output and the
    LoRA product (factorised), or the rows read from host memory or files (streamed, mmap)."""
    n_full = sum(c.kind != "lora" for c in experts.experts.values())
    if way == "resident":
        return (len(experts.names) + 1) * model_bytes, "device_copy"
    if way == "factorised":
        return (n_full + 2) * model_bytes, "device_copy"
    moved = (n_full + (1 if n_full < len(experts.names) else 0)) * model_bytes
    return moved, "host_to_device" if device.type == "cuda" else "device_copy"


def merge_ways(report, label, experts, device, dtype, bounds, ids, candidates, ways):
    """Each way the plan allows for ``experts``: build, merge candidates, generate, memory."""
    from merging.merger import open_merger, plan_experts
    from merging.plan import PlanError
    from merging.sizes import Generation

    e = torch.empty(0, dtype=dtype).element_size()
    rng = np.random.default_rng(0)
    for way in ways:
        if report.left() < 20:
            report.add(section="merge", model=label, way=way, note="skipped: time")
            continue
        start_mem = peak_reset(device)
        gen = Generation(n_prompts=len(ids), batch_size=len(ids), prompt_tokens=256, new_tokens=8)
        try:
            plan = plan_experts(experts, device=device, dtype=dtype, placement=way, generation=gen)
        except PlanError as err:
            report.add(section="merge", model=label, way=way, note=f"plan refuses: {err}"[:160])
            continue
        t0 = time.perf_counter()
        merger = open_merger(experts, plan, device=device, dtype=dtype)
        sync(device)
        build = time.perf_counter() - t0
        weights = [rng.dirichlet(np.ones(len(experts.names))) for _ in range(candidates)]
        times = []
        for w in weights:
            sync(device)
            t = time.perf_counter()
            merger.set_linear(list(w))
            sync(device)
            times.append(time.perf_counter() - t)
        per_merge = min(times)
        moved, bound_name = bytes_moved(way, experts, merger.flat.numel() * e, device)
        bound = moved / bounds[bound_name]
        tokens = generate_tokens(merger.model, ids, len(ids), 8)
        peak = peak_since(device, start_mem)
        predicted = plan.device_bytes
        report.add(
            section="merge",
            model=label,
            way=way,
            result=f"{per_merge * 1e3:.1f} ms/merge (build {build:.1f} s)",
            bound=f"{bound * 1e3:.1f} ms ({moved / 1e9:.2f} GB at {bounds[bound_name] / 1e9:.0f}"
            f" GB/s {bound_name.replace('_', '-')})",
            ratio=f"{per_merge / bound:.2f}x",
            note=(
                f"peak {peak / 1e9:.2f} GB vs plan {predicted / 1e9:.2f} GB; {tokens} tokens"
                if peak is not None
                else f"plan {predicted / 1e9:.2f} GB; {tokens} tokens"
            ),
        )
        del merger
        peak_reset(device)


def generation_rate(report, label, model, ids, device, new_tokens):
    """Tokens per second at the automatic batch against batch 1."""
    from merging.generation import GenerationSettings, auto_batch_size

    settings = GenerationSettings(max_new_tokens=new_tokens, max_prompt_tokens=256)
    auto = auto_batch_size(model, device, len(ids), settings)
    rates = {}
    for batch, prompts in ((auto, ids), (1, ids[: max(2, len(ids) // 8)])):
        generate_tokens(model, prompts[:batch], batch, 2)  # warm-up
        sync(device)
        t = time.perf_counter()
        tokens = generate_tokens(model, prompts, batch, new_tokens)
        sync(device)
        rates[batch] = tokens / (time.perf_counter() - t)
    report.add(
        section="generation",
        model=label,
        way=f"batch {auto} (auto) vs 1",
        result=f"{rates[auto]:.0f} tokens/s",
        bound=f"{rates[1]:.0f} tokens/s at batch 1",
        ratio=f"{rates[auto] / rates[1]:.1f}x",
        note=f"{len(ids)} prompts, {new_tokens} new tokens each, greedy",
    )


def study_end_to_end(report, base, experts, prompts_file, device, out: Path):
    """A 6-trial study of the interpolation family on the device, recorded in SQLite."""
    from merging.study.runner import run_study
    from merging.study.spec import parse_study_spec

    spec = parse_study_spec(
        {
            "name": "gpu-check",
            "base": str(base),
            "experts": {k: str(v) for k, v in experts.items()},
            "families": ["interpolation"],
            "objectives": ["verbosity=length_tokens:min", "closeness=target_length:24:min"],
            "prompts": {"path": str(prompts_file), "n": 16},
            "generation": {"max_new_tokens": 24},
            "search": {"driver": "random", "budget": 6, "seed": 0},
            "device": device.type,
        }
    )
    lines = []
    t = time.perf_counter()
    runs = run_study(spec, storage_url=f"sqlite:///{out / 'study.db'}", log=lines.append)
    took = time.perf_counter() - t
    trials = [t for r in runs for t in r.trials() if t.state.name == "COMPLETE"]
    merge_s = [t.user_attrs.get("timings", {}).get("merge_s") for t in trials]
    merge_s = [m for m in merge_s if m is not None]
    merged = f"merge {np.median(merge_s) * 1e3:.0f} ms median; " if merge_s else ""
    report.add(
        section="study",
        model="smollm2-135m",
        way=runs[0].spec.driver,
        result=f"{len(trials)} trials in {took:.1f} s",
        bound="",
        ratio="",
        note=f"{merged}16 prompts x 24 tokens a trial",
    )


def check_size(report, size, args, device, dtype, tokenizer, prompts_file, vocab, bounds, work):
    """Build one shape's experts, measure every way; the smol shape's files serve the study."""
    from merging.checkpoints import Checkpoint, inspect_checkpoint
    from merging.expert_set import ExpertSet
    from merging.sizes import ModelShape

    cfg = config(size, **(dict(SMALL, vocab_size=vocab) if args.small else {}))
    label = f"{size}{' (small)' if args.small else ''}"
    shapes = ModelShape.from_config(cfg).shapes
    ids = prompt_ids(tokenizer, prompts_file, 64 if size == "llama-3-8b" else 32, cfg.vocab_size)
    in_memory = size == "llama-3-8b" and not args.small  # 16 GB files would not fit on disk
    n_full = 2 if in_memory else 3
    t0 = time.perf_counter()
    base = random_state(shapes, device, dtype, 0)
    fulls = {f"full{i}": random_state(shapes, device, dtype, 1 + i, base) for i in range(n_full)}
    folder = work / size
    made = None
    if in_memory:
        base_ckpt = Checkpoint.from_state("base", cfg, base)
        full_ckpts = {k: Checkpoint.from_state(k, cfg, v) for k, v in fulls.items()}
    else:
        base_path = write_full(folder / "base", cfg, base, tokenizer)
        paths = {k: write_full(folder / k, cfg, v, None) for k, v in fulls.items()}
        base_ckpt = inspect_checkpoint("base", base_path)
        full_ckpts = {k: inspect_checkpoint(k, path) for k, path in paths.items()}
        made = (base_path, paths) if size == "smollm2-135m" else None
    del base, fulls
    loras = {
        f"lora{i}": write_lora(folder / f"lora{i}", shapes, device, dtype, 10 + i) for i in range(3)
    }
    lora_ckpts = {k: inspect_checkpoint(k, path) for k, path in loras.items()}
    sync(device)
    report.add(
        section="build",
        model=label,
        result=f"{time.perf_counter() - t0:.1f} s",
        note=f"base, {n_full} full experts{' in device memory' if in_memory else ' in files'}, "
        f"3 LoRA r={RANK}",
    )
    full_set = ExpertSet(base_ckpt, full_ckpts)
    ways = ["resident", "streamed"] + ([] if in_memory else ["mmap"])
    if device.type != "cuda":
        ways.remove("streamed")  # a CPU's host memory is its device memory
    merge_ways(report, label, full_set, device, dtype, bounds, ids, args.candidates, ways)
    lora_set = ExpertSet(base_ckpt, lora_ckpts)
    lora_ways = ["factorised"] + ([] if in_memory else ["mmap"])
    merge_ways(
        report, f"{label} LoRA", lora_set, device, dtype, bounds, ids, args.candidates, lora_ways
    )
    if size == "qwen2.5-1.5b" and report.left() > 40:
        from merging.merger import open_merger, plan_experts

        plan = plan_experts(full_set, device=device, dtype=dtype, placement="resident")
        merger = open_merger(full_set, plan, device=device, dtype=dtype)
        merger.set_linear([1 / 3] * 3)
        generation_rate(report, label, merger.model, ids, device, 8 if args.small else 32)
    return made
