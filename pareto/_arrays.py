"""Input checking shared by the numeric functions: objective matrices and senses.

Every public function in :mod:`pareto` accepts objective values in the user's own senses
(``"max"`` or ``"min"`` per objective) and works internally on a *copy* turned into
minimisation (maximised columns negated). Inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Sense = Literal["max", "min"]
SensesLike = str | Sequence[str]

SENSES: tuple[str, ...] = ("max", "min")


def as_points(points: object, name: str = "points") -> np.ndarray:
    """Return ``points`` as a new float64 array of shape ``(n, m)``, checked finite.

    A 1-D input of length ``m`` is *not* accepted as one point: shapes must be explicit.
    """
    try:
        arr = np.array(points, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (n, m); {err}") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n, m) (one row per point, one column per objective); "
            f"got an array of shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one objective column; got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite; found {arr[row, col]} at row {row}, column {col} "
            f"({int(bad.sum())} non-finite value(s) in all)"
        )
    return arr


def as_vector(values: object, n: int, name: str) -> np.ndarray:
    """Return ``values`` as a new finite float64 vector of length ``n``."""
    arr = np.array(values, dtype=np.float64, copy=True)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must have {n} values, one per objective; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got {arr.tolist()}")
    return arr


def parse_senses(senses: SensesLike, n_objectives: int) -> tuple[Sense, ...]:
    """Check ``senses`` and return one ``"max"``/``"min"`` per objective.

    A single string applies to every objective; otherwise the length must match.
    """
    if isinstance(senses, str):
        senses = [senses] * n_objectives
    senses = list(senses)
    if len(senses) != n_objectives:
        raise ValueError(
            f"senses has {len(senses)} entries for {n_objectives} objectives; "
            f"give one 'max' or 'min' per objective"
        )
    for i, sense in enumerate(senses):
        if sense not in SENSES:
            raise ValueError(f"senses[{i}] is {sense!r}; expected 'max' or 'min'")
    return tuple(senses)  # type: ignore[return-value]


def sign_vector(senses: Sequence[Sense]) -> np.ndarray:
    """+1 for minimised objectives, -1 for maximised ones: ``minimisation = sign * value``."""
    return np.array([-1.0 if s == "max" else 1.0 for s in senses])


def to_minimisation(points: object, senses: SensesLike, name: str = "points") -> np.ndarray:
    """A checked copy of ``points`` with maximised objectives negated."""
    arr = as_points(points, name)
    signs = sign_vector(parse_senses(senses, arr.shape[1]))
    return arr * signs
