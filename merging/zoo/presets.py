"""The zoo presets: how much of everything a zoo gets, each step's recipe version, and the
time estimates the builder prints."""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECTIVES = (("helpfulness", "max"), ("harmlessness", "max"), ("verbosity", "min"))
SLOWDOWN = {"avx2": 3.2, "bfloat16": 0.65, "emulated": 3.0}
"""How much longer a smol build takes than the float32 build on 2 cores with AVX-512 that the
estimates are: ``avx2``, float32 on a CPU without AVX-512 (an AMD EPYC with AVX2 only built
earlier recipes in 57 to 92 min, where an AMD EPYC with AVX-512 builds these in 17 to 18);
``bfloat16``, a bfloat16 build (``PARETOMERGE_CPU_BFLOAT16=1``) where the CPU computes it
natively (12.0 min against 18.4 on an AMD EPYC with AVX-512 BF16); ``emulated``, the same where
it does not, a rough guess (a bfloat16 matrix product took four times as long as float32's on a
Xeon without BF16)."""
RECIPES = {
    "helpfulness_head": 2,
    "harmlessness_head": 2,
    "helpfulness_expert": 2,
    "harmlessness_expert": 2,
    "ric": 6,
}
"""Each step's recipe version (1 where not listed), raised when a change to the code changes what
the step builds: a cached step of another version is built again, and so is every step that
reads it (``depends_on`` in :func:`~merging.zoo.builder.build_zoo`). Heads 2: length-controlled,
the harmlessness head also trained on refusal pairs; ric 2: the RiC model's level words; 3:
whole answers, the helpfulness marker drawn a quarter as often; 4: an answer's harmlessness label
is its policy's mean rank, the verbosity marker drawn twice as often; 5: four times as often,
which float32 builds need to follow it; 6: seed 2, measured to follow both markers in float32,
which the zoo now trains in on every CPU; experts 2: trained on the pairs their head agrees with
by the widest margins, ``Preset.widest_margin``."""
REFUSAL_PAIRS = 200
"""Refusal pairs of each kind the harmlessness head trains on (``refusal_pairs``). With none it
preferred a refusal to 92% of the helpful answers in its checks; with 300 it preferred harmful
answers to refusals about half the time (``experiments/length_controlled_heads.py``)."""


@dataclass(frozen=True)
class Preset:
    """How much of everything a zoo gets; the estimates are seconds of a float32 build on 2 CPU
    cores with AVX-512 (:data:`SLOWDOWN` scales them for other machines and dtypes)."""

    name: str
    dpo_steps: int
    dpo_batch: int
    dpo_learning_rate: float
    concise_learning_rate: float
    dpo_beta: float
    max_length: int
    lora_rank: int
    widest_margin: tuple[str, ...]
    """The experts that train on the pairs their head agrees with by the widest margins
    (:func:`merging.zoo.datasets.widest_margin_pairs`); the others on random agreeing pairs."""
    ric_prompts: int
    """Training prompts each expert answers for the RiC model."""
    ric_answer_tokens: int
    """New tokens each answer may take (scored whole: its heads' scores and length)."""
    ric_train_tokens: int
    """The first tokens of each answer that the RiC model trains on."""
    ric_steps: int
    ric_learning_rate: float
    ric_batch: int
    ric_contrast: float
    """Weight of the contrastive term (:func:`merging.zoo.ric_training.train_ric_lora`)."""
    ric_contrast_tokens: int | tuple[int, ...]
    """First answer tokens the contrastive term compares: one count, or one per reward in
    ``REWARDS`` order (the marker a row's counterfactual changed)."""
    ric_one_marker: float
    """Share of the RiC examples that show one marker only (``one_marker_rows``)."""
    ric_marker_weights: tuple[float, ...] | None
    """How often each reward's marker is the one shown alone or varied, in ``REWARDS`` order
    (``None``: equally often)."""
    ric_policy_weight: tuple[float, float]
    """How far each head's score (helpfulness, harmlessness) moves from the answer's own rank
    towards its policy's mean rank on prompts of the same data set
    (:func:`merging.zoo.ric_data.policy_blend`): 0 keeps the answer's own, 1 is its policy's."""
    ric_seed: int = 0
    """Seed of the RiC examples' draw and of the RiC training (the adapter's initialisation and
    the batch order): in 90 steps on 2 cores, which markers the model learns depends on it, so
    the smol preset's is one measured to follow both on held-out prompts it is not reported on."""
    estimates: dict[str, float] = field(default_factory=dict)


PRESETS = {
    "smol": Preset(
        "smol",
        dpo_steps=14,
        dpo_batch=8,
        dpo_learning_rate=1e-3,
        concise_learning_rate=3e-4,
        dpo_beta=0.1,
        max_length=192,
        lora_rank=16,
        # a length-controlled head is near a coin toss on most pairs: on random ones it agrees
        # with, the helpfulness expert came out less helpful than the base (docs/zoo-builds.md)
        widest_margin=("helpfulness", "harmlessness"),
        ric_prompts=160,
        ric_answer_tokens=96,
        ric_train_tokens=96,  # whole answers: a 64-token window never shows where "long" ends
        ric_steps=90,
        ric_learning_rate=1e-3,
        ric_batch=8,
        ric_contrast=2.0,
        ric_contrast_tokens=8,
        ric_one_marker=0.5,
        ric_marker_weights=(0.25, 1.0, 4.0),  # verbosity's the most: the others name policies
        # one answer's harmlessness score is mostly the head's noise: its policy's mean is not
        ric_policy_weight=(0.0, 1.0),
        ric_seed=2,  # seeds 0 and 1 did not follow harmlessness (docs/ric-investigation.md)
        estimates={
            # the float32 build of RiC recipe 6 from an empty cache on a 2-core AMD EPYC with
            # AVX-512 (17.2 min; docs/zoo-builds.md)
            "base": 20,
            "helpfulness_head": 45,
            "harmlessness_head": 50,
            "helpfulness_expert": 95,
            "harmlessness_expert": 105,
            "concise_expert": 90,
            "ric": 630,
        },
    ),
    "tiny": Preset(
        "tiny",
        dpo_steps=6,
        dpo_batch=4,
        dpo_learning_rate=5e-3,
        concise_learning_rate=5e-3,
        dpo_beta=0.1,
        max_length=64,
        lora_rank=4,
        widest_margin=(),
        ric_prompts=24,
        ric_answer_tokens=16,
        ric_train_tokens=16,
        ric_steps=6,
        ric_learning_rate=5e-3,
        ric_batch=4,
        ric_contrast=2.0,
        ric_contrast_tokens=4,
        ric_one_marker=0.5,
        ric_marker_weights=None,
        ric_policy_weight=(0.0, 0.0),
        estimates={
            "base": 2,
            "helpfulness_head": 2,
            "harmlessness_head": 2,
            "helpfulness_expert": 3,
            "harmlessness_expert": 3,
            "concise_expert": 3,
            "ric": 3,
        },
    ),
}


def ric_training_settings(preset: Preset) -> dict:
    """The preset's keyword arguments for :func:`merging.zoo.ric_training.train_ric_lora`: how the
    builder trains the RiC model (``experiments/ric/ric_retrain.py`` starts from them too)."""
    return {
        "steps": preset.ric_steps,
        "batch_size": preset.ric_batch,
        "learning_rate": preset.ric_learning_rate,
        "contrast": preset.ric_contrast,
        "contrast_tokens": preset.ric_contrast_tokens,
        "max_response_tokens": preset.ric_train_tokens,
        "lora_rank": preset.lora_rank,
        "seed": preset.ric_seed,
    }


def ric_data_settings(preset: Preset) -> dict:
    """The preset's keyword arguments for :func:`merging.zoo.ric_data.build_ric_examples`, as
    JSON reads them back (lists: the RiC step records them in the zoo's manifest)."""
    weights = preset.ric_marker_weights
    return {
        "one_marker": preset.ric_one_marker,
        "marker_weights": None if weights is None else list(weights),
        "policy_weight": list(preset.ric_policy_weight),
        "seed": preset.ric_seed,
    }
