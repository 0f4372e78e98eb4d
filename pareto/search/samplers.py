"""Optuna's samplers as search drivers: each worker asks its own sampler for the next trial.

The sampler proposes the unit-cube coordinates ``u0 .. u{dim-1}`` as float parameters in
``[0, 1]``; the family's space maps them to ``x``. Optuna samplers are not batched: every
worker process runs one against the shared storage, which is how Optuna parallelises.
"""

from __future__ import annotations

from collections.abc import Callable

SAMPLER_SETTINGS = ("population",)
"""The one setting of every Optuna sampler driver: random startup trials or population size."""


def _tpe(seed, n_objectives, population):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=population)


def _nsga2(seed, n_objectives, population):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def _gp(seed, n_objectives, population):
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=population)


def _random(seed, n_objectives, population):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


_FACTORIES: dict[str, Callable] = {
    "tpe": _tpe,
    "optuna-nsga2": _nsga2,
    "gp": _gp,
    "random": _random,
}
OPTUNA_SAMPLERS = tuple(_FACTORIES)
"""Driver names served by Optuna (``optuna-nsga2`` is Optuna's NSGA-II, ``nsga2`` pymoo's)."""


def is_optuna_sampler(name: str) -> bool:
    return name in _FACTORIES


def make_sampler(name: str, seed: int | None, n_objectives: int, population: int = 8):
    """The Optuna sampler ``name``; ``population`` is the number of random startup trials
    (TPE, GP) or the population size (NSGA-II). The GP sampler needs torch (Optuna's)."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown Optuna sampler {name!r}; known: {', '.join(OPTUNA_SAMPLERS)}")
    return _FACTORIES[name](seed, n_objectives, int(population))
