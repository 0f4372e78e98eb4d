"""The RiC loss's log-probabilities: rows left-padded into one batch, and own and counterfactual
prompts packed into one pass."""

from __future__ import annotations

import pytest
import torch

from merging.zoo.finetune import load_base, lora_config
from merging.zoo.log_probs import paired_log_probs, response_log_probs


def test_response_log_probs_are_each_rows_own(tiny_base):
    """Rows of different prompt and answer lengths, left-padded into one batch and projected at
    their answer tokens only, score each answer token as the row's own forward pass does."""
    from peft import get_peft_model

    model, tok = load_base(tiny_base, "cpu")
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config(4, ["q_proj", "v_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    rows = [
        ([5, 6, 7, 8], [9, 10, 11]),
        ([12, 13], [14, 15, 16, 17, 18]),
        ([19, 20, 21, 22, 23, 24], [25]),
        ([26, 27], []),
    ]
    off = {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": False}
    lp, valid = response_log_probs(model, rows, tok.pad_token_id, off)
    assert lp.shape == (4, 5)
    assert valid.sum(-1).tolist() == [3, 5, 1, 0]
    assert (lp[~valid] == 0).all()
    for row, (prompt, answer) in enumerate(rows[:3]):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
        alone = logits[len(prompt) - 1 : -1].log_softmax(-1)
        own = alone.gather(-1, torch.tensor(answer)[:, None])[:, 0]
        torch.testing.assert_close(lp[row][valid[row]].detach(), own, rtol=1e-5, atol=1e-5)
    lp.sum().backward()
    grads = [p.grad for name, p in model.named_parameters() if "lora_B" in name]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    ("arch", "attention"), [("llama", "sdpa"), ("llama", "eager"), ("qwen2", "sdpa")]
)
def test_one_paired_pass_equals_the_own_and_counterfactual_passes(arch, attention):
    """The RiC loss's one pass per row (own prompt and response, then the counterfactual's
    departure from that prompt and its response head) gives the log-probabilities and LoRA
    gradients of the two passes it replaces, including rows whose counterfactual changes nothing,
    departs at the first token or covers the whole response."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from merging.zoo.shared_prefix import masks_per_position
    from tests.merging.conftest import tiny_config

    torch.manual_seed(0)
    config = tiny_config(arch)
    config._attn_implementation = attention
    model = get_peft_model(
        AutoModelForCausalLM.from_config(config), lora_config(4, ["q_proj", "v_proj"])
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    assert masks_per_position(model)
    rows = [  # (own prompt, counterfactual prompt, response, head)
        ([5, 6, 7, 8, 9], [5, 6, 7, 40, 41, 9], [10, 11, 12, 13], 2),
        ([14, 15], [14, 15], [16, 17, 18], 2),  # the counterfactual changes no marker
        ([19, 20, 21], [42, 20, 21], [22], 4),  # departs at once; the head covers it all
        ([23, 24, 25, 26, 27, 28, 29], [23, 24, 25, 26, 43], [30, 31, 32, 33, 34, 35], 3),
        ([36, 37], [36, 38], [], 2),  # nothing to score
    ]
    off = {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": False}
    paired = paired_log_probs(model, rows, 0, "cpu", off)
    grads = _lora_grads(model, paired)
    own = response_log_probs(model, [(o, r) for o, _, r, _ in rows], 0, off)
    cf = response_log_probs(model, [(c, r[:h]) for _, c, r, h in rows], 0, off)
    apart = (*own, *cf)
    assert [t.shape for t in paired] == [t.shape for t in apart] == [(5, 6)] * 2 + [(5, 3)] * 2
    assert paired[1].sum(-1).tolist() == [4, 3, 1, 6, 0]
    assert paired[3].sum(-1).tolist() == [2, 2, 1, 3, 0]
    for mine, theirs in zip(paired, apart, strict=True):
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(grads, _lora_grads(model, apart), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def _lora_grads(model, outputs) -> list[torch.Tensor]:
    """The LoRA gradients of a loss that weighs own and counterfactual log-probabilities
    differently (so that a swap of the two would show)."""
    own_lp, _, cf_lp, _ = outputs
    model.zero_grad()
    (own_lp.sum() - 3 * cf_lp.sum()).backward()
    grads = [p.grad.clone() for name, p in model.named_parameters() if "lora_" in name]
    assert any(g.abs().sum() > 0 for g in grads)
    return grads
