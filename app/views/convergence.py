"""Convergence and comparison: hypervolume per evaluation, fronts overlaid across runs and
studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import charts, state
from app.data import pair_front

st.title("Convergence and comparison")
data = state.current_data()
ref = data.ref

st.subheader("Hypervolume against evaluations")
st.caption(
    "Hypervolume of each run's first k evaluations, with the study's reference point and "
    "normalisation (so runs of one study compare directly)."
)
if data.history is None or data.history.empty:
    st.info("No completed trial yet.")
else:
    st.altair_chart(charts.convergence_chart(data.history), width="stretch")

st.subheader("Fronts overlaid")
objs, senses = data.objectives, data.senses
sources: dict[str, tuple] = {}
for r in state.studies():
    d = data if r == ref else state.readable_study(r)
    if d is None or d.objectives != objs or d.senses != senses:
        continue
    for run in d.runs:
        if not run.completed:
            continue
        sources[f"{r.name} / {run.label}"] = (r, run.label)
    if len(d.runs) > 1:
        sources[f"{r.name} (all runs)"] = (r, None)
default = [s for s, (r, label) in sources.items() if r == ref and label is not None]
with st.container(horizontal=True):
    chosen = st.multiselect("Fronts of", list(sources), default=default, key="overlay_sources")
    xo = st.selectbox("x axis", objs, index=0, key="overlay_x")
    yo = st.selectbox("y axis", objs, index=min(1, len(objs) - 1), key="overlay_y")
sx, sy = senses[objs.index(xo)], senses[objs.index(yo)]
frames = []
for name in chosen if xo != yo else []:
    r, label = sources[name]
    trials = state.cached_study(r).trials
    if label is not None:
        trials = trials[trials["run"] == label]
    front = pair_front(trials, xo, yo, (sx, sy))
    frames.append(
        pd.DataFrame(
            {
                "source": name,
                "key": front["key"],
                xo: front[xo],
                yo: front[yo],
                "order": np.arange(len(front)),
            }
        )
    )
if xo == yo:
    st.info("Choose two different objectives.")
elif frames:
    st.altair_chart(
        charts.overlay_fronts(pd.concat(frames, ignore_index=True), xo, yo, sx, sy),
        width="stretch",
    )
    st.caption(
        f"Each front is non-dominated in {xo} and {yo} only. Other studies appear here when "
        "they have the same objectives and senses."
    )
