"""A study file: YAML read into frozen pydantic models.

```yaml
name: tiny                      # letters, digits, '-', '_' and '.'
zoo: tiny                       # or: base + experts (+ ric for rewards_in_context)
families:
  - family: interpolation
  - family: layerwise
    settings: {blocks: 2}
  - family: rewards_in_context
    driver: grid                # overrides search.driver for this family
objectives:                     # optional with a zoo (the zoo's heads); NAME=HEAD:SENSE or
  - verbosity=length_tokens:min #   {name, head, sense}
prompts: {hh_rlhf: [helpful-base, harmless-base], split: evaluation, n: 8}
generation: {max_new_tokens: 16}
search: {driver: nsga2, budget: 12, seed: 0, settings: {population: 4}}
racing: {batch: 8, epsilon: 0.05}  # optional: stop candidates a trial surely dominates
storage: null                   # default: sqlite:///OUT/study.db
```

Errors name the field, the value given and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from merging.evaluate import Objective, parse_objective
from merging.generation import GenerationSettings
from merging.hh_rlhf import SUBSETS
from pareto.racing import RacingSettings

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SearchSettings(_Frozen):
    """How a family is searched: the driver, its settings, the evaluation budget, the seed."""

    driver: str = "nsga2"
    budget: int = Field(24, ge=1, le=100_000)
    seed: int = 0
    settings: dict[str, Any] = {}

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        from pareto.search import check_driver

        check_driver(v)
        return v


class FamilySpec(_Frozen):
    """One family to search; ``driver``, ``budget``, ``seed`` and ``driver_settings``
    override the study's ``search`` for it; ``label`` names the run (default: the family)."""

    family: str
    label: str | None = None
    settings: dict[str, Any] = {}
    driver: str | None = None
    budget: int | None = Field(None, ge=1, le=100_000)
    seed: int | None = None
    driver_settings: dict[str, Any] | None = None

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        from merging.families import get_family

        get_family(v)
        return v

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, v: str | None) -> str | None:
        from pareto.search import check_driver

        if v is not None:
            check_driver(v)
        return v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        if v is not None and not NAME.match(v):
            raise ValueError(f"label {v!r} may hold letters, digits, '-', '_' and '.' only")
        return v

    @property
    def run_label(self) -> str:
        return self.label or self.family

    def search(self, default: SearchSettings) -> SearchSettings:
        return SearchSettings(
            driver=self.driver or default.driver,
            budget=self.budget or default.budget,
            seed=default.seed if self.seed is None else self.seed,
            settings=default.settings if self.driver_settings is None else self.driver_settings,
        )


class PromptSpec(_Frozen):
    """Evaluation prompts: HH-RLHF subsets (split by prompt hash) or a prompts file."""

    hh_rlhf: tuple[Literal[SUBSETS], ...] | None = ("helpful-base", "harmless-base")  # type: ignore[valid-type]
    path: str | None = None
    """A prompts file (JSON lines or text, see ``merging.data.read_prompts``) instead."""
    data: str | None = None
    """The HH-RLHF folder (relative paths are relative to the study file); default: the
    command's ``--data``, then ``$PARETOMERGE_DATA``, then the Hugging Face hub."""
    split: Literal["train", "validation", "evaluation"] = "evaluation"
    n: int = Field(16, ge=1, le=100_000)
    last_turn: bool = True
    """Keep only each conversation's last user message (shorter prompts, faster)."""
    max_chars: int = Field(300, ge=1)
    """Skip prompts whose last user message is longer."""


class StudySpec(_Frozen):
    """Everything a study needs, read from its YAML file."""

    name: str
    zoo: Literal["smol", "tiny"] | None = None
    zoo_folder: str | None = None
    base: str | None = None
    experts: dict[str, str] = {}
    ric: str | None = None
    families: tuple[FamilySpec, ...]
    objectives: tuple[Objective, ...] = ()
    prompts: PromptSpec = PromptSpec()
    generation: GenerationSettings = GenerationSettings()
    search: SearchSettings = SearchSettings()
    racing: RacingSettings | None = None
    """Racing evaluation (``pareto.racing``): score candidates batch by batch and stop those a
    trial already dominates; absent, every candidate is scored on every prompt."""
    storage: str | None = None
    device: str = "auto"
    source: str | None = None
    """The study file this was read from (set by :func:`load_study_spec`)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"name {v!r} may hold letters, digits, '-', '_' and '.' only")
        return v

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v):
        return tuple(parse_objective(o) if isinstance(o, str) else o for o in v or ())

    @field_validator("families", mode="before")
    @classmethod
    def _families(cls, v):
        if isinstance(v, list | tuple):
            return tuple({"family": f} if isinstance(f, str) else f for f in v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        if not self.families:
            raise ValueError("families: list at least one family")
        labels = [f.run_label for f in self.families]
        if len(set(labels)) != len(labels):
            raise ValueError(
                f"families: labels {labels} repeat; give each repeated family a 'label'"
            )
        if self.zoo is None and (self.base is None or not self.experts):
            raise ValueError("give 'zoo: smol|tiny', or 'base' and 'experts' (name: path)")
        if self.zoo is not None and (self.base or self.experts):
            raise ValueError("give either 'zoo' or 'base' and 'experts', not both")
        if self.zoo is None and not self.objectives:
            raise ValueError("objectives: list them (NAME=HEAD:SENSE) when no zoo is given")
        if self.objectives and len(self.objectives) < 2:
            raise ValueError("objectives: a multi-objective study needs at least two")
        if self.prompts.path is None and not self.prompts.hh_rlhf:
            raise ValueError("prompts: give 'hh_rlhf' subsets or a 'path'")
        return self

    def resolve(self, path: str | None) -> str | None:
        """A path from the study file, relative to the file's folder."""
        if path is None:
            return None
        p = Path(path).expanduser()
        if not p.is_absolute() and self.source:
            p = Path(self.source).parent / p
        return str(p)


def _describe(error: ValidationError, source: str) -> str:
    """One line per problem: the field, the value given and what is wrong."""
    lines = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] in ("missing",):
            lines.append(f"{where}: required")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{where}: not a field here")
        else:
            lines.append(f"{where} = {e.get('input')!r}: {message}")
    return f"{source}: " + "; ".join(lines)


def parse_study_spec(data: dict, source: str = "study") -> StudySpec:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a study file is a YAML mapping; got {type(data).__name__}")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as err:
        raise ValueError(_describe(err, source)) from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one clause: what is wrong, and where."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def load_study_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file (``ValueError`` naming the field on bad content)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such study file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: not valid YAML ({_yaml_problem(err)})") from None
    if isinstance(data, dict):
        data = {**data, "source": str(p.resolve())}
    return parse_study_spec(data, str(p))
