"""Packing two sequences that start alike into one row: its layout, positions and mask."""

from __future__ import annotations

import torch

from merging.zoo.shared_prefix import common_prefix, pack_pairs


def test_the_second_sequence_continues_from_where_it_departs():
    ids, positions, allowed, columns = pack_pairs(
        [
            ([7, 8, 9, 10], [7, 8, 11]),  # departs after two tokens
            ([7, 8, 9], [7, 8]),  # the second is the first's start: nothing more to run
            ([5, 6], [9, 5, 6]),  # nothing shared
        ],
        pad=0,
    )
    assert ids.tolist() == [[7, 8, 9, 10, 11], [7, 8, 9, 0, 0], [5, 6, 9, 5, 6]]
    assert positions.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 0, 0], [0, 1, 0, 1, 2]]
    assert columns == [
        ([0, 1, 2, 3], [0, 1, 4]),
        ([0, 1, 2], [0, 1]),
        ([0, 1], [2, 3, 4]),
    ]
    seen = [[torch.nonzero(q).flatten().tolist() for q in row] for row in allowed]
    assert seen[0] == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 4]]
    assert seen[1] == [[0], [0, 1], [0, 1, 2], [3], [4]]  # padding sees itself only
    assert seen[2] == [[0], [0, 1], [2], [2, 3], [2, 3, 4]]


def test_common_prefix_counts_the_shared_start():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([4], [1]) == 0
