"""Preference pairs as a head sees them: pairwise accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from merging.heads.pairs import pairwise_accuracy


def test_pairwise_accuracy_counts_ties_as_half():
    assert pairwise_accuracy(np.array([1.0, -1.0, 0.0, 2.0])) == pytest.approx(0.625)
