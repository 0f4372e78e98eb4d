"""The zoo tests' tiny base: a 2-layer random Llama with a word-level tokenizer."""

from __future__ import annotations

import pytest

from merging.zoo.base import build_tiny


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny_base"))
