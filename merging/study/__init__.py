"""Studies: a YAML file, its search runs recorded in an Optuna storage, and the runner."""

from merging.study.spec import FamilySpec, PromptSpec, SearchSettings, StudySpec, load_study_spec

__all__ = ["FamilySpec", "PromptSpec", "SearchSettings", "StudySpec", "load_study_spec"]
