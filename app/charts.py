"""Altair charts of a study: fronts with error bars, scatter matrix, parallel coordinates,
``x`` by family, convergence and overlaid fronts.

Every chart that can select a trial carries one point selection named ``SELECTION`` on the
field ``key``; the pages turn a click into the trial selected everywhere.
"""

from __future__ import annotations

import warnings

import altair as alt
import numpy as np
import pandas as pd

from app.data import pair_front, x_rows

SELECTION = "pick"
LEGEND = alt.Legend(orient="bottom", direction="horizontal")
"""Legends below the plots: side legends would take a third of a half-width column."""
SELECTED_COLOUR = "#e6007e"  # magenta: not a colour of the tableau10 family scheme


def sense_title(name: str, sense: str) -> str:
    """An axis title that says which way is better."""
    return f"{name} ({'higher' if sense == 'max' else 'lower'} is better)"


def _step(x_sense: str) -> str:
    """The staircase that bounds the dominated region of a front sorted along ``x``: between
    two front points the level is the next point's when ``x`` is maximised, the previous
    point's when it is minimised."""
    return "step-before" if x_sense == "max" else "step-after"


def _pick() -> alt.Parameter:
    return alt.selection_point(name=SELECTION, fields=["key"], on="click", toggle=False)


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
    colour_by: str = "family",
    selected: str | None = None,
    error_bars: bool = True,
    height: int = 420,
) -> alt.LayerChart:
    """All trials in objectives ``x`` and ``y``: standard-error bars, the study's Pareto-optimal
    trials ringed, the front of this pair joined by a step line, the selected trial in magenta."""
    sx, sy = senses[objectives.index(x)], senses[objectives.index(y)]
    cols = ["key", "family", "driver", "rank", "on_front", "knee", "p_nondominated"]
    cols += [*objectives, *(f"{o}_stderr" for o in objectives), *_tooltip_columns(objectives)]
    data = trials[cols].copy()
    data["x_lo"], data["x_hi"] = data[x] - data[f"{x}_stderr"], data[x] + data[f"{x}_stderr"]
    data["y_lo"], data["y_hi"] = data[y] - data[f"{y}_stderr"], data[y] + data[f"{y}_stderr"]
    ex = alt.X(f"{x}:Q", title=sense_title(x, sx), scale=alt.Scale(zero=False))
    ey = alt.Y(f"{y}:Q", title=sense_title(y, sy), scale=alt.Scale(zero=False))
    base = alt.Chart(data)
    layers = []
    if error_bars:
        layers += [
            base.mark_rule(opacity=0.25).encode(
                x=alt.X("x_lo:Q", title=sense_title(x, sx), scale=alt.Scale(zero=False)),
                x2="x_hi:Q",
                y=ey,
            ),
            base.mark_rule(opacity=0.25).encode(
                x=ex,
                y=alt.Y("y_lo:Q", title=sense_title(y, sy), scale=alt.Scale(zero=False)),
                y2="y_hi:Q",
            ),
        ]
    front2d = pair_front(data, x, y, (sx, sy))
    # the step line runs from the best of one objective to the best of the other
    layers.append(
        alt.Chart(front2d.assign(order=np.arange(len(front2d))))
        .mark_line(interpolate=_step(sx), color="#555", strokeWidth=2, opacity=0.8)
        .encode(x=ex, y=ey, order="order:Q")
    )
    layers.append(
        base.mark_point(filled=True, size=60)
        .encode(
            x=ex,
            y=ey,
            color=_colour(colour_by, objectives, senses),
            opacity=alt.condition("datum.on_front", alt.value(0.95), alt.value(0.35)),
            tooltip=_tooltip(objectives),
        )
        .add_params(_pick())
        .properties(name="trials")  # the SVG marks' group is "trials_marks"
    )
    layers.append(
        base.transform_filter("datum.on_front")
        .mark_point(size=150, color="black", strokeWidth=1.2)
        .encode(x=ex, y=ey)
        .properties(name="front")
    )
    if selected is not None and (data["key"] == selected).any():
        layers.append(
            alt.Chart(data[data["key"] == selected])
            .mark_point(size=320, color=SELECTED_COLOUR, strokeWidth=3)
            .encode(x=ex, y=ey)
            .properties(name="selected")
        )
    return alt.layer(*layers).properties(height=height, width="container")


def scatter_matrix(
    trials: pd.DataFrame,
    objectives: tuple[str, ...],
    senses: tuple[str, ...],
    *,
    colour_by: str = "family",
    selected: str | None = None,
    size: int = 170,
) -> alt.VConcatChart:
    """Every objective against every other; Pareto-optimal trials opaque, the selected large.

    Built as rows of concatenated cells sharing one selection (Streamlit reports selections
    of concatenated views, not of ``repeat`` charts)."""
    cols = ["key", "family", "driver", "rank", "on_front", "p_nondominated"]
    cols += [*objectives, *(f"{o}_stderr" for o in objectives), *_tooltip_columns(objectives)]
    data = trials[cols].copy()
    data["selected"] = data["key"] == selected
    pick = _pick()
    base = alt.Chart(data).mark_point(filled=True)

    def cell(row: str, column: str) -> alt.Chart:
        return (
            base.encode(
                x=alt.X(
                    f"{column}:Q",
                    scale=alt.Scale(zero=False),
                    title=sense_title(column, senses[objectives.index(column)]),
                ),
                y=alt.Y(
                    f"{row}:Q",
                    scale=alt.Scale(zero=False),
                    title=sense_title(row, senses[objectives.index(row)]),
                ),
                color=alt.condition(
                    "datum.selected",
                    alt.value(SELECTED_COLOUR),
                    _colour(colour_by, objectives, senses),
                ),
                size=alt.condition("datum.selected", alt.value(200), alt.value(30)),
                opacity=alt.condition("datum.on_front", alt.value(0.95), alt.value(0.3)),
                tooltip=_tooltip(objectives),
            )
            .properties(width=size, height=size)
            .add_params(pick)
        )

    with warnings.catch_warnings():
        # Altair merges the cells' identical selections into one over all views, as meant
        warnings.filterwarnings("ignore", "Automatically deduplicated selection parameter")
        rows = [alt.hconcat(*[cell(r, c) for c in objectives]) for r in objectives]
        return alt.vconcat(*rows).resolve_legend(color="shared")


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
    observed range); ``trials`` should hold one run, whose ``x`` share their meaning."""
    frame = trials[["key", "family", "on_front", *objectives]].copy()
    axes: list[str] = []
    for o, s in zip(objectives, senses, strict=True):
        v = frame[o].to_numpy(float)
        lo, hi = np.nanmin(v), np.nanmax(v)
        scaled = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
        name = f"{o} (up = better)"
        frame[name] = scaled if s == "max" else 1 - scaled
        axes.append(name)
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
        axes.append(label)
    long = frame.melt(
        id_vars=["key", "family", "on_front"], value_vars=axes, var_name="axis", value_name="v"
    ).dropna(subset=["v"])
    order = {a: i for i, a in enumerate(axes)}
    long["axis_order"] = long["axis"].map(order)
    base = alt.Chart(long)
    ex = alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(labelAngle=-25, labelLimit=220))
    ey = alt.Y("v:Q", title="scaled to the range seen")
    layers = [
        base.mark_line(strokeWidth=1)
        .encode(
            x=ex,
            y=ey,
            detail="key:N",
            color=alt.Color("family:N", scale=alt.Scale(scheme="tableau10")),
            opacity=alt.condition("datum.on_front", alt.value(0.8), alt.value(0.12)),
            order="axis_order:Q",
            tooltip=[alt.Tooltip("key:N", title="trial"), "family:N"],
        )
        .add_params(_pick())
    ]
    if selected is not None and (long["key"] == selected).any():
        layers.append(
            alt.Chart(long[long["key"] == selected])
            .mark_line(strokeWidth=4, color=SELECTED_COLOUR)
            .encode(x=ex, y=ey, order="axis_order:Q")
        )
    return alt.layer(*layers).properties(height=height)


def _padded(x: list, n: int) -> list:
    x = list(x)[:n]
    return x + [np.nan] * (n - len(x))


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
            color=alt.Color("part:N", title=None, scale=alt.Scale(scheme="tableau10")),
            row=alt.Row(
                "part:N", title=None, sort=None, header=alt.Header(labelAngle=0, labelAlign="left")
            ),
            tooltip=["part", "name", alt.Tooltip("amount:Q", format=".3f")],
        )
        .resolve_scale(y="independent")
        .properties(height=alt.Step(26))
    )


def convergence_chart(history: pd.DataFrame) -> alt.Chart:
    """Hypervolume against the number of evaluations, one line per run."""
    return (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("evaluations:Q", title="evaluations"),
            y=alt.Y("hypervolume:Q", title="hypervolume (study-normalised)"),
            color=alt.Color("run:N", title="run (family)", scale=alt.Scale(scheme="tableau10")),
            strokeDash=alt.StrokeDash("driver:N"),
            tooltip=["run", "driver", "evaluations", alt.Tooltip("hypervolume:Q", format=".4f")],
        )
        .properties(height=340)
    )


def overlay_fronts(fronts: pd.DataFrame, x: str, y: str, sx: str, sy: str) -> alt.LayerChart:
    """Pareto fronts (in ``x``, ``y``) of several families or studies; column ``source``."""
    ex = alt.X(f"{x}:Q", title=sense_title(x, sx), scale=alt.Scale(zero=False))
    ey = alt.Y(f"{y}:Q", title=sense_title(y, sy), scale=alt.Scale(zero=False))
    colour = alt.Color("source:N", title="front of", scale=alt.Scale(scheme="tableau10"))
    base = alt.Chart(fronts).encode(x=ex, y=ey, color=colour)
    return (
        base.mark_line(interpolate=_step(sx)).encode(order="order:Q")
        + base.mark_point(filled=True, size=60).encode(
            tooltip=[
                "source",
                "key",
                alt.Tooltip(f"{x}:Q", format=".4g"),
                alt.Tooltip(f"{y}:Q", format=".4g"),
            ]
        )
    ).properties(height=380)
