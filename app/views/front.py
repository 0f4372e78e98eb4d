"""Front explorer: each run's hypervolume, every pair of objectives, the scatter matrix and
parallel coordinates, the table of the front."""

from __future__ import annotations

import math
from itertools import combinations

import streamlit as st

from app import charts, state
from app.data import format_value, interval_text, x_rows

ERROR_BARS_UP_TO = 500

st.title("Front explorer")
data = state.current_data()
ref = data.ref

selected = state.selected_trial(data)
objs, senses = data.objectives, data.senses

with_trials = [r.label for r in data.runs if r.completed]
runs = st.multiselect(  # a row of its own: its chips are run names, which can be long
    "Runs",
    with_trials,
    default=with_trials,
    key=f"front_runs|{ref.id}",
)
with st.container(horizontal=True):
    colour_by = st.selectbox(
        "Colour by",
        ["run", "family", "driver", "p_nondominated", *objs],
        format_func=lambda c: {"p_nondominated": "P(non-dominated)"}.get(c, c),
        key="front_colour",
        help="run: each run of the study its own colour (two runs of one family, such as "
        "searched and learned layerwise, apart); family and driver group them.",
    )
    within_noise = st.slider(
        "Front within noise: P(nd) at least",
        min_value=0.0,
        max_value=1.0,
        value=0.0,
        step=0.05,
        key=f"front_noise|{ref.id}",
        help="0: ring the exactly Pareto-optimal trials. Above 0: ring, and list below, the "
        "trials whose probability of being non-dominated reaches the threshold.",
    )
    error_bars = st.toggle(
        "Standard-error bars",
        value=len(data.trials) <= ERROR_BARS_UP_TO,
        key=f"front_errors|{ref.id}",
        help=f"On by default up to {ERROR_BARS_UP_TO} trials; past that they hide the points.",
    )
trials = data.trials[data.trials["run"].isin(runs)]
if within_noise > 0:
    trials = trials.assign(on_front=trials["p_nondominated"] >= within_noise)
    ringed = f"the trials with P(non-dominated) >= {within_noise:.2f}"
else:
    ringed = f"the study's Pareto-optimal trials over all {len(objs)} objectives"

base_values = (data.reference or {}).get("values")
base = None if base_values is None else dict(zip(objs, base_values, strict=True))
shown = [r for r in data.runs if r.label in runs]
st.caption(
    "Hypervolume of each run, normalised with the study's reference point so that the runs of "
    "this study compare directly"
)
with st.container(horizontal=True):
    for r in shown:
        with st.container():
            st.metric(
                r.label,
                f"{r.hypervolume:.4f}" if math.isfinite(r.hypervolume) else "—",
                help=f"{r.label}: {r.completed} trials, {r.front_size} on the run's own front.",
            )
            if r.hypervolume_interval is not None:
                st.caption(
                    f"95% {interval_text(r.hypervolume_interval)} over prompts",
                    help="The joint bootstrap over prompts: each draw resamples the prompts "
                    "once for every trial and recomputes each run's hypervolume at this "
                    "normalisation, so the upper end can pass the best a run could reach on "
                    "the observed scale (a resampled front may beat the best observed values). "
                    "Runs whose intervals overlap may still differ: the paired differences are "
                    "in `study show`.",
                )
st.caption(
    f"{len(trials)} trials; ringed: {ringed} ({int(trials['on_front'].sum())}); grey staircase: "
    "the front of the pair shown; dark diamond: the knee of the front"
    + ("; grey cross: the base model" if base else "")
    + "; magenta: the selected trial. Hover for values, differences from the base model and "
    "P(non-dominated), the probability that the trial is "
    f"non-dominated ({data.uncertainty}). Click a point to select its trial on every chart."
)
state.trial_picker(data, selected)

pairs_tab, matrix_tab, parallel_tab = st.tabs(
    ["Pairs of objectives", "Scatter matrix", "Parallel coordinates"]
)


def show_pair(x: str, y: str, key: str, **layout) -> None:
    """One pair's chart with this page's settings, selecting trials like every chart."""
    chart = charts.front_scatter(
        trials,
        x,
        y,
        objs,
        senses,
        colour_by=colour_by,
        selected=selected,
        error_bars=error_bars,
        base=base,
        **layout,
    )
    state.chart(chart, key, selected)


with pairs_tab:
    pairs = list(combinations(range(len(objs)), 2))
    columns = st.columns(min(len(pairs), 2))
    for n, (i, j) in enumerate(pairs):
        with columns[n % len(columns)]:
            show_pair(objs[i], objs[j], f"pair_{i}_{j}")
with matrix_tab:
    st.caption(
        "Each objective against each earlier one, with standard-error bars; the colours are "
        "those of the pairs' legend."
    )
    for row in charts.matrix_cells(objs):
        for column, cell in zip(st.columns(len(row)), row, strict=True):
            if cell is not None:
                with column:
                    show_pair(
                        *cell,
                        f"matrix_{cell[0]}_{cell[1]}",
                        legend=False,
                        staircase=False,
                        height=260,
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

if within_noise == 0:
    st.subheader("Pareto-optimal trials")
else:
    st.subheader(f"Trials with P(non-dominated) >= {within_noise:.2f}")
front = trials[trials["on_front"]].sort_values("p_nondominated", ascending=False)
table = front[["key", "family", "driver"]].copy()
for o in objs:
    table[o] = [format_value(v, e) for v, e in zip(front[o], front[f"{o}_stderr"], strict=True)]
    if front[f"{o}_vs_base_text"].astype(bool).any():
        table[f"{o} − base [95%]"] = front[f"{o}_vs_base_text"]
table["P(non-dominated)"] = front["p_nondominated"].round(3)
if front["prompts_used"].notna().any():
    table["prompts"] = front["prompts_used"]
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
st.caption(
    f"P(non-dominated) by {data.uncertainty}. Differences from the base model: the trial's "
    "mean minus the base's, with a 95% interval paired over the same prompts."
)
st.page_link("views/trial.py", label=f"Open trial {selected}", icon=":material/search:")
