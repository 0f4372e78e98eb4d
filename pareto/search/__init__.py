"""Search drivers behind one ask/tell interface, and the loop that runs them against a store.

Batched drivers (pymoo): ``nsga2``, ``nsga3``, ``moead``, ``smsemoa``, ``grid``, ``map``.
Optuna samplers: ``tpe``, ``optuna-nsga2``, ``gp``, ``random``. A new driver is one new module
here: it registers itself, and every module is imported.
"""

from pareto.registry import import_modules
from pareto.search.base import DRIVERS, Driver, make_driver
from pareto.search.loop import check_settings, drive, evaluate_trial, sampler_for, work
from pareto.search.samplers import OPTUNA_SAMPLERS, is_optuna_sampler, make_sampler

import_modules(__name__, __path__)  # every module here registers its drivers


def driver_names() -> tuple[str, ...]:
    """Every driver a study may name."""
    return (*DRIVERS, *OPTUNA_SAMPLERS)


def check_driver(name: str) -> None:
    """Raise ``ValueError`` listing the known drivers when ``name`` is not one."""
    if name not in DRIVERS and not is_optuna_sampler(name):
        raise ValueError(f"unknown driver {name!r}; known: {', '.join(driver_names())}")


__all__ = [
    "DRIVERS",
    "OPTUNA_SAMPLERS",
    "Driver",
    "check_driver",
    "check_settings",
    "drive",
    "driver_names",
    "evaluate_trial",
    "is_optuna_sampler",
    "make_driver",
    "make_sampler",
    "sampler_for",
    "work",
]
