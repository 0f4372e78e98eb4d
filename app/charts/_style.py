"""What every chart of the dashboard shares: the selection's name, legends, colours, padded
axis domains and axis titles that say which way is better."""

from __future__ import annotations

import altair as alt
import numpy as np

SELECTION = "pick"
LEGEND = alt.Legend(orient="bottom", direction="horizontal", columns=3, labelLimit=0, titleLimit=0)
"""Legends below the plots, three entries a row and never truncated: side legends would take
a third of a half-width column, and one row of long run names runs off it."""
PADDING = 0.06
"""Share of an axis's data range left empty at each end, so that edge points, error bars and
staircases are drawn whole."""
KNEE_COLOUR = "#222222"  # near black: the family scheme (tableau10) has an orange
SELECTED_COLOUR = "#e6007e"  # magenta: not a colour of the tableau10 family scheme


def sense_title(name: str, sense: str) -> str:
    """An axis title that says which way is better."""
    return f"{name} ({'higher' if sense == 'max' else 'lower'} is better)"


def step(x_sense: str) -> str:
    """The staircase that bounds the dominated region of a front sorted along ``x``: between
    two front points the level is the next point's when ``x`` is maximised, the previous
    point's when it is minimised."""
    return "step-before" if x_sense == "max" else "step-after"


def padded_domain(*columns, fraction: float = PADDING) -> list[float]:
    """``[low, high]`` over the finite values of ``columns``, widened by ``fraction`` of the
    range at each end (by 5% of the value, or 1, when every value is the same)."""
    values = np.concatenate([np.asarray(c, dtype=float).ravel() for c in columns])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [0.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * fraction if hi > lo else (abs(lo) * 0.05 or 1.0)
    return [lo - pad, hi + pad]


def scale(domain: list[float]) -> alt.Scale:
    """A linear scale over exactly ``domain``: no zero, no rounding to nice values."""
    return alt.Scale(domain=domain, zero=False, nice=False)


def pick() -> alt.Parameter:
    """The point selection :data:`SELECTION` on ``key`` that a click sets."""
    return alt.selection_point(name=SELECTION, fields=["key"], on="click", toggle=False)
