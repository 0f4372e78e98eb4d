"""The front in one pair of objectives: every trial with standard-error bars, the study's
Pareto-optimal trials ringed, the pair's own front as a staircase, the knee, the base model and
the selected trial. The scatter matrix's cells are the same chart, smaller."""

from __future__ import annotations

from typing import NamedTuple

import altair as alt
import numpy as np
import pandas as pd

from app.charts._style import (
    KNEE_COLOUR,
    LEGEND,
    SELECTED_COLOUR,
    padded_domain,
    pick,
    scale,
    sense_title,
    step,
)
from app.data import pair_front


class FrontData(NamedTuple):
    """What :func:`front_chart` draws. ``points``: the trials' columns the chart reads, with
    the error bars' ends ``x_lo``, ``x_hi``, ``y_lo``, ``y_hi``; ``front``: the pair's front
    with its drawing ``order`` (None: no staircase); ``base``: the base model's ``(x, y)``
    (None: unknown or not finite); domains padded over all of it (:data:`PADDING`)."""

    points: pd.DataFrame
    x: str
    y: str
    objectives: tuple[str, ...]
    senses: tuple[str, ...]
    x_domain: list[float]
    y_domain: list[float]
    front: pd.DataFrame | None
    base: tuple[float, float] | None
    error_bars: bool

    @property
    def x_sense(self) -> str:
        return self.senses[self.objectives.index(self.x)]

    @property
    def y_sense(self) -> str:
        return self.senses[self.objectives.index(self.y)]


def front_data(
    trials: pd.DataFrame,
    x: str,
    y: str,
    objectives: tuple[str, ...],
    senses: tuple[str, ...],
    *,
    error_bars: bool = True,
    base: dict[str, float] | None = None,
    staircase: bool = True,
) -> FrontData:
    """The trials in objectives ``x`` and ``y`` with their error bars, the pair's front (with
    ``staircase``) and the base model (``base``: its value per objective), and axis domains
    that cover the points, the bars when shown, and the base."""
    sx, sy = senses[objectives.index(x)], senses[objectives.index(y)]
    cols = ["key", "run", "family", "driver", "rank", "on_front", "knee", "p_nondominated"]
    cols += [*objectives, *(f"{o}_stderr" for o in objectives), *_tooltip_columns(objectives)]
    points = trials[cols].copy()
    points["x_lo"], points["x_hi"] = (
        points[x] - points[f"{x}_stderr"],
        points[x] + points[f"{x}_stderr"],
    )
    points["y_lo"], points["y_hi"] = (
        points[y] - points[f"{y}_stderr"],
        points[y] + points[f"{y}_stderr"],
    )
    base_xy = None if base is None else (base.get(x), base.get(y))
    if base_xy is not None and not all(v is not None and np.isfinite(v) for v in base_xy):
        base_xy = None
    extra_x, extra_y = ([base_xy[0]], [base_xy[1]]) if base_xy else ([], [])
    bars = ("x_lo", "x_hi", "y_lo", "y_hi") if error_bars else (x, x, y, y)
    x_domain = padded_domain(points[x], points[bars[0]], points[bars[1]], extra_x)
    y_domain = padded_domain(points[y], points[bars[2]], points[bars[3]], extra_y)
    front = None
    if staircase:
        front2d = pair_front(points, x, y, (sx, sy))
        front = front2d.assign(order=np.arange(len(front2d)))
    return FrontData(
        points, x, y, objectives, senses, x_domain, y_domain, front, base_xy, error_bars
    )


def front_chart(
    data: FrontData,
    *,
    colour_by: str = "run",
    selected: str | None = None,
    legend: bool = True,
    height: int = 420,
) -> alt.LayerChart:
    """All trials of ``data``: standard-error bars, the study's Pareto-optimal trials ringed,
    the front of this pair joined by a step line, the knee as a large dark diamond labelled
    "knee" (wider than the selection ring, which often sits on it), the base model as a grey
    cross, the selected trial in magenta."""
    ex, ey = _axes(data)
    chart = alt.Chart(data.points)
    layers = _error_bars(chart, data) if data.error_bars else []
    if data.front is not None:
        # the step line runs from the best of one objective to the best of the other
        layers.append(
            alt.Chart(data.front)
            .mark_line(interpolate=step(data.x_sense), color="#555", strokeWidth=2, opacity=0.8)
            .encode(x=ex, y=ey, order="order:Q")
        )
    colour = _colour(colour_by, data.objectives, data.senses)
    if not legend:
        colour.legend = None
    layers += _trial_layers(chart, data, colour)
    if data.base is not None:
        layers += _base_layers(data)
    points = data.points
    if selected is not None and (points["key"] == selected).any():
        layers.append(
            alt.Chart(points[points["key"] == selected])
            .mark_point(size=320, color=SELECTED_COLOUR, strokeWidth=3)
            .encode(x=ex, y=ey)
            .properties(name="selected")
        )
    return alt.layer(*layers).properties(height=height, width="container")


def _axes(data: FrontData) -> tuple[alt.X, alt.Y]:
    return (
        alt.X(f"{data.x}:Q", title=sense_title(data.x, data.x_sense), scale=scale(data.x_domain)),
        alt.Y(f"{data.y}:Q", title=sense_title(data.y, data.y_sense), scale=scale(data.y_domain)),
    )


def _error_bars(chart: alt.Chart, data: FrontData) -> list[alt.Chart]:
    """The standard-error bars: a faint rule in ``x`` and one in ``y`` per trial."""
    ex, ey = _axes(data)
    x_title, y_title = sense_title(data.x, data.x_sense), sense_title(data.y, data.y_sense)
    return [
        chart.mark_rule(opacity=0.25).encode(
            x=alt.X("x_lo:Q", title=x_title, scale=scale(data.x_domain)), x2="x_hi:Q", y=ey
        ),
        chart.mark_rule(opacity=0.25).encode(
            x=ex, y=alt.Y("y_lo:Q", title=y_title, scale=scale(data.y_domain)), y2="y_hi:Q"
        ),
    ]


def _trial_layers(chart: alt.Chart, data: FrontData, colour: alt.Color) -> list[alt.Chart]:
    """The trials (the layer a click selects on), the ring of the Pareto-optimal ones, and
    the knee's diamond and label."""
    ex, ey = _axes(data)
    return [
        chart.mark_point(filled=True, size=60)
        .encode(
            x=ex,
            y=ey,
            color=colour,
            opacity=alt.condition("datum.on_front", alt.value(0.95), alt.value(0.35)),
            tooltip=_tooltip(data.objectives),
        )
        .add_params(pick())
        .properties(name="trials"),  # the SVG marks' group is "trials_marks"
        chart.transform_filter("datum.on_front")
        .mark_point(size=150, color="black", strokeWidth=1.2)
        .encode(x=ex, y=ey)
        .properties(name="front"),
        chart.transform_filter("datum.knee")
        .mark_point(shape="diamond", size=900, color=KNEE_COLOUR, strokeWidth=2)
        .encode(x=ex, y=ey, tooltip=[alt.Tooltip("key:N", title="knee of the front")])
        .properties(name="knee"),
        chart.transform_filter("datum.knee")
        .transform_calculate(label="'knee'")
        .mark_text(align="left", dx=16, dy=-14, color=KNEE_COLOUR, fontSize=12)
        .encode(x=ex, y=ey, text="label:N"),
    ]


def _base_layers(data: FrontData) -> list[alt.Chart]:
    """The base model as a grey cross labelled "base"."""
    ex, ey = _axes(data)
    x, y = data.x, data.y
    point = alt.Chart(pd.DataFrame({x: [data.base[0]], y: [data.base[1]], "label": ["base"]}))
    return [
        point.mark_point(shape="cross", filled=True, size=220, color="#444")
        .encode(
            x=ex,
            y=ey,
            tooltip=[
                alt.Tooltip("label:N", title="base model"),
                alt.Tooltip(f"{x}:Q", format=".4g"),
                alt.Tooltip(f"{y}:Q", format=".4g"),
            ],
        )
        .properties(name="base"),
        point.mark_text(align="left", dx=9, dy=-9, color="#444", fontSize=12).encode(
            x=ex, y=ey, text="label:N"
        ),
    ]


def _colour(colour_by: str, objectives: tuple[str, ...], senses: tuple[str, ...]) -> alt.Color:
    if colour_by in objectives:
        sense = senses[objectives.index(colour_by)]
        scheme = alt.Scale(scheme="viridis", reverse=sense == "min")
        return alt.Color(
            f"{colour_by}:Q", scale=scheme, title=sense_title(colour_by, sense), legend=LEGEND
        )
    if colour_by == "p_nondominated":
        return alt.Color(
            "p_nondominated:Q",
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
            title="P(non-dominated)",
            legend=LEGEND,
        )
    return alt.Color(
        f"{colour_by}:N", title=colour_by, scale=alt.Scale(scheme="tableau10"), legend=LEGEND
    )


def _tooltip(objectives: tuple[str, ...]) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("key:N", title="trial"),
        alt.Tooltip("run:N"),
        alt.Tooltip("family:N"),
        alt.Tooltip("driver:N"),
        *[alt.Tooltip(f"{o}:Q", format=".4g") for o in objectives],
        *[alt.Tooltip(f"{o}_stderr:Q", title=f"{o} stderr", format=".2g") for o in objectives],
        *[alt.Tooltip(f"{o}_vs_base_text:N", title=f"{o} − base [95%]") for o in objectives],
        alt.Tooltip("rank:Q", title="front rank (1 = Pareto-optimal)"),
        alt.Tooltip("p_nondominated:Q", title="P(non-dominated)", format=".2f"),
        alt.Tooltip("prompts_used:Q", title="prompts scored"),
    ]


def _tooltip_columns(objectives: tuple[str, ...]) -> list[str]:
    """The trials table's columns the tooltips read."""
    return ["prompts_used", *(f"{o}_vs_base_text" for o in objectives)]


def front_scatter(
    trials: pd.DataFrame,
    x: str,
    y: str,
    objectives: tuple[str, ...],
    senses: tuple[str, ...],
    *,
    colour_by: str = "run",
    selected: str | None = None,
    error_bars: bool = True,
    base: dict[str, float] | None = None,
    legend: bool = True,
    staircase: bool = True,
    height: int = 420,
) -> alt.LayerChart:
    """All trials in objectives ``x`` and ``y`` (:func:`front_chart` of :func:`front_data`):
    standard-error bars, the study's Pareto-optimal trials ringed, the front of this pair
    joined by a step line, the knee, the base model (``base``: its value per objective) as a
    grey cross, the selected trial in magenta. Axis domains cover all of it, padded."""
    data = front_data(
        trials, x, y, objectives, senses, error_bars=error_bars, base=base, staircase=staircase
    )
    return front_chart(data, colour_by=colour_by, selected=selected, legend=legend, height=height)


def matrix_cells(objectives: tuple[str, ...]) -> list[list[tuple[str, str] | None]]:
    """The scatter matrix's lower triangle as rows of ``(x, y)`` cells: row ``i`` plots
    objective ``i + 1`` against each earlier one, then ``None`` for the empty cells (the
    self-pairs and the mirror images, which repeat the other cells, are left out)."""
    n = len(objectives)
    return [
        [(objectives[j], objectives[i]) if j < i else None for j in range(n - 1)]
        for i in range(1, n)
    ]
