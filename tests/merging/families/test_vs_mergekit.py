"""Every family against mergekit's own pipeline, on tiny Llama, Qwen2 and GPT-2 models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merging.expert_set import ExpertSet
from merging.families import make_family
from merging.resident import ResidentMerger
from tests.merging.conftest import run_mergekit

ARCHS = ["llama", "qwen2", "gpt2"]


@pytest.fixture(scope="module")
def mergers(model_zoo):
    cache = {}

    def get(arch, n=3):
        if (arch, n) not in cache:
            base, experts = model_zoo(arch, n)
            es = ExpertSet.from_paths(base, experts)
            cache[(arch, n)] = (ResidentMerger(es, device="cpu"), base, experts)
        return cache[(arch, n)]

    return get


def assert_matches(merger, reference: dict[str, torch.Tensor], atol=1e-6):
    ours = merger.state_dict()
    compared = 0
    for name, value in ours.items():
        ref = reference.get(name)
        if ref is None:
            continue
        torch.testing.assert_close(value, ref.to(value.dtype), atol=atol, rtol=0)
        compared += 1
    assert compared == len(ours)


def merge_and_compare(mergers, tmp_path, arch, family, x, **settings):
    merger, base, experts = mergers(arch)
    fam = make_family(family, list(experts), **settings)
    recipe = fam.recipe(x)
    fam.apply(recipe, merger)
    config = fam.mergekit_config(
        recipe, str(base), {k: str(v) for k, v in experts.items()}, merger.layers
    )
    assert_matches(merger, run_mergekit(config, tmp_path / "mk"))
    return merger


@pytest.mark.parametrize("arch", ARCHS)
def test_interpolation_equals_mergekit_linear(mergers, tmp_path, arch):
    w = np.random.default_rng(1).dirichlet(np.ones(3))
    merge_and_compare(mergers, tmp_path, arch, "interpolation", w)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("blocks", [1, 3, 4])
def test_layerwise_equals_mergekit_filters(mergers, tmp_path, arch, blocks):
    x = np.random.default_rng(blocks).dirichlet(np.ones(3), size=blocks)
    merge_and_compare(mergers, tmp_path, arch, "layerwise", x, blocks=blocks)


@pytest.mark.parametrize("arch", ARCHS)
def test_task_arithmetic_equals_mergekit(mergers, tmp_path, arch):
    merge_and_compare(mergers, tmp_path, arch, "task_arithmetic", [0.3, 0.9, 0.5], scale=0.8)


@pytest.mark.parametrize("arch", ARCHS)
def test_ties_equals_mergekit(mergers, tmp_path, arch):
    merge_and_compare(mergers, tmp_path, arch, "ties", [0.7, 0.4, 0.6, 0.3], density=(0.1, 0.9))


def test_slerp_equals_mergekit(mergers, model_zoo, tmp_path):
    base, experts = model_zoo("llama", 2)
    merger = ResidentMerger(ExpertSet.from_paths(base, experts), device="cpu")
    fam = make_family("slerp", list(experts))
    recipe = fam.recipe([0.35, 0.65])
    fam.apply(recipe, merger)
    config = fam.mergekit_config(recipe, str(base), {k: str(v) for k, v in experts.items()})
    assert_matches(merger, run_mergekit(config, tmp_path / "mk"), atol=1e-5)


def test_dare_ties_is_reproducible_for_a_seed(mergers):
    merger, _, experts = mergers("llama")
    names = list(experts)
    dare = make_family("dare_ties", names, density=0.6)
    recipe = dare.recipe([0.5, 0.5, 0.5])
    dare.apply(recipe, merger)
    first = {k: v.clone() for k, v in merger.state_dict().items()}
    dare.apply(recipe, merger)
    for k, v in merger.state_dict().items():
        torch.testing.assert_close(v, first[k], atol=0, rtol=0)
    dare.apply(recipe.model_copy(update={"seed": 1}), merger)
    assert any(not torch.equal(v, first[k]) for k, v in merger.state_dict().items())


@pytest.mark.parametrize("arch", ARCHS)
def test_dare_ties_at_full_density_equals_mergekit(mergers, tmp_path, arch):
    # at density 1 nothing is dropped, so mergekit's random masks cannot differ from ours
    merge_and_compare(mergers, tmp_path, arch, "dare_ties", [0.5, 0.2, 0.3], density=1.0)
