"""Reference points and normalisation: what makes hypervolumes comparable.

Policy (used whenever a reference point is not given):

1. Work in minimisation (maximised objectives negated).
2. Take the *ideal* (best value) and *nadir* (worst value) of each objective, either over the
   observed points or from explicit ``bounds`` given in the objectives' own units.
3. The reference point is the nadir moved outward (toward "worse") by ``margin`` times the
   objective's range, ``margin = 0.1`` by default. An objective whose observed range is zero
   is moved by ``margin * max(|nadir|, 1)``, so the reference always lies strictly beyond
   every point and each point contributes.

With ``bounds`` every objective is normalised to ``[0, 1]`` (0 at its best bound, 1 at its
worst) before the hypervolume is computed, and the default reference is ``1 + margin`` in each
coordinate. Two fronts are comparable only under the same reference point and the same
normalisation; the CLI and the dashboard always report both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pareto._arrays import SensesLike, as_vector, parse_senses, sign_vector, to_minimisation

DEFAULT_MARGIN = 0.1


class Bounds(NamedTuple):
    """Per-objective ``low`` and ``high`` values in the objectives' own units (``low < high``)."""

    low: np.ndarray
    high: np.ndarray


def as_bounds(bounds: object, n_objectives: int) -> Bounds:
    """Check ``(low, high)`` and return them as :class:`Bounds` of float vectors."""
    try:
        low, high = bounds  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be a pair (low, high) of per-objective values; got {bounds!r}"
        ) from None
    low = as_vector(low, n_objectives, "bounds low")
    high = as_vector(high, n_objectives, "bounds high")
    if not (low < high).all():
        i = int(np.argmax(~(low < high)))
        raise ValueError(
            f"bounds must satisfy low < high for every objective; objective {i} has "
            f"low={low[i]} and high={high[i]}"
        )
    return Bounds(low, high)


def ideal_nadir(points: object, senses: SensesLike = "min") -> tuple[np.ndarray, np.ndarray]:
    """Best and worst observed value of every objective, in the objectives' own units."""
    z = to_minimisation(points, senses)
    if z.shape[0] == 0:
        raise ValueError("points is empty: ideal and nadir need at least one point")
    signs = sign_vector(parse_senses(senses, z.shape[1]))
    return z.min(axis=0) * signs, z.max(axis=0) * signs


def reference_point(
    points: object,
    senses: SensesLike = "min",
    *,
    margin: float = DEFAULT_MARGIN,
    bounds: object = None,
) -> np.ndarray:
    """The default reference point, in the objectives' own units (see the module docstring).

    Args:
        points: ``(n, m)`` objective values; used only when ``bounds`` is None.
        senses: ``"max"`` or ``"min"`` per objective.
        margin: fraction of each objective's range added beyond the nadir (``>= 0``).
        bounds: optional ``(low, high)`` per objective; the nadir is then the worse bound.

    Returns:
        ``(m,)`` reference point, worse than every observed point in every objective when
        ``margin > 0``.
    """
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0; got {margin}")
    z = to_minimisation(points, senses)
    parsed = parse_senses(senses, z.shape[1])
    signs = sign_vector(parsed)
    if bounds is not None:
        b = as_bounds(bounds, z.shape[1])
        zb = np.stack([b.low * signs, b.high * signs])
        ideal, nadir = zb.min(axis=0), zb.max(axis=0)
    else:
        if z.shape[0] == 0:
            raise ValueError(
                "points is empty: give a reference point or bounds to compute a hypervolume"
            )
        ideal, nadir = z.min(axis=0), z.max(axis=0)
    span = nadir - ideal
    span = np.where(span > 0, span, np.maximum(np.abs(nadir), 1.0))
    return (nadir + margin * span) * signs


def normalise(points: object, senses: SensesLike, bounds: object) -> np.ndarray:
    """Map objective values to ``[0, 1]`` minimisation: 0 at the best bound, 1 at the worst.

    Values outside the bounds map outside ``[0, 1]``; nothing is clipped.

    Args:
        points: ``(n, m)`` objective values in their own units.
        senses: ``"max"`` or ``"min"`` per objective.
        bounds: ``(low, high)`` per objective, in the objectives' own units.

    Returns:
        ``(n, m)`` normalised, minimised values (a new array).
    """
    arr = to_minimisation(points, senses)
    parsed = parse_senses(senses, arr.shape[1])
    b = as_bounds(bounds, arr.shape[1])
    signs = sign_vector(parsed)
    best = np.where(signs > 0, b.low, -b.high)  # minimisation-space ideal
    return (arr - best) / (b.high - b.low)
