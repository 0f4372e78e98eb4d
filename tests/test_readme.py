"""The README's set-up commands and CI stay in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def block(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {name} -->\s*```bash\n(.*?)\n```\s*<!-- /{name} -->", readme, re.S)
    assert match, f"README.md has no <!-- {name} --> block"
    return match.group(1).strip()


@pytest.mark.skipif(not (ROOT / ".ci" / "run").exists(), reason="not a source checkout")
def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in script  # .ci/run extracts the block, never a copy
    assert block("test-command")


@pytest.mark.skipif(not (ROOT / "README.md").exists(), reason="not a source checkout")
def test_main_job_command_is_one_line():
    assert "\n" not in block("main-command")
