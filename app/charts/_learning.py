"""A learned trial's learning curve (driver ``ama``): the total loss and each stand-in's, by
step of gradient descent."""

from __future__ import annotations

import altair as alt
import pandas as pd


def learning_curve_data(curve: list[dict]) -> pd.DataFrame:
    """One row per step and loss: columns ``step``, ``loss`` (which: ``total`` or an
    objective's stand-in), ``value``."""
    rows = [
        {"step": int(point["step"]), "loss": "total" if k == "loss" else k, "value": float(v)}
        for point in curve
        for k, v in point.items()
        if k != "step"
    ]
    return pd.DataFrame(rows, columns=["step", "loss", "value"])


def learning_curve_chart(curve: list[dict]) -> alt.Chart:
    """Lines of the total loss (penalty included) and of each weighted stand-in's loss."""
    data = learning_curve_data(curve)
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "step:Q",
                title="step of gradient descent",
                axis=alt.Axis(format="d", tickMinStep=1),
            ),
            y=alt.Y("value:Q", title="loss", scale=alt.Scale(zero=False)),
            color=alt.Color("loss:N", title=None, scale=alt.Scale(scheme="tableau10")),
            tooltip=["step", "loss", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=220, width="container")
    )
