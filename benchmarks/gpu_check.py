"""The GPU path measured in one run: merges of every way, generation, a study end to end.

    python benchmarks/gpu_check.py                     # on a GPU: real shapes, about 5 minutes
    python benchmarks/gpu_check.py --device cpu --small  # the same code on tiny models (a test)
    python benchmarks/gpu_check.py --prepare .gpu        # here: what the GPU machine lacks

Nothing is downloaded. Experts have real shapes (SmolLM2-135M, Qwen2.5-1.5B, Llama-3-8B
configs) and random weights built on the device: the base, the base plus noise as full experts
(in safetensors files, or held in device memory where files of several 8B copies would not fit
on disk), and rank-16 LoRA adapters on every projection. For each shape and each way the memory
plan allows (resident, factorised, streamed, mmap) it reports:

* the time per merge against the copy-bandwidth bound of the bytes that merge must move,
  measured in the same run (device-to-device for rows on the device, host-to-device for rows in
  host memory or files);
* peak device memory against the plan's prediction;
* that the merged model generates (a few prompts, greedy).

Then generation tokens/s at the automatic batch against batch 1, and a 6-trial study on the
device, end to end (merge, generate, score with length heads, record in SQLite). ``--prepare``
writes what the GPU machine needs beside the code: HH-RLHF prompts, the SmolLM2 tokenizer, and
wheels of the project's dependencies it lacks. It prints one table (Markdown) and writes it,
with the raw numbers as JSON, to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.shapes import LORA_TARGETS, config  # noqa: E402

RANK = 16
SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
WHEELS = (
    "optuna alembic sqlalchemy mako colorlog greenlet moocore cffi pycparser platformdirs pymoo "
    "autograd cma alive-progress about-time graphemeu deprecated dill pydantic pydantic-core "
    "annotated-types typing-inspection typing-extensions mergekit immutables"
)
"""Distributions the GPU machine's image lacks that the check imports (its KINDS.md lists the
image's packages); ``--prepare`` downloads them as wheels for Python 3.12."""


class Report:
    """Rows of the final table, and every number, written as they come (a killed run keeps
    what it measured)."""

    def __init__(self, out: Path | None, started: float, budget: float):
        self.rows: list[dict] = []
        self.out, self.started, self.budget = out, started, budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def add(self, **row) -> None:
        self.rows.append(row)
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        self.save()

    def save(self) -> None:
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "gpu_check.json").write_text(json.dumps(self.rows, indent=1))
            (self.out / "gpu_check.md").write_text(self.table())

    def table(self) -> str:
        head = "| section | model | way | result | bound or prediction | ratio | note |"
        lines = [head, "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(
                "| "
                + " | ".join(
                    str(r.get(k, ""))
                    for k in ("section", "model", "way", "result", "bound", "ratio", "note")
                )
                + " |"
            )
        return "\n".join(lines)


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


# -- experts of real shapes -----------------------------------------------------------------


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


# -- the sections -----------------------------------------------------------------------------


def merge_ways(report, label, experts, device, dtype, bounds, ids, candidates, ways):
    """Each way the plan allows for ``experts``: build, merge candidates, generate, memory."""
    from merging.merger import open_merger, plan_experts
    from merging.plan import Generation, PlanError

    e = torch.empty(0, dtype=dtype).element_size()
    n_full = sum(c.kind != "lora" for c in experts.experts.values())
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
        p = merger.flat.numel()
        weights = [rng.dirichlet(np.ones(len(experts.names))) for _ in range(candidates)]
        times = []
        for w in weights:
            sync(device)
            t = time.perf_counter()
            merger.set_linear(list(w))
            sync(device)
            times.append(time.perf_counter() - t)
        per_merge = min(times)
        if way == "resident":
            moved, bound_name = (len(experts.names) + 1) * p * e, "device_copy"
        elif way == "factorised":
            moved, bound_name = (n_full + 2) * p * e, "device_copy"
        else:
            moved = (n_full + (1 if n_full < len(experts.names) else 0)) * p * e
            bound_name = "host_to_device" if device.type == "cuda" else "device_copy"
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
    from merging.checkpoints import Checkpoint, ExpertSet, inspect_checkpoint
    from merging.plan import ModelShape

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


def run(args) -> int:
    device = torch.device(args.device)
    started = time.monotonic()
    out = Path(args.out) if args.out else None
    report = Report(out, started, args.budget)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"gpu_check: {name}, torch {torch.__version__}, {dtype}", flush=True)
    tokenizer = Path(args.tokenizer)
    prompts_file = Path(args.prompts)
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(str(tokenizer)))
    bounds = bandwidths(device, args.small)
    report.add(
        section="bounds",
        model="",
        way="copy",
        result=", ".join(f"{k.replace('_', '-')} {v / 1e9:.0f} GB/s" for k, v in bounds.items()),
        note=name,
    )
    work = Path(tempfile.mkdtemp(prefix="gpu_check_", dir=args.scratch))

    study_set = None
    for size in ("smollm2-135m", "qwen2.5-1.5b", "llama-3-8b"):
        if report.left() < 60:
            report.add(section="merge", model=size, note="skipped: time")
            continue
        try:
            made = check_size(
                report, size, args, device, dtype, tokenizer, prompts_file, vocab, bounds, work
            )
            study_set = study_set or made
        except Exception as err:
            traceback.print_exc()
            report.add(section="error", model=size, note=f"{type(err).__name__}: {err}"[:200])
        peak_reset(device)
    if study_set is not None and report.left() > 30:
        try:
            study_end_to_end(report, study_set[0], study_set[1], prompts_file, device, work)
        except Exception as err:
            traceback.print_exc()
            report.add(section="error", model="study", note=f"{type(err).__name__}: {err}"[:200])
    print()
    print(report.table())
    return 0 if not any(r["section"] == "error" for r in report.rows) else 1


# -- what the GPU machine needs ------------------------------------------------------------


def prepare(folder: Path, data: Path) -> None:
    """Write HH-RLHF prompts and the SmolLM2 tokenizer into ``folder``, and download wheels of
    :data:`WHEELS` for the GPU machine's Python (3.12) into ``folder/whl``."""
    import subprocess

    from transformers import AutoTokenizer

    from merging.data import read_pairs, select_split
    from merging.heads.encoders import smollm2_gguf

    folder.mkdir(parents=True, exist_ok=True)
    prompts = []
    for subset in ("helpful-base", "harmless-base"):
        pairs = select_split(read_pairs(data / subset / "test.jsonl.gz"), "evaluation")
        prompts += [p.prompt for p in pairs if len(p.prompt.last_user) < 300][:48]
    with (folder / "prompts.jsonl").open("w") as f:
        for p in prompts:
            f.write(json.dumps({"messages": list(p.messages)}) + "\n")
    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(folder / "tokenizer")
    wheels = folder / "whl"
    wheels.mkdir(exist_ok=True)
    platforms = []
    for n in ("2_28", "2_27", "2_17", "2_24", "2_31", "2_34", "2_35"):
        platforms += ["--platform", f"manylinux_{n}_x86_64"]
    platforms += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]
    from importlib.metadata import version

    for dist in WHEELS.split():
        try:
            pinned = f"{dist}=={version(dist)}"
        except Exception:
            pinned = dist
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(wheels),
            pinned,
            "-q",
        ]
        if subprocess.run(cmd, check=False).returncode:
            cmd[cmd.index("--only-binary=:all:")] = "--prefer-binary"
            subprocess.run(cmd, check=True)
    print(
        f"wrote {len(prompts)} prompts, the tokenizer and {len(list(wheels.iterdir()))} wheels"
        f" to {folder}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="tiny models of the same shapes' kinds")
    p.add_argument("--out", help="folder for gpu_check.md and gpu_check.json")
    p.add_argument("--budget", type=float, default=420.0, help="seconds; later parts skip")
    p.add_argument("--candidates", type=int, default=3, help="merges timed per way")
    p.add_argument("--tokenizer", default=str(ROOT / ".gpu" / "tokenizer"))
    p.add_argument("--prompts", default=str(ROOT / ".gpu" / "prompts.jsonl"))
    p.add_argument("--scratch", default=os.environ.get("TMPDIR"), help="folder for the files")
    p.add_argument("--prepare", metavar="FOLDER", help="write prompts, tokenizer and wheels")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hh-rlhf"))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.prepare:
        prepare(Path(args.prepare), Path(args.data))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
