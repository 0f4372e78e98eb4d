"""Pareto dominance: which points are non-dominated, and non-dominated sorting.

Point ``a`` dominates ``b`` when ``a`` is no worse in every objective and strictly better in
at least one. Consequences of that definition, which both functions follow:

* **Duplicates** never dominate each other: every copy of a non-dominated point is
  non-dominated, and all copies of any point share one rank.
* **Ties** in some objectives are fine: ``(1, 2)`` dominates ``(1, 3)`` (equal first objective,
  better second), but ``(1, 3)`` and ``(2, 2)`` are mutually non-dominated.

The kernels are moocore's (``is_nondominated(keep_weakly=True)`` and ``pareto_rank``); this
module adds the senses, input checks and the documented duplicate policy.
"""

from __future__ import annotations

import moocore
import numpy as np

from pareto._arrays import SensesLike, to_minimisation


def pareto_mask(points: object, senses: SensesLike = "min") -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points``.

    Args:
        points: ``(n, m)`` objective values, one row per point.
        senses: ``"max"`` or ``"min"`` per objective (or one string for all).

    Returns:
        ``(n,)`` bool array, ``True`` where no other row dominates the row. Duplicated
        non-dominated rows are all ``True``.
    """
    z = to_minimisation(points, senses)
    if z.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(z, keep_weakly=True), dtype=bool)


def nondominated_sort(points: object, senses: SensesLike = "min") -> np.ndarray:
    """Pareto rank of every row: 0 for the non-dominated front, 1 for the next, and so on.

    Rank ``k`` rows are non-dominated once all rows of rank ``< k`` are removed.
    Duplicated rows share their rank.

    Returns:
        ``(n,)`` int array of ranks.
    """
    z = to_minimisation(points, senses)
    if z.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(moocore.pareto_rank(z), dtype=np.int64)
