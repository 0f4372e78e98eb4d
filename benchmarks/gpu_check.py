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

import torch  # noqa: E402

from benchmarks.gpu_sections import (  # noqa: E402
    bandwidths,
    check_size,
    peak_reset,
    study_end_to_end,
)

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
