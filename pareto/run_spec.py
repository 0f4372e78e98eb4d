"""What one run of a study is: :class:`RunSpec`, kept with the run's Optuna study.

A paretomerge study holds one Optuna study per *run* (a family searched by one driver), named
``STUDY/LABEL``. The run's settings (family, driver, budget, space, objectives) are the Optuna
study's user attribute :data:`ATTRIBUTE`, so that a worker on another machine, the app and
Optuna's own tools read them from the storage alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from pareto.spaces import SearchSpace, space_from_description

ATTRIBUTE = "paretomerge"
"""The Optuna study's user attribute that holds its :class:`RunSpec`."""
SEPARATOR = "/"


class RunSpec(BaseModel):
    """What one run of a study is: its family, driver and budget, its space and objectives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str
    label: str
    family: str
    family_settings: dict[str, Any] = {}
    experts: tuple[str, ...]
    driver: str
    driver_settings: dict[str, Any] = {}
    budget: int
    design_budget: int | None = None
    """The budget when the run was created: drivers derive their defaults (population sizes,
    MAP's first batch) from it, so that raising ``budget`` later extends the same search."""
    seed: int = 0
    space: dict[str, Any]
    objectives: tuple[str, ...]
    senses: tuple[str, ...]
    evaluation: dict[str, Any] = {}
    """What every trial is evaluated on (the prompts' count and digest, the generation
    settings): a run resumed on other prompts would mix incomparable trials. Empty in runs
    stored before it was recorded, and from callers that load no prompts: not checked."""
    details: dict[str, Any] = {}
    """Anything else worth keeping with the run (the study file's settings, ...)."""

    @property
    def optuna_name(self) -> str:
        return f"{self.study}{SEPARATOR}{self.label}"

    def search_space(self) -> SearchSpace:
        return space_from_description(self.space)

    @property
    def driver_budget(self) -> int:
        return self.design_budget or self.budget

    def identity(self) -> dict:
        """The fields that must match when a run is opened again (budget may grow)."""
        return self.model_dump(exclude={"budget", "design_budget", "details"})
