"""The dependency rules of the architecture, checked."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pareto

PARETO_DIR = Path(pareto.__file__).parent


@pytest.mark.parametrize(
    "module",
    [
        "pareto",
        "pareto.search",
        "pareto.storage",
        "pareto.run_store",
        "pareto.runs",
        "pareto.report",
        "merging.cli",
        "app.data",
    ],
)
def test_importing_does_not_load_torch(module):
    code = f"import {module}, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pareto_sources_never_import_torch_or_merging():
    forbidden = {"torch", "transformers", "merging", "app", "streamlit", "mergekit"}
    for path in PARETO_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_searching_without_the_gp_sampler_does_not_load_torch(tmp_path):
    code = f"""
import sys
from pareto.search import drive, sampler_for
from pareto.spaces import Simplex, describe_space
from pareto.run_spec import RunSpec
from pareto.run_store import RunStore
from pareto.storage import open_storage, sqlite_url
from pareto.trial_records import Outcome

storage = open_storage(sqlite_url({str(tmp_path / "s.db")!r}), create=True)
for driver in ("nsga2", "map", "tpe", "grid", "moead"):
    spec = RunSpec(study="t", label=driver, family="f", experts=("a", "b"), driver=driver,
                   budget=6, space=describe_space(Simplex(2)), objectives=("x", "y"),
                   senses=("max", "min"))
    run = RunStore.create_or_open(storage, spec, sampler_for(spec, 0))
    drive(run, lambda s, x: Outcome({{"x": x[0], "y": x[0] ** 2}}, {{"x": 0.0, "y": 0.0}}))
    assert run.counts().complete == 6
assert "torch" not in sys.modules, "torch was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True)


APP_DIR = PARETO_DIR.parent / "app"
MERGING_DIR = PARETO_DIR.parent / "merging"


def _imports(folder: Path):
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                yield path, [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                yield path, [node.module or ""]


def test_only_the_app_imports_streamlit_and_nothing_imports_the_app():
    for folder in (PARETO_DIR, MERGING_DIR):
        for path, names in _imports(folder):
            for name in names:
                top = name.split(".")[0]
                assert top not in {"app", "streamlit", "altair"}, f"{path.name} imports {name}"


def test_the_app_imports_pareto_merging_and_its_ui_libraries_only():
    allowed_third_party = {"streamlit", "altair", "pandas", "numpy", "pyarrow", "sqlalchemy"}
    allowed_third_party.add("optuna")  # trial states, as the store reads them
    for path, names in _imports(APP_DIR):
        for name in names:
            top = name.split(".")[0]
            if top in {"app", "pareto", "merging"} or top in sys.stdlib_module_names:
                continue
            assert top in allowed_third_party, f"{path.name} imports {name}"
