"""Studies: every study in the storages, its runs, trials, hypervolumes and last update."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import state
from app.data import interval_text, storage_labels

st.title("Studies")
found = state.studies()
if not found:
    st.info(
        "No paretomerge study in "
        + (", ".join(storage_labels(state.storages()).values()) or "./runs/*/study.db")
        + ". Run one first, for example `paretomerge quickstart` or "
        "`paretomerge study run studies/tiny.yaml`, then refresh."
    )
    st.stop()

current = state.current_study()
rows = []
for ref in found:
    data = state.readable_study(ref)
    for run in data.runs if data is not None else ():
        rows.append(
            {
                "study": ref.id,
                "run": run.label,
                "family": run.family,
                "driver": run.driver,
                "trials": f"{run.completed} / {run.budget}",
                "progress": min(run.completed / run.budget, 1.0) if run.budget else 1.0,
                "running": run.running,
                "failed": run.failed,
                "hypervolume": run.hypervolume,
                "hypervolume 95%": interval_text(run.hypervolume_interval),
                "front size": run.front_size,
                "last update": run.last_update,
            }
        )
table = pd.DataFrame(rows)
several = len({row["study"] for row in rows}) > 1
st.caption(
    "One row per run (a family searched by a driver). Hypervolumes are normalised by each "
    "study's observed range, with one reference point per study, so the runs of a study are "
    "comparable."
    + (
        " **Hypervolumes of different studies are not comparable**: each study has its own "
        "normalisation and reference point. Compare their fronts in the objectives' own units "
        "on the Convergence and comparison page."
        if several
        else ""
    )
    + " Select a row to open its study."
)
event = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key=f"studies_table|{current.id}",
    column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
        "hypervolume": st.column_config.NumberColumn(
            format="%.4f", help="normalised within its study: compare runs of one study only"
        ),
        "hypervolume 95%": st.column_config.TextColumn(
            help="the interval from the joint bootstrap over prompts (every trial resampled on "
            "the same prompts), at the study's normalisation; empty where the trials kept no "
            "per-prompt scores"
        ),
        "last update": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    },
)
chosen = event.selection.rows
if chosen and table.iloc[chosen[0]]["study"] != current.id:
    state.select_study(table.iloc[chosen[0]]["study"])
    st.rerun()

ref = current
data = state.readable_study(ref)
if data is None:
    st.stop()
st.subheader(ref.name)
cols = st.columns(4)
cols[0].metric("runs", len(data.runs))
cols[1].metric("completed trials", len(data.trials))
cols[2].metric("Pareto-optimal", int(data.trials["on_front"].sum()))
last = data.last_update
cols[3].metric("last update", last.strftime("%d %b %H:%M:%S") if last else "—")
st.markdown(
    "Objectives: "
    + ", ".join(
        f"**{o}** ({'higher' if s == 'max' else 'lower'} is better)"
        for o, s in zip(data.objectives, data.senses, strict=True)
    )
    + f" · storage `{ref.label}`"
)
st.page_link("views/front.py", label="Explore the front", icon=":material/scatter_plot:")
