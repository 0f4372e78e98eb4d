"""The compact language-model head against TRL's fused head, the model's own logits, and TRL's
DPO trainer run with either head."""

from __future__ import annotations

import pytest
import torch

from merging.zoo.compact_head import add_compact_lm_head

OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1", "log_sum_sq_probs")


def _lora_model(folder, compact: bool):
    """The fixture model with TRL's fused head, in a PEFT LoRA wrapper whose adapter is not zero
    (so that its gradients are), with the compact head on top when ``compact``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    add_fused_lm_head(model, outputs=OUTPUTS)
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    peft = get_peft_model(model, lora)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    if compact:
        assert add_compact_lm_head(peft.get_base_model())
    return peft


def _batch(vocab: int, pairs: bool = False):
    """Right-padded rows whose labels cover only their answers (as TRL's DPO writes them); with
    ``pairs``, the last two rows answer the first two rows' prompts, the first pair with the
    same first answer token."""
    torch.manual_seed(1)
    ids = torch.randint(6, vocab, (4, 12))
    if pairs:
        ids[2:, :5] = ids[:2, :5]
        ids[2, 5] = ids[0, 5]
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[3, 7:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :5] = -100  # the prompts
    labels[2, :8] = -100  # a longer prompt
    return ids, mask, labels


def _run(model, ids, mask, labels, **kwargs):
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True, **kwargs)
    out.log_probs.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out, grads


@pytest.mark.parametrize("pairs", [False, True])  # rows apart, or packed pairs
@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # separate and tied output embeddings
def test_the_compact_head_gives_trls_outputs_and_gradients(model_zoo, arch, pairs):
    base, _ = model_zoo(arch)
    ids, mask, labels = _batch(96, pairs)
    trl_out, trl_grads = _run(_lora_model(base, compact=False), ids, mask, labels)
    compact = _lora_model(base, compact=True)
    widths = []
    compact.get_base_model().model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    out, grads = _run(compact, ids, mask, labels)
    # packed: each pair one row, the second answer from where it departs (12 + 6, 9 + 2)
    assert widths == ([(2, 18)] if pairs else [(4, 12)])
    assert torch.equal(out.label_mask, labels[:, 1:] != -100)
    assert out.log_probs.shape == (4, 11)
    for name in OUTPUTS:
        mine, theirs = getattr(out, name), getattr(trl_out, name)
        if name == "is_top1":
            assert mine.dtype == torch.bool
            assert torch.equal(mine, theirs)
        else:
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, trl_out.loss)
    assert (out.log_probs[~out.label_mask] == 0).all()
    assert grads.keys() == trl_grads.keys()
    assert len(grads) > 0
    for name, g in grads.items():
        torch.testing.assert_close(g, trl_grads[name], rtol=1e-4, atol=1e-6)
    # and the model's own logits, every position projected
    with torch.no_grad():
        logits = compact(input_ids=ids, attention_mask=mask).logits[:, :-1]
    own = logits.log_softmax(-1).gather(-1, labels[:, 1:].clamp(min=0)[..., None])[..., 0]
    torch.testing.assert_close(out.log_probs.detach(), own * out.label_mask, rtol=1e-5, atol=1e-5)


def test_calls_it_does_not_serve_go_to_the_head_it_wraps(model_zoo):
    base, _ = model_zoo("llama")
    ids, mask, labels = _batch(96)
    trl, compact = _lora_model(base, compact=False), _lora_model(base, compact=True)
    shifted = labels[:, 1:]
    kwargs = {"input_ids": ids[:, :-1], "attention_mask": mask[:, :-1], "fused_lm_head": True}
    theirs, mine = trl(**kwargs, shift_labels=shifted), compact(**kwargs, shift_labels=shifted)
    assert torch.equal(mine.log_probs, theirs.log_probs)  # the same code ran
    plain = compact(input_ids=ids, attention_mask=mask)  # no fused head: the usual logits
    assert plain.logits.shape == (4, 12, 96)


def test_a_model_that_scales_its_logits_keeps_trls_head(model_zoo):
    from transformers import AutoModelForCausalLM

    base, _ = model_zoo("llama")
    model = AutoModelForCausalLM.from_pretrained(base)
    model.config.final_logit_softcapping = 30.0
    before = model.forward
    assert add_compact_lm_head(model) is False
    assert model.forward == before


def test_a_batch_with_nothing_scored_still_backpropagates(model_zoo):
    base, _ = model_zoo("llama")
    ids, mask, labels = _batch(96)
    out, grads = _run(_lora_model(base, compact=True), ids, mask, torch.full_like(labels, -100))
    assert out.loss.item() == 0.0
    assert not out.label_mask.any()
    assert grads
    assert all((g == 0).all() for g in grads.values())


def test_dpo_trains_the_same_with_either_head(tmp_path, monkeypatch):
    """The whole TRL DPO trainer on the tiny base, with the compact head (as the builder runs it
    on a CPU, each pair packed) and with TRL's own: the same losses and reward accuracies, the
    same adapter. In float32 (set here, whatever the CPU): its tolerances are float32's, and
    under bfloat16 autocast the two heads' losses differ in the fourth digit."""
    from safetensors.torch import load_file

    from merging.zoo import dpo_expert, shared_prefix
    from merging.zoo.base import build_tiny
    from merging.zoo.steps import tiny_pairs as _tiny_pairs

    monkeypatch.setenv("PARETOMERGE_CPU_BFLOAT16", "0")
    base = build_tiny(tmp_path / "base")
    pairs = _tiny_pairs("helpful", 24)
    installed, packed = [], []
    real = dpo_expert.add_compact_lm_head
    pack = shared_prefix.pack_pairs
    monkeypatch.setattr(
        shared_prefix, "pack_pairs", lambda *a, **k: packed.append(1) or pack(*a, **k)
    )
    runs = {}
    for head in ("compact", "trl"):
        if head == "trl":
            monkeypatch.setattr(dpo_expert, "add_compact_lm_head", lambda model: False)
        else:
            monkeypatch.setattr(
                dpo_expert, "add_compact_lm_head", lambda model: installed.append(real(model))
            )
        metrics = dpo_expert.train_dpo_expert(
            base, pairs, tmp_path / head, steps=6, batch_size=4, learning_rate=5e-3, lora_rank=4
        )
        runs[head] = (metrics, load_file(tmp_path / head / "adapter_model.safetensors"))
    assert installed == [True]
    assert len(packed) == 12  # each step's policy and reference passes
    (mine, mine_w), (theirs, theirs_w) = runs["compact"], runs["trl"]
    assert mine["final_loss"] == pytest.approx(theirs["final_loss"], rel=1e-4)
    assert mine["final_reward_accuracy"] == theirs["final_reward_accuracy"]
    assert mine_w.keys() == theirs_w.keys()
    for name, w in mine_w.items():
        torch.testing.assert_close(w, theirs_w[name], rtol=1e-3, atol=1e-5)
    assert any((w != 0).any() for n, w in mine_w.items() if "lora_B" in n)  # it trained
