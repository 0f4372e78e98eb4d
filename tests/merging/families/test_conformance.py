"""Every registered family, built the way a study builds it, keeps the Family contract.

Parametrised over the registry: a family added in ``merging/families/`` is tested here without
a line of this file changing. The tiny zoo gives real checkpoints (LoRA experts, a RiC model).
"""

from __future__ import annotations

import math

import pytest
import torch

from merging.families import FAMILIES, describe_rows, family_for_checkpoints, get_family, x_rows
from merging.recipe import MergeRecipe


@pytest.fixture(scope="module")
def checkpoints(tiny_zoo_cache):
    _, manifest = tiny_zoo_cache
    return manifest


TINY_LAYERS = 2


def build(name: str, manifest):
    """The family with its default settings, except a block count the tiny model can hold."""
    cls = get_family(name)
    n = min(len(manifest.experts), cls.max_experts or len(manifest.experts))
    experts = dict(list(manifest.experts.items())[:n])
    settings = {"blocks": TINY_LAYERS} if "blocks" in cls.settings() else {}
    return family_for_checkpoints(name, experts, manifest.ric, settings), experts


@pytest.fixture(scope="module")
def mergers(checkpoints):
    """One resident merger per checkpoint set, shared by the families that merge it."""
    from merging.expert_set import ExpertSet
    from merging.resident import ResidentMerger

    cache = {}

    def get(family, experts):
        key = (family.checkpoints, len(experts))
        if key not in cache:
            paths = family.checkpoint_paths(experts, checkpoints.ric)
            cache[key] = ResidentMerger(ExpertSet.from_paths(checkpoints.base, paths), device="cpu")
        return cache[key]

    return get


def weights_of(merger) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in merger.state_dict().items()}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_recipes_are_plain_data_and_read_by_expert_name(name, checkpoints):
    family, _ = build(name, checkpoints)
    xs = family.space.sample(3, seed=0)
    for x in xs:
        recipe = family.recipe(x)
        assert recipe.family == name
        assert recipe.experts == family.experts
        assert MergeRecipe.model_validate_json(recipe.model_dump_json()) == recipe
        assert family.recipe(x) == recipe  # the same x, the same recipe
        rows = x_rows(recipe.model_dump(mode="json"), x.tolist(), family.experts)
        assert {n for _, n, _ in rows} >= set(family.experts)
        assert all(math.isfinite(v) for _, _, v in rows)
        assert describe_rows(rows).count(";") == len({g for g, _, _ in rows}) - 1
    assert isinstance(family.x_caption, str)
    assert family.x_caption


MERGED = [n for n in FAMILIES if get_family(n).merged_checkpoint]


@pytest.mark.parametrize("name", MERGED)
def test_apply_is_deterministic_and_moves_the_weights(name, checkpoints, mergers):
    family, experts = build(name, checkpoints)
    merger = mergers(family, experts)
    first, second = (family.recipe(x) for x in family.space.sample(2, seed=1))
    base = weights_of(merger)
    family.apply(first, merger)
    once = weights_of(merger)
    family.apply(second, merger)
    family.apply(first, merger)
    again = weights_of(merger)
    for k in once:
        torch.testing.assert_close(again[k], once[k], rtol=0, atol=0)
    assert any(not torch.equal(once[k], base[k]) for k in once), "apply changed no weight"


def policy_logits(family, recipe, merger) -> torch.Tensor:
    """The next-token log-probabilities of ``recipe``'s policy on a fixed input."""
    family.apply(recipe, merger)
    ids = torch.arange(4, 12)[None]
    with torch.no_grad():
        logits = family.policy(recipe, merger)(input_ids=ids).logits
    return torch.log_softmax(logits.float(), -1)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_policy_is_deterministic_and_not_the_base(name, checkpoints, mergers):
    from merging.policy import use_base

    family, experts = build(name, checkpoints)
    merger = mergers(family, experts)
    first, second = (family.recipe(x) for x in family.space.sample(2, seed=1))
    use_base(merger)
    with torch.no_grad():
        base = torch.log_softmax(merger.model(input_ids=torch.arange(4, 12)[None]).logits, -1)
    once = policy_logits(family, first, merger)
    policy_logits(family, second, merger)
    again = policy_logits(family, first, merger)
    torch.testing.assert_close(again, once, rtol=0, atol=0)
    assert not torch.allclose(once, base, atol=1e-6), "the policy is the base"


@pytest.mark.parametrize("name", [n for n in FAMILIES if n not in MERGED])
def test_a_family_without_merged_weights_says_so_instead_of_a_mergekit_configuration(
    name, checkpoints
):
    family, experts = build(name, checkpoints)
    recipe = family.recipe(family.space.sample(1, seed=2)[0])
    paths = family.checkpoint_paths(experts, checkpoints.ric)
    with pytest.raises(ValueError, match="no merged checkpoint"):
        family.mergekit_config(recipe, checkpoints.base, paths)
    assert family.export_notes(recipe)
    assert family.placement_for("auto") == family.placement or family.placement is None


@pytest.mark.parametrize("name", MERGED)
def test_mergekit_configuration_and_export_notes(name, checkpoints):
    from merging.architecture import layer_map
    from merging.expert_set import ExpertSet

    family, experts = build(name, checkpoints)
    recipe = family.recipe(family.space.sample(1, seed=2)[0])
    paths = family.checkpoint_paths(experts, checkpoints.ric)
    layers = None
    if family.per_block:
        layers = layer_map(ExpertSet.from_paths(checkpoints.base, paths).config)
    config = family.mergekit_config(recipe, checkpoints.base, paths, layers=layers)
    assert config["merge_method"]
    models = {m["model"] for m in config["models"]}
    assert models <= set(paths.values()) | {checkpoints.base}
    assert isinstance(family.mergekit_reproduces(recipe), bool)
    notes = family.export_notes(recipe)
    assert all(isinstance(line, str) and "\n" not in line for line in notes)
    suffix = family.chat_suffix(recipe)
    transform = family.prompt_transform(recipe)
    assert (suffix is None) == (transform is None)


def test_unknown_settings_are_refused_with_the_ones_that_exist(checkpoints):
    with pytest.raises(ValueError, match=r"family 'layerwise' has no setting\(s\) \['block'\]"):
        family_for_checkpoints("layerwise", checkpoints.experts, None, {"block": 2})
    with pytest.raises(ValueError, match="needs a RiC model"):
        family_for_checkpoints("rewards_in_context", checkpoints.experts, None, {})


def test_x_rows_without_a_recipe_are_the_raw_coordinates():
    assert x_rows(None, [[0.25, 0.75], [1.0, 0.0]], ("a", "b")) == [
        ("x", "x0", 0.25),
        ("x", "x1", 0.75),
        ("x", "x2", 1.0),
        ("x", "x3", 0.0),
    ]
