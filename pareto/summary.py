"""One-call summary of a set of points: front, hypervolume with its reference, knee."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pareto._arrays import SensesLike, as_vector, parse_senses, sign_vector, to_minimisation
from pareto.choice import knee_point
from pareto.dominance import pareto_mask
from pareto.hypervolume import hypervolume
from pareto.reference import DEFAULT_MARGIN, reference_point


@dataclass(frozen=True)
class FrontSummary:
    """What a user wants to know first about a set of evaluated points."""

    front: tuple[int, ...]
    """Indices of the non-dominated points, in input order."""
    hypervolume: float
    reference_point: tuple[float, ...]
    """The reference point used, in the objectives' own units."""
    reference_given: bool
    """Whether the reference point was given (else it follows the default policy)."""
    knee: int
    """Index of the knee point (see :func:`pareto.knee_point`)."""
    beyond_reference: tuple[int, ...]
    """Front points not strictly better than the reference in every objective: they add no
    hypervolume (only possible with a given reference)."""


def summarize_front(
    points: object,
    senses: SensesLike = "min",
    *,
    ref: object = None,
    margin: float = DEFAULT_MARGIN,
) -> FrontSummary:
    """Front, hypervolume (with the reference point used) and knee of ``points``."""
    z = to_minimisation(points, senses)
    parsed = parse_senses(senses, z.shape[1])
    if z.shape[0] == 0:
        raise ValueError("points is empty: nothing to summarise")
    if ref is None:
        ref_vec = reference_point(points, parsed, margin=margin)
    else:
        ref_vec = as_vector(ref, z.shape[1], "ref")
    mask = pareto_mask(points, parsed)
    ref_z = ref_vec * sign_vector(parsed)
    beyond = np.flatnonzero(mask & ~(z < ref_z).all(axis=1))
    return FrontSummary(
        front=tuple(int(i) for i in np.flatnonzero(mask)),
        hypervolume=hypervolume(points, ref_vec, parsed),
        reference_point=tuple(float(v) for v in ref_vec),
        reference_given=ref is not None,
        knee=knee_point(points, parsed),
        beyond_reference=tuple(int(i) for i in beyond),
    )
