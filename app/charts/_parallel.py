"""Parallel coordinates: one line per trial over the objectives and the coordinates of ``x``,
each axis scaled to the range seen."""

from __future__ import annotations

from typing import NamedTuple

import altair as alt
import numpy as np
import pandas as pd

from app.charts._style import SELECTED_COLOUR, pick
from app.data import x_rows


class ParallelData(NamedTuple):
    """The lines of :func:`parallel_chart`: ``lines`` holds one row per trial and axis
    (``key``, ``family``, ``on_front``, ``axis``, the scaled value ``v``, ``axis_order``),
    ``axes`` the axes' names in order (the objectives, then the coordinates of ``x``)."""

    lines: pd.DataFrame
    axes: list[str]


def parallel_data(
    trials: pd.DataFrame,
    details: dict,
    objectives: tuple[str, ...],
    senses: tuple[str, ...],
    x_labels: list[str],
    experts: tuple[str, ...],
) -> ParallelData:
    """The objectives scaled to ``[0, 1]`` so that up is better, then the coordinates of
    ``x`` as its family means them (:func:`app.data.x_rows`, one axis per label of
    ``x_labels``) scaled to the observed range; missing values are left out."""
    frame = trials[["key", "family", "on_front", *objectives]].copy()
    axes = _objective_axes(frame, objectives, senses)
    axes += _x_axes(frame, details, x_labels, experts)
    long = frame.melt(
        id_vars=["key", "family", "on_front"], value_vars=axes, var_name="axis", value_name="v"
    ).dropna(subset=["v"])
    order = {a: i for i, a in enumerate(axes)}
    long["axis_order"] = long["axis"].map(order)
    return ParallelData(long, axes)


def _objective_axes(
    frame: pd.DataFrame, objectives: tuple[str, ...], senses: tuple[str, ...]
) -> list[str]:
    """Adds to ``frame`` a column ``O (up = better)`` per objective; returns their names."""
    axes: list[str] = []
    for o, s in zip(objectives, senses, strict=True):
        v = frame[o].to_numpy(float)
        lo, hi = np.nanmin(v), np.nanmax(v)
        scaled = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
        name = f"{o} (up = better)"
        frame[name] = scaled if s == "max" else 1 - scaled
        axes.append(name)
    return axes


def _x_axes(
    frame: pd.DataFrame, details: dict, x_labels: list[str], experts: tuple[str, ...]
) -> list[str]:
    """Adds to ``frame`` a column per label of ``x_labels``: that coordinate of each trial's
    ``x``, scaled to the range seen (0.5 where it is one value); returns ``x_labels``."""
    xs = np.array(
        [
            _padded([v for *_, v in x_rows(details[k], experts)], len(x_labels))
            for k in frame["key"]
        ],
        dtype=float,
    ).reshape(len(frame), len(x_labels))
    for j, label in enumerate(x_labels):
        col = xs[:, j]
        finite = col[np.isfinite(col)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        frame[label] = (col - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(col), 0.5, col)
    return list(x_labels)


def _padded(x: list, n: int) -> list:
    x = list(x)[:n]
    return x + [np.nan] * (n - len(x))


def parallel_chart(
    data: ParallelData, *, selected: str | None = None, height: int = 320
) -> alt.LayerChart:
    """One line per trial over ``data.axes``, coloured by family, the Pareto-optimal trials
    opaque; a click selects the trial, ``selected`` is drawn thick in magenta."""
    long, axes = data
    ex = alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(labelAngle=-25, labelLimit=220))
    ey = alt.Y("v:Q", title="scaled to the range seen")
    layers = [
        alt.Chart(long)
        .mark_line(strokeWidth=1)
        .encode(
            x=ex,
            y=ey,
            detail="key:N",
            color=alt.Color("family:N", scale=alt.Scale(scheme="tableau10")),
            opacity=alt.condition("datum.on_front", alt.value(0.8), alt.value(0.12)),
            order="axis_order:Q",
            tooltip=[alt.Tooltip("key:N", title="trial"), "family:N"],
        )
        .add_params(pick())
    ]
    if selected is not None and (long["key"] == selected).any():
        layers.append(
            alt.Chart(long[long["key"] == selected])
            .mark_line(strokeWidth=4, color=SELECTED_COLOUR)
            .encode(x=ex, y=ey, order="axis_order:Q")
        )
    return alt.layer(*layers).properties(height=height)


def parallel_coordinates(
    trials: pd.DataFrame,
    details: dict,
    objectives: tuple[str, ...],
    senses: tuple[str, ...],
    x_labels: list[str],
    experts: tuple[str, ...],
    *,
    selected: str | None = None,
    height: int = 320,
) -> alt.LayerChart:
    """One line per trial over the objectives (scaled so that up is better) and the
    coordinates of ``x`` as its family means them (:func:`app.data.x_rows`, scaled to the
    observed range); ``trials`` should hold one run, whose ``x`` share their meaning.
    :func:`parallel_chart` of :func:`parallel_data`."""
    data = parallel_data(trials, details, objectives, senses, x_labels, experts)
    return parallel_chart(data, selected=selected, height=height)
