"""Choosing one point of a front: the knee, or the best point for a stated preference.

Both work on objectives normalised over the candidate set (0 at the best observed value,
1 at the worst), so that objectives in different units weigh the same.
"""

from __future__ import annotations

import numpy as np

from pareto._arrays import SensesLike, as_vector, to_minimisation
from pareto.dominance import pareto_mask

DEFAULT_RHO = 1e-3


def _normalise_observed(z: np.ndarray) -> np.ndarray:
    """Scale minimised values to [0, 1] per column; constant columns become 0."""
    lo, hi = z.min(axis=0), z.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (z - lo) / span


def knee_point(points: object, senses: SensesLike = "min") -> int:
    """Index of the knee: the Pareto-optimal point that bulges most toward the ideal.

    Definition (Das 1999): normalise the non-dominated points to ``[0, 1]`` per objective,
    take the hyperplane through the extreme points (for each objective, the front point best
    in it), and return the point farthest from that plane on the ideal's side. Where the
    extremes do not define a plane facing the ideal (fewer distinct extremes than objectives,
    or a degenerate front), the plane ``sum(z) = 1`` is used instead, which makes the knee the
    point with the smallest sum of normalised objectives. In two objectives both agree.
    Ties go to the lowest index.

    Returns:
        Row index into ``points``.
    """
    z = to_minimisation(points, senses)
    if z.shape[0] == 0:
        raise ValueError("points is empty: a knee needs at least one point")
    front = np.flatnonzero(pareto_mask(z, "min"))
    if front.size == 1:
        return int(front[0])
    zf = _normalise_observed(z[front])
    m = zf.shape[1]
    normal = np.ones(m)
    extremes = [int(np.lexsort((zf.sum(axis=1), zf[:, j]))[0]) for j in range(m)]
    if len(set(extremes)) == m:
        try:
            plane = np.linalg.solve(zf[extremes], np.ones(m))
        except np.linalg.LinAlgError:
            plane = None
        if plane is not None and np.all(np.isfinite(plane)) and np.all(plane > 0):
            normal = plane
    distance = (1.0 - zf @ normal) / np.linalg.norm(normal)
    return int(front[int(np.argmax(distance))])


def best_for_preference(
    points: object,
    senses: SensesLike,
    weights: object,
    *,
    rho: float = DEFAULT_RHO,
) -> int:
    """Index of the point that best matches a preference, by augmented Chebyshev scalarisation.

    With ``z`` the objectives normalised over ``points`` (0 best, 1 worst), the chosen point
    minimises ``max_i(w_i * z_i) + rho * sum_i(z_i)``. A larger weight makes an objective
    matter more; only the ratios of the weights matter. The augmentation term (``rho > 0``)
    guarantees a Pareto-optimal choice. Ties go to the lowest index.

    Args:
        points: ``(n, m)`` objective values in their own units.
        senses: ``"max"`` or ``"min"`` per objective.
        weights: ``(m,)`` non-negative importance weights, not all zero.
        rho: augmentation coefficient, ``> 0``.
    """
    z = to_minimisation(points, senses)
    if z.shape[0] == 0:
        raise ValueError("points is empty: a choice needs at least one point")
    w = as_vector(weights, z.shape[1], "weights")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative and not all zero; got {w.tolist()}")
    if not np.isfinite(rho) or rho <= 0:
        raise ValueError(f"rho must be a finite number > 0; got {rho}")
    w = w / w.sum()
    zn = _normalise_observed(z)
    score = (w * zn).max(axis=1) + rho * zn.sum(axis=1)
    return int(np.argmin(score))
