"""IGD+: distance from a reference front to a set, Pareto-compliant (Ishibuchi et al. 2015).

Useful to say how close a cheap search came to an exhaustive one (for example a fine grid).
"""

from __future__ import annotations

import moocore

from pareto._arrays import SensesLike, as_points, parse_senses, to_minimisation
from pareto.reference import normalise


def igd_plus(
    points: object,
    reference_front: object,
    senses: SensesLike = "min",
    *,
    bounds: object = None,
) -> float:
    """IGD+ of ``points`` with respect to ``reference_front`` (lower is better, 0 at best).

    Args:
        points: ``(n, m)`` objective values of the approximation, in their own units.
        reference_front: ``(k, m)`` objective values of the reference front.
        senses: ``"max"`` or ``"min"`` per objective.
        bounds: optional ``(low, high)``; normalises both sets to ``[0, 1]`` first.
    """
    a = as_points(points)
    r = as_points(reference_front, "reference_front")
    if a.shape[1] != r.shape[1]:
        raise ValueError(
            f"points have {a.shape[1]} objectives but reference_front has {r.shape[1]}"
        )
    a, r = to_minimisation(a, senses), to_minimisation(r, senses, "reference_front")
    if a.shape[0] == 0 or r.shape[0] == 0:
        raise ValueError("IGD+ needs at least one point in points and in reference_front")
    if bounds is not None:
        parsed = parse_senses(senses, a.shape[1])
        a = normalise(points, parsed, bounds)
        r = normalise(reference_front, parsed, bounds)
    return float(moocore.igd_plus(a, ref=r))
