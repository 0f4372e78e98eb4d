"""The dashboard's session: which storages it reads, the selected study and trial, caching.

The selection lives in ``st.session_state`` and is mirrored in the page URL (``?study=...&
trial=...``), so a rerun, a page switch or a browser reload keeps it. Storages come from the
``paretomerge dashboard`` command (environment variable ``PARETOMERGE_DASHBOARD_STORAGES``, a
JSON list of URLs), never from the browser: a visitor can only choose among them.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from app.data import StudyData, StudyRef, discover_storages, list_studies, load_study

STORAGES_ENV = "PARETOMERGE_DASHBOARD_STORAGES"
LIVE_SECONDS = 10
"""How often a live page re-reads its study, and how long a read is cached."""


def storages() -> list[str]:
    text = os.environ.get(STORAGES_ENV)
    if text:
        return list(json.loads(text))
    return discover_storages(os.getcwd())


@st.cache_data(ttl=LIVE_SECONDS, show_spinner="Looking for studies...")
def cached_studies(urls: tuple[str, ...]) -> list[StudyRef]:
    return list_studies(list(urls))


@st.cache_data(ttl=LIVE_SECONDS, show_spinner="Reading the study...", max_entries=16)
def cached_study(ref: StudyRef) -> StudyData:
    return load_study(ref)


def refresh() -> None:
    """Forget cached reads: the next access reads the storage again."""
    cached_studies.clear()
    cached_study.clear()


def studies() -> list[StudyRef]:
    return cached_studies(tuple(storages()))


def current_study() -> StudyRef | None:
    """The selected study (first one when nothing is selected yet)."""
    found = studies()
    if not found:
        return None
    by_id = {r.id: r for r in found}
    wanted = st.session_state.get("study") or st.query_params.get("study")
    ref = by_id.get(wanted, found[0])
    st.session_state["study"] = ref.id
    st.query_params["study"] = ref.id
    return ref


def select_study(study_id: str) -> None:
    if st.session_state.get("study") != study_id:
        st.session_state["study"] = study_id
        st.query_params["study"] = study_id
        st.session_state.pop("trial", None)
        st.query_params.pop("trial", None)


def selected_trial(data: StudyData) -> str | None:
    """The selected trial's key if it belongs to ``data``; else the knee, else None."""
    keys = set(data.trials["key"])
    for wanted in (st.session_state.get("trial"), st.query_params.get("trial")):
        if wanted in keys:
            st.session_state["trial"] = wanted
            return wanted
    knee = data.trials.loc[data.trials["knee"], "key"]
    if len(knee):
        select_trial(knee.iloc[0])
        return knee.iloc[0]
    return None


def select_trial(key: str) -> None:
    st.session_state["trial"] = key
    st.query_params["trial"] = key


def chart(chart, name: str, selected: str | None) -> None:
    """Show an Altair chart whose point clicks select a trial everywhere.

    The widget key includes the selected trial, so that every chart starts with an empty
    selection after a change made on another chart, and a click on any point registers.
    """
    from app.charts import SELECTION

    event = st.altair_chart(
        chart,
        on_select="rerun",
        selection_mode=[SELECTION],
        key=f"{name}|{selected}",
        width="stretch",
    )
    picked = [p.get("key") for p in (event.selection.get(SELECTION) or []) if p.get("key")]
    if picked and picked[0] != selected:
        select_trial(picked[0])
        st.rerun()


def trial_picker(data: StudyData, selected: str | None, *, where=st) -> str | None:
    """A select box over every trial (the study front first), synced with the selection."""
    front = data.trials.sort_values(["rank", "p_nondominated"], ascending=[True, False])
    keys = front["key"].tolist()
    if not keys:
        return None
    labels = {
        k: f"{k}  (rank {r}, P(non-dominated) {p:.2f})"
        for k, r, p in zip(front["key"], front["rank"], front["p_nondominated"], strict=True)
    }
    widget = f"trial_picker|{data.ref.id}"
    if selected in labels:
        # always: a picker of the same key on another page is another widget, which would
        # otherwise start at its first option
        st.session_state[widget] = selected
    return where.selectbox(
        "Selected trial",
        keys,
        key=widget,
        format_func=labels.__getitem__,
        on_change=lambda: select_trial(st.session_state[widget]),
        help="Click a point on any chart to select its trial, or choose it here.",
    )
