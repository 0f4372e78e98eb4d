"""Altair charts of a study: fronts with error bars (also the scatter matrix's cells),
parallel coordinates, ``x`` by family, convergence and overlaid fronts.

Every chart that can select a trial carries one point selection named ``SELECTION`` on the
field ``key``; the pages turn a click into the trial selected everywhere.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from app.data import pair_front, x_rows

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


def _step(x_sense: str) -> str:
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


def _scale(domain: list[float]) -> alt.Scale:
    return alt.Scale(domain=domain, zero=False, nice=False)


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
    base: dict[str, float] | None = None,
    legend: bool = True,
    staircase: bool = True,
    height: int = 420,
) -> alt.LayerChart:
    """All trials in objectives ``x`` and ``y``: standard-error bars, the study's Pareto-optimal
    trials ringed, the front of this pair joined by a step line, the knee as a large dark
    diamond labelled "knee" (wider than the selection ring, which often sits on it), the base
    model (``base``: its value per objective) as a grey cross, the selected trial in magenta.
    Axis domains cover all of it, padded (:data:`PADDING`)."""
    sx, sy = senses[objectives.index(x)], senses[objectives.index(y)]
    cols = ["key", "family", "driver", "rank", "on_front", "knee", "p_nondominated"]
    cols += [*objectives, *(f"{o}_stderr" for o in objectives), *_tooltip_columns(objectives)]
    data = trials[cols].copy()
    data["x_lo"], data["x_hi"] = data[x] - data[f"{x}_stderr"], data[x] + data[f"{x}_stderr"]
    data["y_lo"], data["y_hi"] = data[y] - data[f"{y}_stderr"], data[y] + data[f"{y}_stderr"]
    base_xy = None if base is None else (base.get(x), base.get(y))
    if base_xy is not None and not all(v is not None and np.isfinite(v) for v in base_xy):
        base_xy = None
    extra_x, extra_y = ([base_xy[0]], [base_xy[1]]) if base_xy else ([], [])
    bars = ("x_lo", "x_hi", "y_lo", "y_hi") if error_bars else (x, x, y, y)
    x_scale = _scale(padded_domain(data[x], data[bars[0]], data[bars[1]], extra_x))
    y_scale = _scale(padded_domain(data[y], data[bars[2]], data[bars[3]], extra_y))
    ex = alt.X(f"{x}:Q", title=sense_title(x, sx), scale=x_scale)
    ey = alt.Y(f"{y}:Q", title=sense_title(y, sy), scale=y_scale)
    chart = alt.Chart(data)
    layers = []
    if error_bars:
        layers += [
            chart.mark_rule(opacity=0.25).encode(
                x=alt.X("x_lo:Q", title=sense_title(x, sx), scale=x_scale), x2="x_hi:Q", y=ey
            ),
            chart.mark_rule(opacity=0.25).encode(
                x=ex, y=alt.Y("y_lo:Q", title=sense_title(y, sy), scale=y_scale), y2="y_hi:Q"
            ),
        ]
    if staircase:
        front2d = pair_front(data, x, y, (sx, sy))
        # the step line runs from the best of one objective to the best of the other
        layers.append(
            alt.Chart(front2d.assign(order=np.arange(len(front2d))))
            .mark_line(interpolate=_step(sx), color="#555", strokeWidth=2, opacity=0.8)
            .encode(x=ex, y=ey, order="order:Q")
        )
    colour = _colour(colour_by, objectives, senses)
    if not legend:
        colour.legend = None
    layers.append(
        chart.mark_point(filled=True, size=60)
        .encode(
            x=ex,
            y=ey,
            color=colour,
            opacity=alt.condition("datum.on_front", alt.value(0.95), alt.value(0.35)),
            tooltip=_tooltip(objectives),
        )
        .add_params(_pick())
        .properties(name="trials")  # the SVG marks' group is "trials_marks"
    )
    layers.append(
        chart.transform_filter("datum.on_front")
        .mark_point(size=150, color="black", strokeWidth=1.2)
        .encode(x=ex, y=ey)
        .properties(name="front")
    )
    layers.append(
        chart.transform_filter("datum.knee")
        .mark_point(shape="diamond", size=900, color=KNEE_COLOUR, strokeWidth=2)
        .encode(x=ex, y=ey, tooltip=[alt.Tooltip("key:N", title="knee of the front")])
        .properties(name="knee")
    )
    layers.append(
        chart.transform_filter("datum.knee")
        .transform_calculate(label="'knee'")
        .mark_text(align="left", dx=16, dy=-14, color=KNEE_COLOUR, fontSize=12)
        .encode(x=ex, y=ey, text="label:N")
    )
    if base_xy is not None:
        point = alt.Chart(pd.DataFrame({x: [base_xy[0]], y: [base_xy[1]], "label": ["base"]}))
        layers.append(
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
            .properties(name="base")
        )
        layers.append(
            point.mark_text(align="left", dx=9, dy=-9, color="#444", fontSize=12).encode(
                x=ex, y=ey, text="label:N"
            )
        )
    if selected is not None and (data["key"] == selected).any():
        layers.append(
            alt.Chart(data[data["key"] == selected])
            .mark_point(size=320, color=SELECTED_COLOUR, strokeWidth=3)
            .encode(x=ex, y=ey)
            .properties(name="selected")
        )
    return alt.layer(*layers).properties(height=height, width="container")


def matrix_cells(objectives: tuple[str, ...]) -> list[list[tuple[str, str] | None]]:
    """The scatter matrix's lower triangle as rows of ``(x, y)`` cells: row ``i`` plots
    objective ``i + 1`` against each earlier one, then ``None`` for the empty cells (the
    self-pairs and the mirror images, which repeat the other cells, are left out)."""
    n = len(objectives)
    return [
        [(objectives[j], objectives[i]) if j < i else None for j in range(n - 1)]
        for i in range(1, n)
    ]


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
    ex = alt.X(f"{x}:Q", title=sense_title(x, sx), scale=_scale(padded_domain(fronts[x])))
    ey = alt.Y(f"{y}:Q", title=sense_title(y, sy), scale=_scale(padded_domain(fronts[y])))
    colour = alt.Color(
        "source:N", title="front of", scale=alt.Scale(scheme="tableau10"), legend=LEGEND
    )
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
