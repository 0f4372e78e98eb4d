"""Hypervolume and per-point hypervolume contributions, computed by moocore.

The hypervolume of a set is the volume of objective space that the set dominates, bounded by
a reference point that must be worse than the points of interest. Points that are not
strictly better than the reference in every objective add nothing. The reference-point
policy and the optional normalisation are described in :mod:`pareto.reference`.
"""

from __future__ import annotations

import moocore
import numpy as np

from pareto._arrays import SensesLike, as_vector, parse_senses, sign_vector, to_minimisation
from pareto.reference import DEFAULT_MARGIN, normalise, reference_point


def minimisation_problem(
    points: object,
    ref: object,
    senses: SensesLike,
    *,
    bounds: object,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Points and reference point as moocore wants them: minimised, optionally normalised.

    ``ref`` (in the objectives' own units) defaults to :func:`pareto.reference_point`; with
    ``bounds`` both are normalised and the default reference is ``1 + margin``.
    """
    z = to_minimisation(points, senses)
    m = z.shape[1]
    parsed = parse_senses(senses, m)
    if bounds is not None:
        zn = normalise(points, parsed, bounds)
        if ref is None:
            if not np.isfinite(margin) or margin < 0:
                raise ValueError(f"margin must be a finite number >= 0; got {margin}")
            return zn, np.full(m, 1.0 + margin)
        ref_vec = as_vector(ref, m, "ref")
        return zn, normalise(ref_vec[None, :], parsed, bounds)[0]
    if ref is None:
        ref_vec = reference_point(points, parsed, margin=margin)
    else:
        ref_vec = as_vector(ref, m, "ref")
    return z, ref_vec * sign_vector(parsed)


def hypervolume(
    points: object,
    ref: object = None,
    senses: SensesLike = "min",
    *,
    bounds: object = None,
    margin: float = DEFAULT_MARGIN,
) -> float:
    """Hypervolume dominated by ``points`` up to the reference point ``ref``.

    Args:
        points: ``(n, m)`` objective values in their own units.
        ref: ``(m,)`` reference point in the objectives' own units; None applies the policy
            of :mod:`pareto.reference` (observed nadir plus ``margin`` of the range).
        senses: ``"max"`` or ``"min"`` per objective (or one string for all).
        bounds: optional ``(low, high)`` per objective; normalises to ``[0, 1]`` first so
            that values are comparable across studies that share the bounds.
        margin: see :func:`pareto.reference_point`.

    Returns:
        The hypervolume (in normalised units when ``bounds`` is given); 0.0 for an empty set.
    """
    z, r = minimisation_problem(points, ref, senses, bounds=bounds, margin=margin)
    if z.shape[0] == 0:
        return 0.0
    return float(moocore.hypervolume(z, ref=r))


def hypervolume_contributions(
    points: object,
    ref: object = None,
    senses: SensesLike = "min",
    *,
    bounds: object = None,
    margin: float = DEFAULT_MARGIN,
) -> np.ndarray:
    """Exclusive hypervolume contribution of every point: what the set loses without it.

    Dominated points and duplicated points contribute 0 (removing one copy loses nothing);
    dominated points do not reduce the contributions of others. Arguments as
    :func:`hypervolume`.

    Returns:
        ``(n,)`` float array.
    """
    z, r = minimisation_problem(points, ref, senses, bounds=bounds, margin=margin)
    if z.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(moocore.hv_contributions(z, ref=r, ignore_dominated=True), dtype=float)
