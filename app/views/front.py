"""Front explorer: every pair of objectives, the scatter matrix and parallel coordinates."""

from __future__ import annotations

from itertools import combinations

import streamlit as st

from app import charts, state
from app.data import format_value, x_rows

ERROR_BARS_UP_TO = 500

st.title("Front explorer")
data = state.current_data()
ref = data.ref

selected = state.selected_trial(data)
objs, senses = data.objectives, data.senses

with st.container(horizontal=True):
    with_trials = [r.label for r in data.runs if r.completed]
    runs = st.multiselect(
        "Runs",
        with_trials,
        default=with_trials,
        key=f"front_runs|{ref.id}",
    )
    colour_by = st.selectbox(
        "Colour by",
        ["family", "driver", "p_nondominated", *objs],
        format_func=lambda c: {"p_nondominated": "P(non-dominated)"}.get(c, c),
        key="front_colour",
    )
    error_bars = st.toggle(
        "Standard-error bars",
        value=len(data.trials) <= ERROR_BARS_UP_TO,
        key=f"front_errors|{ref.id}",
        help=f"On by default up to {ERROR_BARS_UP_TO} trials; past that they hide the points.",
    )
trials = data.trials[data.trials["run"].isin(runs)]

st.caption(
    f"{len(trials)} trials; ringed: the study's Pareto-optimal trials over all "
    f"{len(objs)} objectives ({int(trials['on_front'].sum())}); grey staircase: the front of "
    "the pair shown; magenta: the selected trial. Hover for values and P(non-dominated), the "
    "probability that the trial is non-dominated given its standard errors. Click a point "
    "to select its trial on every chart."
)
state.trial_picker(data, selected)

pairs_tab, matrix_tab, parallel_tab = st.tabs(
    ["Pairs of objectives", "Scatter matrix", "Parallel coordinates"]
)
with pairs_tab:
    pairs = list(combinations(range(len(objs)), 2))
    columns = st.columns(min(len(pairs), 2))
    for n, (i, j) in enumerate(pairs):
        with columns[n % len(columns)]:
            state.chart(
                charts.front_scatter(
                    trials,
                    objs[i],
                    objs[j],
                    objs,
                    senses,
                    colour_by=colour_by,
                    selected=selected,
                    error_bars=error_bars,
                ),
                f"pair_{i}_{j}",
                selected,
            )
with matrix_tab:
    state.chart(
        charts.scatter_matrix(trials, objs, senses, colour_by=colour_by, selected=selected),
        "matrix",
        selected,
    )
with parallel_tab:
    run = st.selectbox(
        "Run (its x coordinates are the right-hand axes)", runs, key=f"parallel_run|{ref.id}"
    )
    if run:
        subset = trials[trials["run"] == run]
        experts = data.experts[run]
        labels = [f"{g} · {n}" for g, n, _ in x_rows(data.details[subset["key"].iloc[0]], experts)]
        state.chart(
            charts.parallel_coordinates(
                subset, data.details, objs, senses, labels, experts, selected=selected
            ),
            f"parallel_{run}",
            selected,
        )

st.subheader("Pareto-optimal trials")
front = trials[trials["on_front"]].sort_values("p_nondominated", ascending=False)
table = front[["key", "family", "driver"]].copy()
for o in objs:
    table[o] = [format_value(v, e) for v, e in zip(front[o], front[f"{o}_stderr"], strict=True)]
table["P(non-dominated)"] = front["p_nondominated"].round(3)
table["knee"] = front["knee"].map({True: "knee", False: ""})
event = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key=f"front_table|{selected}",
)
if event.selection.rows:
    state.select_trial(table.iloc[event.selection.rows[0]]["key"])
    st.rerun()
st.page_link("views/trial.py", label=f"Open trial {selected}", icon=":material/search:")
