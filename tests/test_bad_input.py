"""Bad input across every command: exit status 2, one line on stderr naming the input, no
traceback, and nothing written anywhere (the file trees are compared before and after).

Each case is ``(command line, what the line must name)``; ``{name}`` in a command line is a
file or folder from the fixtures below (tiny random models, a truncated and a NaN checkpoint,
one whose config asks for its own code, prompt and pair files, the tiny study's storage).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import HH_RLHF
from tests.merging.conftest import build_model

STUDY = Path(__file__).resolve().parents[1] / "studies" / "tiny.yaml"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Inputs, good and bad, in one folder that no case may change."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("inputs")
    base = build_model("llama", root / "base", seed=0)
    e0 = build_model("llama", root / "e0", seed=1, base=base)
    build_model("llama", root / "e1", seed=2, base=base)

    truncated = root / "truncated"
    shutil.copytree(e0, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    nan = root / "nan"
    shutil.copytree(e0, nan)
    tensors = load_file(nan / "model.safetensors")
    next(iter(tensors.values()))[0] = float("nan")
    save_file(tensors, nan / "model.safetensors", metadata={"format": "pt"})

    remote = root / "remote"
    shutil.copytree(e0, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.X"}
    (remote / "config.json").write_text(json.dumps(config))

    untokenized = root / "untokenized"  # weights and config, no tokenizer
    untokenized.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(e0 / name, untokenized / name)

    (root / "prompts.txt").write_text("w7 w8 w9\nw10 w11\n")
    (root / "few.jsonl").write_text(
        json.dumps({"prompt": "w7", "chosen": "w20 w21", "rejected": "w22"}) + "\n"
    )
    (root / "pairs.jsonl").write_text(
        "\n".join(
            json.dumps({"prompt": f"w{7 + i}", "chosen": "w20 w21", "rejected": "w22"})
            for i in range(100)
        )
    )
    (root / "results.csv").write_text("a,b\n1,2\n3,1\n")
    (root / "broken.yaml").write_text("name: x\nfamilies: [a\n  b: c\n")
    study = STUDY.read_text()
    for name, settings in (("typo", "populaton: 4"), ("negative", "population: -1")):
        (root / f"{name}.yaml").write_text(study.replace("population: 4", settings))
    names = ("base", "e0", "e1", "truncated", "nan", "remote", "untokenized", "prompts.txt")
    names += ("pairs.jsonl", "few.jsonl")
    names += ("results.csv", "broken.yaml", "typo.yaml", "negative.yaml")
    return {n.split(".")[0]: str(root / n) for n in names} | {"root": str(root)}


def merge(*extra: str) -> list[str]:
    return ["merge", "--base", "{base}", "--expert", "a={e0}", "--expert", "b={e1}",
            "--out", "merged", *extra]  # fmt: skip


def evaluate(*extra: str, model: str = "{base}") -> list[str]:
    return ["evaluate", "--model", model, "--prompts", "{prompts}",
            "--objective", "v=length_tokens:min", "--max-new-tokens", "2", *extra]  # fmt: skip


def train(*extra: str, encoder: str = "{base}") -> list[str]:
    return ["heads", "train", "--data", "{pairs}", "--encoder", encoder, "--out", "head",
            "--device", "cpu", *extra]  # fmt: skip


INTERPOLATE = ("--family", "interpolation", "--weights", "0.5,0.5")
TASK_ARITHMETIC = ("--family", "task_arithmetic", "--weights", "0.5,0.5")
TIES = ("--family", "ties", "--weights", "0.5,0.5")
MISSING_DB = "sqlite:///nowhere/x/y.db"

CASES = [
    # merge: settings
    (merge(*TASK_ARITHMETIC, "--scale", "nan"), "--scale: 'nan'"),
    (merge(*TASK_ARITHMETIC, "--scale", "inf"), "--scale: 'inf'"),
    (merge(*TIES, "--density", "1.5"), "--density: '1.5'"),
    (merge(*TIES, "--density", "-1"), "--density"),
    (merge("--family", "layerwise", "--blocks", "0", "--weights", "0.5,0.5"), "--blocks: '0'"),
    (merge(*INTERPOLATE, "--device", "tpu"), "'tpu'"),
    (merge("--family", "interpolation", "--weights", "nan,0.5"), "weights"),
    (merge(*INTERPOLATE, "--dtype", "int8"), "--dtype"),
    (merge(*INTERPOLATE, "--device-memory", "lots"), "'lots'"),
    (["merge", "--base", "{base}", "--expert", "{e0}", "--out", "m", *INTERPOLATE], "--expert"),
    (merge("--family", "nonsense", "--weights", "0.5,0.5"), "nonsense"),
    # merge: checkpoints
    (
        [
            "merge",
            "--base",
            "{root}/nothing",
            "--expert",
            "a={e0}",
            "--expert",
            "b={e1}",
            "--out",
            "m",
            *INTERPOLATE,
        ],
        "nothing",
    ),
    (
        [
            "merge",
            "--base",
            "{base}",
            "--expert",
            "a={truncated}",
            "--expert",
            "b={e1}",
            "--out",
            "m",
            *INTERPOLATE,
        ],
        "truncated",
    ),
    (
        [
            "merge",
            "--base",
            "{base}",
            "--expert",
            "a={nan}",
            "--expert",
            "b={e1}",
            "--out",
            "m",
            *INTERPOLATE,
        ],
        "nan",
    ),
    (
        [
            "merge",
            "--base",
            "{base}",
            "--expert",
            "a={remote}",
            "--expert",
            "b={e1}",
            "--out",
            "m",
            *INTERPOLATE,
        ],
        "--trust-remote-code",
    ),
    # evaluate
    (evaluate(model="{nan}"), "nan): tensor"),
    (evaluate(model="{truncated}"), "truncated"),
    (evaluate(model="{remote}"), "--trust-remote-code"),
    (evaluate(model="{untokenized}"), "untokenized has no usable tokenizer"),
    (evaluate("--limit", "-3"), "--limit: '-3'"),
    (evaluate("--max-new-tokens", "0"), "--max-new-tokens: '0'"),
    (evaluate("--temperature", "-1"), "--temperature: '-1'"),
    (evaluate("--batch-size", "0"), "--batch-size: '0'"),
    (evaluate("--samples", "-1"), "--samples: '-1'"),
    (
        [
            "evaluate",
            "--model",
            "{base}",
            "--prompts",
            "{root}/absent.txt",
            "--objective",
            "v=length_tokens:min",
        ],
        "absent.txt",
    ),
    (["evaluate", "--model", "{base}", "--prompts", "{prompts}", "--objective", "bogus"], "bogus"),
    (evaluate("--objective", "t=reference_nll:{few}:min"), "has 1 reference items"),
    (evaluate("--objective", "k=kl_to_base:min"), "write kl_to_base:BASE"),
    # heads
    (train("--limit", "-3"), "--limit: '-3'"),
    (train("--max-tokens", "0"), "--max-tokens: '0'"),
    (train("--layer", "0"), "--layer: '0'"),
    (train("--layer", "99"), "layer=99: the model has layers 1 to"),
    (train("--layer", "2", encoder="minilm"), "--layer applies to causal-LM encoders"),
    (train("--device", "tpu"), "'tpu'"),
    (train(encoder="{remote}"), "--trust-remote-code"),
    (train(encoder="{truncated}"), "truncated"),
    (train(encoder="{untokenized}"), "untokenized"),
    (["heads", "train", "--data", "{few}", "--encoder", "{base}", "--out", "h"], "at least 10"),
    (
        ["heads", "train", "--data", "{root}/absent.jsonl", "--encoder", "{base}", "--out", "h"],
        "absent.jsonl",
    ),
    (["heads", "eval", "--head", "{root}/no-head", "--data", "{pairs}"], "no-head"),
    (["heads", "eval", "--head", "reference_nll:{pairs}", "--data", "{pairs}"], "scores a policy"),
    (
        ["heads", "eval", "--head", "length_tokens", "--data", "{pairs}", "--limit", "0"],
        "--limit: '0'",
    ),
    # study run: nothing may be stored before the settings are checked
    (["study", "run", "{broken}"], "line 3, column 4"),
    (["study", "run", "{typo}", "--data", str(HH_RLHF)], "populaton"),
    (["study", "run", "{negative}", "--data", str(HH_RLHF)], "population"),
    (["study", "run", str(STUDY), "--device", "tpu"], "'tpu'"),
    (["study", "run", "{root}/absent.yaml"], "absent.yaml"),
    # commands that only read a storage: a mistyped path creates nothing
    (["study", "show", "tiny", "--storage", MISSING_DB], "nowhere/x/y.db"),
    (["study", "show", "nosuchstudy", "--storage", "{storage}"], "nosuchstudy"),
    (["export", "--study", "tiny", "--storage", MISSING_DB, "--knee", "--out", "o"], "y.db"),
    (
        [
            "export",
            "--study",
            "tiny",
            "--storage",
            "{storage}",
            "--trial",
            "interpolation#six",
            "--out",
            "o",
        ],
        "interpolation#six",
    ),
    (
        [
            "export",
            "--study",
            "tiny",
            "--storage",
            "{storage}",
            "--trial",
            "nothing#1",
            "--out",
            "o",
        ],
        "nothing",
    ),
    (
        [
            "export",
            "--study",
            "tiny",
            "--storage",
            "{storage}",
            "--knee",
            "--out",
            "o",
            "--max-shard-size",
            "lots",
        ],
        "--max-shard-size: 'lots'",
    ),
    (
        [
            "export",
            "--study",
            "tiny",
            "--storage",
            "{storage}",
            "--knee",
            "--out",
            "o",
            "--device",
            "tpu",
        ],
        "'tpu'",
    ),
    (["worker", "--study", "tiny", "--storage", MISSING_DB], "y.db"),
    (
        ["worker", "--study", "tiny", "--storage", "{storage}", "--max-trials", "0"],
        "--max-trials: '0'",
    ),
    # dashboard
    (["dashboard", "--port", "70000"], "--port: '70000'"),
    (["dashboard", "--port", "{busy_port}"], "in use"),
    (["dashboard", "--storage", MISSING_DB], "y.db"),
    # analyze, zoo, plan, quickstart
    (["analyze", "{root}/absent.csv", "--objectives", "a:max,b:max"], "absent.csv"),
    (["analyze", "{results}", "--objectives", "a:up,b:max"], "a:up"),
    (["analyze", "{results}", "--objectives", "a:max,zzz:max"], "zzz"),
    (["zoo", "build", "--preset", "bogus"], "bogus"),
    (["zoo", "build", "--preset", "tiny", "--device", "tpu"], "'tpu'"),
    (["plan", "--base", "{base}", "--expert", "a={e0}", "--prompts", "-1"], "--prompts: '-1'"),
    (["quickstart", "--device", "tpu"], "'tpu'"),
]


def tree(*roots: str | Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots``, with its size and modification time."""
    out = {}
    for root in roots:
        for folder, dirs, names in os.walk(root):
            for name in [*dirs, *names]:
                path = Path(folder) / name
                stat = path.stat()
                out[str(path)] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns)
    return out


@pytest.mark.parametrize(
    ("argv", "named"), CASES, ids=[" ".join(c[0][:3]) + f" [{i}]" for i, c in enumerate(CASES)]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    argv, named, files, tiny_zoo_cache, tiny_study, tmp_path, monkeypatch, capsys
):
    from merging.cli import main

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    study_folder = Path(tiny_study.removeprefix("sqlite:///")).parent
    watched = (files["root"], cwd, study_folder, os.environ["PARETOMERGE_CACHE"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {**files, "storage": tiny_study, "busy_port": str(busy.getsockname()[1])}
        argv = [arg.format(**values) for arg in argv]
        named = named.format(**values)
        before = tree(*watched)
        status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"paretomerge {argv[0]}"), err
    assert "Traceback" not in err + out
    assert named in err, err
    assert tree(*watched) == before
    assert not Path("/nowhere").exists()
    assert not (cwd / "nowhere").exists()


def test_the_table_covers_every_command():
    from merging.cli import SUBCOMMANDS

    commands = {case[0][0] for case in CASES}
    assert commands == {m.__name__.rsplit(".", 1)[1] for m in SUBCOMMANDS}
    assert len(CASES) >= 40
