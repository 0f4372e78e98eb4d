"""O(n^2) reference implementations that the fast kernels are checked against."""

from __future__ import annotations

import numpy as np


def minimise(points, senses):
    pts = np.asarray(points, dtype=float)
    return pts * np.array([-1.0 if s == "max" else 1.0 for s in senses])


def dominates(a, b) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def brute_mask(points, senses):
    z = minimise(points, senses)
    n = len(z)
    return np.array([not any(dominates(z[j], z[i]) for j in range(n) if j != i) for i in range(n)])


def brute_ranks(points, senses):
    z = minimise(points, senses)
    ranks = np.full(len(z), -1)
    remaining = list(range(len(z)))
    rank = 0
    while remaining:
        front = [i for i in remaining if not any(dominates(z[j], z[i]) for j in remaining)]
        for i in front:
            ranks[i] = rank
        remaining = [i for i in remaining if i not in front]
        rank += 1
    return ranks
