"""AMA: the gradient of the loss in the block ratios is the finite-difference one, and learning
with the preference on one objective lowers that objective's loss on held-out pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from merging.ama import RatioLearner
from merging.data import PreferencePair, Prompt
from merging.expert_set import ExpertSet
from merging.generation import GenerationSettings, generate
from merging.resident import ResidentMerger
from merging.stand_ins import StandIn

BLOCKS = 2


def prompts(start: int, n: int) -> list[Prompt]:
    return [
        Prompt(
            (
                {
                    "role": "user",
                    "content": " ".join(f"w{7 + (i * j) % 90}" for j in range(3 + i % 5)),
                },
            )
        )
        for i in range(start, start + n)
    ]


def pairs_towards(first: str, second: str, texts: dict, ps: list[Prompt]) -> tuple:
    """Pairs preferring expert ``first``'s own greedy answer to expert ``second``'s."""
    return tuple(
        PreferencePair(p, a, b)
        for p, a, b in zip(ps, texts[first], texts[second], strict=True)
        if a and b and a != b
    )


def make_setting(model_zoo, arch: str):
    """A tiny model with two experts, and pairs (train and held-out prompts) preferring each
    expert's own greedy answers to the other's: a known truth about which way to move."""
    base, experts = model_zoo(arch, 2)
    tok = AutoTokenizer.from_pretrained(base)
    settings = GenerationSettings(max_new_tokens=8)
    train, held = prompts(0, 24), prompts(100, 16)
    texts = {}
    for split, ps in (("train", train), ("held", held)):
        for name, path in experts.items():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
            texts[(split, name)] = generate(model, tok, ps, settings)
    by = lambda split: {n: texts[(split, n)] for n in experts}  # noqa: E731
    stand_ins = {
        split: [
            StandIn("zero", "e0 over e1", pairs_towards("e0", "e1", by(split), ps), False),
            StandIn("one", "e1 over e0", pairs_towards("e1", "e0", by(split), ps), False),
        ]
        for split, ps in (("train", train), ("held", held))
    }
    return base, experts, tok, stand_ins


@pytest.fixture(scope="module")
def setting(model_zoo):
    return make_setting(model_zoo, "llama")


# Llama's RMSNorm computes in float32 whatever the input, so its finite differences need a
# wider step (truncation error eps^2, rounding 1e-7 / eps); GPT-2 runs in float64 throughout.
@pytest.mark.parametrize(("arch", "eps", "rtol"), [("gpt2", 1e-6, 1e-6), ("llama", 1e-3, 2e-3)])
def test_the_gradient_in_the_ratios_is_the_finite_difference_one(model_zoo, arch, eps, rtol):
    base, experts, tok, stand_ins = make_setting(model_zoo, arch)
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu", dtype=torch.float64)
    text = StandIn("tax", "reference", stand_ins["train"][0].pairs, text_only=True)
    learner = RatioLearner(merger, BLOCKS, tok, [*stand_ins["train"], text])
    preference, rows = [0.5, 0.2, 0.3], {0: [0, 1, 2], 1: [1, 3], 2: [0, 2]}

    def f(logits):
        return learner.total_loss(logits, preference, rows, beta=0.5, penalty=0.3)[0]

    logits = torch.tensor([[0.3, -0.2], [-0.5, 0.4]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(logits), logits)
    numeric = torch.zeros_like(grad)
    with torch.no_grad():
        for idx in np.ndindex(*logits.shape):
            up, down = logits.detach().clone(), logits.detach().clone()
            up[idx] += eps
            down[idx] -= eps
            numeric[idx] = (f(up) - f(down)) / (2 * eps)
    assert grad.abs().max() > 1e-4, "a zero gradient would match anything"
    torch.testing.assert_close(grad, numeric, rtol=rtol, atol=1e-9)


@pytest.mark.parametrize("towards", [0, 1])
def test_all_preference_on_one_objective_lowers_its_held_out_loss(setting, towards):
    base, experts, tok, stand_ins = setting
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    learner = RatioLearner(merger, BLOCKS, tok, stand_ins["train"])
    held = RatioLearner(merger, BLOCKS, tok, stand_ins["held"])
    preference = [1.0 if j == towards else 0.0 for j in range(2)]
    ratios, curve = learner.learn(
        preference, steps=12, learning_rate=0.3, penalty=0.0, beta=0.5, pairs_per_step=6
    )
    assert ratios.shape == (BLOCKS, 2)
    np.testing.assert_allclose(ratios.sum(axis=1), 1.0)
    even = np.full((BLOCKS, 2), 0.5)
    before, after = held.losses(even, beta=0.5)[towards], held.losses(ratios, beta=0.5)[towards]
    assert after < before - 0.01, (before, after)
    assert len(curve) == 12
    assert set(curve[0]) == {"step", "loss", ("zero", "one")[towards]}


def test_held_out_losses_a_few_rows_at_a_time_equal_the_loss_of_all_rows_at_once(setting):
    """``losses`` chunks its rows (memory); both losses are row means, so the chunks' mean
    weighted by their sizes is the loss of every row in one batch, pairs and text alike."""
    base, experts, tok, stand_ins = setting
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    text = StandIn("tax", "reference", stand_ins["held"][0].pairs, text_only=True)
    held = RatioLearner(merger, BLOCKS, tok, [*stand_ins["held"], text])
    ratios = np.array([[0.7, 0.3], [0.2, 0.8]])
    chunked = held.losses(ratios, beta=0.5)
    assert all(len(r) > 4 for r in held.rows)  # more rows than one chunk holds
    with torch.no_grad():
        params = held.merged_params(torch.as_tensor(ratios, dtype=torch.float32))
        whole = [float(held.loss(j, params, range(len(r)), 0.5)) for j, r in enumerate(held.rows)]
    np.testing.assert_allclose(chunked, whole, rtol=1e-5)
    assert held.losses(ratios, beta=0.5, rows=3) != chunked  # rows= still takes the first rows


def test_the_penalty_keeps_the_ratios_near_their_start(setting):
    base, experts, tok, stand_ins = setting
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    learner = RatioLearner(merger, BLOCKS, tok, stand_ins["train"])
    settings = {"steps": 8, "learning_rate": 0.3, "beta": 0.5, "pairs_per_step": 6}
    free, _ = learner.learn([1.0, 0.0], penalty=0.0, **settings)
    held, _ = learner.learn([1.0, 0.0], penalty=50.0, **settings)
    assert np.abs(held - 0.5).max() < np.abs(free - 0.5).max()


def test_a_learner_refuses_what_it_cannot_learn(setting):
    base, experts, tok, stand_ins = setting
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    learner = RatioLearner(merger, BLOCKS, tok, stand_ins["train"])
    with pytest.raises(ValueError, match="2 non-negative weights"):
        learner.learn([1.0], steps=1, learning_rate=0.1, penalty=0, beta=0.1, pairs_per_step=1)

    class Streamed:
        pass

    with pytest.raises(ValueError, match="resident"):
        RatioLearner(Streamed(), BLOCKS, tok, stand_ins["train"])
