"""``benchmarks/gpu_check.py --device cpu --small``: the GPU check's code, run on tiny models."""

from __future__ import annotations

import json

import pytest

from tests.merging.conftest import save_tokenizer


@pytest.mark.slow
def test_gpu_check_runs_every_section_on_the_cpu(tmp_path, capsys):
    from benchmarks import gpu_check

    save_tokenizer(tmp_path / "tok")
    with (tmp_path / "prompts.jsonl").open("w") as f:
        for i in range(40):
            words = " ".join(f"w{(7 * i + j) % 90 + 6}" for j in range(4 + i % 6))
            f.write(json.dumps({"prompt": words}) + "\n")
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--small", "--out", str(out), "--scratch", str(tmp_path)]
    argv += ["--tokenizer", str(tmp_path / "tok"), "--prompts", str(tmp_path / "prompts.jsonl")]
    assert gpu_check.main(argv) == 0, capsys.readouterr().out[-3000:]
    rows = json.loads((out / "gpu_check.json").read_text())
    sections = [r["section"] for r in rows]
    assert "error" not in sections
    assert sections.count("build") == 3
    merges = {(r["model"], r["way"]) for r in rows if r["section"] == "merge"}
    for size in ("smollm2-135m", "qwen2.5-1.5b", "llama-3-8b"):
        for way in ("resident", "mmap"):
            assert (f"{size} (small)", way) in merges
        for way in ("factorised", "mmap"):
            assert (f"{size} (small) LoRA", way) in merges
    for r in rows:
        if r["section"] == "merge":
            assert r["result"].endswith("s)")
            assert float(r["ratio"].removesuffix("x")) > 0
            prompts = min(40, 64 if r["model"].startswith("llama") else 32)
            assert int(r["note"].split("; ")[1].split()[0]) == 8 * prompts  # every one wrote
    generation = next(r for r in rows if r["section"] == "generation")
    assert generation["way"].startswith("batch 32 (auto)")
    study = next(r for r in rows if r["section"] == "study")
    assert study["result"].startswith("6 trials")
    table = (out / "gpu_check.md").read_text()
    assert table.startswith("| section | model | way |")
    assert table in capsys.readouterr().out
