"""One trial's ``x`` as its family means it: a heatmap of blocks by experts, or bars."""

from __future__ import annotations

import altair as alt
import pandas as pd


def x_chart(table: pd.DataFrame) -> alt.Chart:
    """``x`` as its family means it: a blocks-by-experts heatmap when there are blocks, bars
    otherwise (weights per expert, desired rewards per objective, method parameters)."""
    # "group" and "value" are names Vega itself uses in expressions: renamed to be safe
    data = table.rename(columns={"group": "part", "value": "amount"})
    if data["part"].str.startswith("block").all():
        base = alt.Chart(data).encode(
            x=alt.X("name:N", title="expert", sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("part:N", title="block of layers (block 0 holds the embeddings)", sort=None),
        )
        return (
            base.mark_rect().encode(
                color=alt.Color(
                    "amount:Q", title="weight", scale=alt.Scale(domain=[0, 1], scheme="blues")
                ),
                tooltip=["part", "name", alt.Tooltip("amount:Q", format=".3f")],
            )
            + base.mark_text(fontSize=14).encode(
                text=alt.Text("amount:Q", format=".2f"),
                color=alt.condition("datum.amount > 0.6", alt.value("white"), alt.value("black")),
            )
        ).properties(height=alt.Step(48), width="container")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("amount:Q", title=None),
            y=alt.Y("name:N", title=None, sort=None),
            # the rows' headers name the parts: a legend would repeat them
            color=alt.Color("part:N", scale=alt.Scale(scheme="tableau10"), legend=None),
            row=alt.Row(
                "part:N", title=None, sort=None, header=alt.Header(labelAngle=0, labelAlign="left")
            ),
            tooltip=["part", "name", alt.Tooltip("amount:Q", format=".3f")],
        )
        .resolve_scale(y="independent")
        # a faceted chart cannot take its column's width; 240 px of bars, beside the row
        # headers and the names, fit the trial page's left column at 1280 px (300 overflowed it)
        .properties(height=alt.Step(26), width=240)
    )
