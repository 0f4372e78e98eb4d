from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from merging.data import PreferencePair, Prompt
from merging.heads import BTHead, HFRewardModel, LengthTokens, TargetLength, load_head
from merging.heads.bt_head import train_bt_head
from merging.heads.encoders import CausalLMEncoder, MiniLMEncoder

P = Prompt(({"role": "user", "content": "w10 w11"},))


def test_length_heads(model_zoo):
    from transformers import AutoTokenizer

    base, _ = model_zoo("llama", 2)
    tok = AutoTokenizer.from_pretrained(base)
    responses = ["w7 w8 w9", "", "w7 <|im_end|> w9 w10"]
    np.testing.assert_array_equal(LengthTokens().score([P] * 3, responses), [3, 0, 4])
    head = LengthTokens()
    head.bind_policy(tok)
    np.testing.assert_array_equal(head.score([P] * 3, responses), [3, 0, 4])
    np.testing.assert_array_equal(TargetLength(2).score([P] * 3, responses), [1, 2, 2])
    assert load_head("target_length:50").target == 50
    with pytest.raises(ValueError, match=r"is not one of: .*length_tokens; .*target_length"):
        load_head("no_such_head")
    with pytest.raises(ValueError, match="Got 1 responses for 2 prompts"):
        LengthTokens().score([P, P], ["a"])


def test_hf_reward_model_scores_like_a_direct_forward(seq_cls):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    head = load_head(str(seq_cls), device="cpu")
    assert isinstance(head, HFRewardModel)
    responses = ["w20 w21", "w30", "w40 w41 w42 w43"]
    scores = head.score([P] * 3, responses)
    model = AutoModelForSequenceClassification.from_pretrained(seq_cls).eval()
    tok = AutoTokenizer.from_pretrained(seq_cls)
    for r, s in zip(responses, scores, strict=True):
        text = head.text(P, r)
        assert text.startswith("<|im_start|>user w10 w11<|im_end|>")
        with torch.no_grad():
            want = model(**tok(text, return_tensors="pt")).logits[0, 0].item()
        assert s == pytest.approx(want, abs=1e-5)
    assert head.identity()["kind"] == "hf_reward_model"


def marker_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Pairs whose chosen response contains the word w50: learnable by any encoder."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        prompt = Prompt(({"role": "user", "content": f"w{10 + i % 40} w{60 + i % 30}"},))
        words = [f"w{rng.randrange(6, 49)}" for _ in range(rng.randrange(2, 6))]
        good = " ".join([*words, "w50", "w50"])
        bad = " ".join([*words, f"w{rng.randrange(6, 49)}"])
        pairs.append(PreferencePair(prompt, good, bad))
    return pairs


@pytest.mark.parametrize("architecture", ["linear", "mlp"])
def test_bt_head_learns_and_round_trips(model_zoo, tmp_path, architecture):
    base, _ = model_zoo("llama", 2)
    encoder = CausalLMEncoder(base, device="cpu", max_tokens=64)
    head, metrics = train_bt_head(marker_pairs(240), encoder, architecture=architecture)
    assert set(metrics) >= {
        "heldout_accuracy",
        "length_baseline_accuracy",
        "train_pairs",
        "heldout_pairs",
    }
    assert metrics["train_pairs"] + metrics["heldout_pairs"] == 240
    assert metrics["heldout_accuracy"] > 0.9
    head.save(tmp_path / "head")
    doc = json.loads((tmp_path / "head" / "head.json").read_text())
    assert doc["encoder"]["kind"] == "causal_lm"
    assert doc["metrics"]["heldout_accuracy"] == metrics["heldout_accuracy"]
    loaded = load_head(str(tmp_path / "head"), device="cpu")
    assert isinstance(loaded, BTHead)
    prompts, responses = [P] * 3, ["w7 w50 w50", "w8", "w9 w10"]
    np.testing.assert_allclose(
        loaded.score(prompts, responses), head.score(prompts, responses), rtol=1e-5
    )


def test_minilm_encoder_from_its_package():
    enc = MiniLMEncoder()
    feats = enc.encode(["a short text", "another, longer text about model merging"])
    assert feats.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_heads_cli_train_and_eval(model_zoo, tmp_path, capsys):
    from merging.cli import main

    base, _ = model_zoo("llama", 2)
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(
        json.dumps({"prompt": p.prompt.last_user, "chosen": p.chosen, "rejected": p.rejected})
        for p in marker_pairs(200, seed=3)
    ))  # fmt: skip
    out = tmp_path / "head"
    argv = ["heads", "train", "--data", str(data), "--encoder", str(base), "--out", str(out),
            "--device", "cpu", "--json"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {
        "heldout_accuracy",
        "length_baseline_accuracy",
        "train_pairs",
        "heldout_pairs",
    }
    assert main(argv) == 2  # the folder is not empty any more
    assert "is not empty" in capsys.readouterr().err
    argv = [
        "heads",
        "eval",
        "--head",
        str(out),
        "--data",
        str(data),
        "--split",
        "heldout",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == metrics["heldout_pairs"]
    assert result["accuracy"] == pytest.approx(metrics["heldout_accuracy"])
    assert result["ci_low"] <= result["accuracy"] <= result["ci_high"]
    assert main(["heads", "eval", "--head", "length_tokens", "--data", str(data), "--json"]) == 0
    by_length = json.loads(capsys.readouterr().out)
    assert by_length["accuracy"] > 0.9  # chosen responses carry two extra words here
    assert main(["heads", "eval", "--head", str(out), "--data", str(data)]) == 0
    assert "use --split heldout" in capsys.readouterr().out


def test_remembering_encoder_encodes_each_text_once():
    from merging.heads.encoders import Encoder, RememberingEncoder

    class Counting(Encoder):
        def __init__(self):
            self.spec = {"kind": "counting"}
            self.seen: list[str] = []

        def encode(self, texts, progress=None):
            self.seen += list(texts)
            if progress:
                progress(len(texts))
            return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32).reshape(
                -1, 2
            )

    inner, counted = Counting(), []
    enc = RememberingEncoder(inner)
    first = enc.encode(["aa", "b", "aa"], counted.append)
    second = enc.encode(["b", "ccc", "aa"], counted.append)
    assert inner.seen == ["aa", "b", "ccc"]  # each text once, duplicates included
    np.testing.assert_array_equal(first, [[2, 2], [1, 0], [2, 2]])
    np.testing.assert_array_equal(second, [[1, 0], [3, 0], [2, 2]])
    assert sum(counted) == 6  # progress counts every text asked for
    assert enc.encode([]).shape == (0, 2)
    assert enc.identity() == {"kind": "counting"}


def longer_marker_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Chosen responses carry the marker w50 and are longer in 70% of pairs (20% are of equal
    length): a head trained on them learns length as well as the marker."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        prompt = Prompt(({"role": "user", "content": f"w{10 + i % 40} w{60 + i % 30}"},))
        short = [f"w{rng.randrange(6, 49)}" for _ in range(rng.randrange(1, 4))]
        long = short + [f"w{rng.randrange(6, 49)}" for _ in range(rng.randrange(3, 8))]
        u = rng.random()
        good, bad = (long, short) if u < 0.7 else (short, long) if u < 0.8 else (short, short)
        pairs.append(PreferencePair(prompt, " ".join([*good, "w50"]), " ".join(bad + ["w7"])))
    return pairs


def test_a_length_controlled_head_has_no_length_trend_on_its_training_responses(
    model_zoo, tmp_path
):
    from merging.data import split_of
    from merging.heads.length_trend import response_lengths
    from merging.heads.pairs import length_matched

    base, _ = model_zoo("llama", 2)
    encoder = CausalLMEncoder(base, device="cpu", max_tokens=64)
    pairs = longer_marker_pairs(300)
    train = [p for p in pairs if split_of(p.prompt) == "train"]
    prompts = [p.prompt for p in train] * 2
    responses = [p.chosen for p in train] + [p.rejected for p in train]
    words = response_lengths(responses)

    plain, _ = train_bt_head(pairs, encoder)
    controlled, metrics = train_bt_head(pairs, encoder, length_control="residual")
    assert np.corrcoef(plain.score(prompts, responses), words[:, 0])[0, 1] > 0.3
    scores = controlled.score(prompts, responses)
    for column in range(2):  # words and log words: no linear trend at all
        assert abs(np.corrcoef(scores, words[:, column])[0, 1]) < 1e-4
    assert metrics["heldout_accuracy"] > 0.9  # the marker is still learnt
    matched = length_matched(pairs[:5])
    assert matched.dtype == bool
    assert len(matched) == 5
    assert metrics["heldout_length_matched_pairs"] >= 5
    assert metrics["heldout_length_matched_accuracy"] > 0.9

    controlled.save(tmp_path / "head")
    doc = json.loads((tmp_path / "head" / "head.json").read_text())
    assert doc["length_control"] == "residual"
    loaded = load_head(str(tmp_path / "head"), device="cpu")
    np.testing.assert_allclose(loaded.score(prompts[:6], responses[:6]), scores[:6], atol=1e-4)
    with pytest.raises(ValueError, match="length_control must be"):
        train_bt_head(pairs, encoder, length_control="matched")


def test_a_layer_k_encoder_reads_layer_k_and_its_head_remembers_it(model_zoo, tmp_path):
    """``layer=k`` runs k decoder layers and returns their output: the full model's
    ``hidden_states[k]`` at the last token and averaged over tokens; a head trained on it
    records the layer and loads the same encoder back."""
    from transformers import AutoModelForCausalLM

    base, _ = model_zoo("llama", 2)
    texts = ["w7 w8 w9 w10", "w11", "w12 w13"]
    full = CausalLMEncoder(base, device="cpu", max_tokens=64)
    cut = CausalLMEncoder(base, device="cpu", max_tokens=64, layer=1)
    assert len(cut.model.layers) == 1
    assert cut.identity()["layer"] == 1
    got = cut.encode(texts)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    for text, row in zip(texts, got, strict=True):
        ids = full.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            state = model(**ids, output_hidden_states=True).hidden_states[1][0]
        want = torch.cat([state[-1], state.mean(0)]).numpy()
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, full.encode(texts))
    head, _ = train_bt_head(marker_pairs(120), cut)
    head.save(tmp_path / "head")
    loaded = load_head(str(tmp_path / "head"), device="cpu")
    assert loaded.encoder.identity()["layer"] == 1
    np.testing.assert_allclose(
        loaded.score([P], ["w7 w50"]), head.score([P], ["w7 w50"]), rtol=1e-5
    )
    depth = len(full.model.layers)
    with pytest.raises(ValueError, match=f"has layers 1 to {depth}"):
        CausalLMEncoder(base, device="cpu", layer=depth + 1)
