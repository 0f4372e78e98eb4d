"""Charts that compare runs and studies: hypervolume against evaluations, and Pareto fronts
overlaid in one pair of objectives."""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.charts._style import LEGEND, padded_domain, scale, sense_title, step


def convergence_chart(history: pd.DataFrame) -> alt.Chart:
    """Hypervolume against the number of evaluations, one line per run."""
    return (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "evaluations:Q",
                title="evaluations",
                axis=alt.Axis(tickMinStep=1, format="d"),  # whole evaluations only
            ),
            y=alt.Y("hypervolume:Q", title="hypervolume (study-normalised)"),
            color=alt.Color(
                "run:N",
                title="run (family)",
                scale=alt.Scale(scheme="tableau10"),
                legend=alt.Legend(labelLimit=0),
            ),
            strokeDash=alt.StrokeDash("driver:N", legend=alt.Legend(labelLimit=0)),
            tooltip=["run", "driver", "evaluations", alt.Tooltip("hypervolume:Q", format=".4f")],
        )
        .properties(height=340)
    )


def overlay_fronts(fronts: pd.DataFrame, x: str, y: str, sx: str, sy: str) -> alt.LayerChart:
    """Pareto fronts (in ``x``, ``y``) of several families or studies; column ``source``."""
    ex = alt.X(f"{x}:Q", title=sense_title(x, sx), scale=scale(padded_domain(fronts[x])))
    ey = alt.Y(f"{y}:Q", title=sense_title(y, sy), scale=scale(padded_domain(fronts[y])))
    colour = alt.Color(
        "source:N", title="front of", scale=alt.Scale(scheme="tableau10"), legend=LEGEND
    )
    base = alt.Chart(fronts).encode(x=ex, y=ey, color=colour)
    return (
        base.mark_line(interpolate=step(sx)).encode(order="order:Q")
        + base.mark_point(filled=True, size=60).encode(
            tooltip=[
                "source",
                "key",
                alt.Tooltip(f"{x}:Q", format=".4g"),
                alt.Tooltip(f"{y}:Q", format=".4g"),
            ]
        )
    ).properties(height=380)
