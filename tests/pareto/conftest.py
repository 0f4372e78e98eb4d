from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def frozen():
    """``frozen(array)`` returns a read-only copy and checks at teardown that it is unchanged.

    Writing into a read-only array raises, so in-place changes fail loudly; the teardown
    comparison also catches changes made through any other route.
    """
    kept: list[tuple[np.ndarray, np.ndarray]] = []

    def freeze(values):
        arr = np.array(values, dtype=float)
        arr.setflags(write=False)
        kept.append((arr, arr.copy()))
        return arr

    yield freeze
    for arr, original in kept:
        np.testing.assert_array_equal(arr, original)
