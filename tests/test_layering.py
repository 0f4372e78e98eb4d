"""The dependency rules of the architecture, checked."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pareto

PARETO_DIR = Path(pareto.__file__).parent


@pytest.mark.parametrize("module", ["pareto", "merging.cli"])
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
