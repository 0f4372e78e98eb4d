from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from merging.data import (
    SPLITS,
    Prompt,
    parse_dialogue,
    read_pairs,
    read_prompts,
    select_split,
    split_of,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf"
HELPFUL = SHARED / "helpful-base" / "test.jsonl.gz"


def test_parse_dialogue():
    msgs = parse_dialogue("\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: bye\n\nAssistant: ok")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == "hi there"
    assert msgs[-1]["content"] == "ok"


@pytest.mark.skipif(not HELPFUL.is_file(), reason="../shared/data is not beside this checkout")
def test_real_hh_rlhf_pairs_and_split():
    pairs = read_pairs(HELPFUL)
    assert 2300 < len(pairs) <= 2354
    first = pairs[0]
    assert first.prompt.messages[-1]["role"] == "user"
    assert first.prompt.last_user.startswith("Do you know why turkeys")
    assert first.chosen.startswith("To be honest")
    counts = {s: len(select_split(pairs, s)) for s in SPLITS}
    assert sum(counts.values()) == len(pairs)
    assert 0.75 < counts["train"] / len(pairs) < 0.85


def test_trl_formats_and_gzip(tmp_path):
    rows = [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        },
        {
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
            "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B"}],
        },
        {"prompt": "same", "chosen": "x", "rejected": "x"},  # no preference: skipped
    ]
    path = tmp_path / "pairs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    pairs = read_pairs(path)
    assert [(p.prompt.last_user, p.chosen, p.rejected) for p in pairs] == [
        ("What is 2+2?", "4", "5"),
        ("Hi", "Hello!", "Go away."),
        ("Q", "A", "B"),
    ]


def test_split_is_by_prompt_hash_not_row_order():
    prompts = [Prompt(({"role": "user", "content": f"question {i}"},)) for i in range(300)]
    forward = {p.text: split_of(p) for p in prompts}
    backward = {p.text: split_of(p) for p in reversed(prompts)}
    assert forward == backward
    assert set(forward.values()) == set(SPLITS)
    with pytest.raises(ValueError, match="3 non-negative numbers"):
        split_of(prompts[0], (0.5, 0.5))


def test_read_prompts(tmp_path):
    (tmp_path / "p.txt").write_text("first\n\nsecond\n")
    assert [p.last_user for p in read_prompts(tmp_path / "p.txt")] == ["first", "second"]
    (tmp_path / "p.jsonl").write_text(
        json.dumps({"prompt": "a"})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "b"}]})
        + "\n"
        + json.dumps({"text": "c"})
        + "\n"
    )
    assert [p.last_user for p in read_prompts(tmp_path / "p.jsonl")] == ["a", "b", "c"]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "a"}) + "\n")
    with pytest.raises(ValueError, match="line 1: needs a 'prompt'"):
        read_prompts(tmp_path / "bad.jsonl")
    (tmp_path / "bad2.jsonl").write_text(
        json.dumps({"messages": [{"role": "assistant", "content": "b"}]}) + "\n"
    )
    with pytest.raises(ValueError, match="must end with a user turn"):
        read_prompts(tmp_path / "bad2.jsonl")
