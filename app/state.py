"""The dashboard's session: which storages it reads, the selected study and trial, caching.

The selection lives in ``st.session_state`` and is mirrored in the page URL (``?study=...&
trial=...``), so a rerun, a page switch or a browser reload keeps it. Storages come from the
``paretomerge dashboard`` command (environment variable ``PARETOMERGE_DASHBOARD_STORAGES``, a
JSON list of URLs), never from the browser: a visitor can only choose among them. Exporting a
trial from the browser is off on an address other machines can reach, unless the command was
given ``--allow-export`` (``PARETOMERGE_DASHBOARD_ALLOW_EXPORT=1``): see ``export_off``.
"""

from __future__ import annotations

import json
import os
import time

import streamlit as st

from app.data import StudyData, StudyRef, list_studies, load_study
from pareto.storage import discover_storages

STORAGES_ENV = "PARETOMERGE_DASHBOARD_STORAGES"
ALLOW_EXPORT_ENV = "PARETOMERGE_DASHBOARD_ALLOW_EXPORT"
LIVE_SECONDS = 10
"""How often a live page re-reads the storages."""


def storages() -> list[str]:
    text = os.environ.get(STORAGES_ENV)
    if text:
        return list(json.loads(text))
    return discover_storages(os.getcwd())


def export_off() -> str | None:
    """Why the browser may not export trials here (None: it may). The address is Streamlit's
    own ``server.address`` (``paretomerge dashboard --host``; unset, Streamlit listens on
    every address): export is on at a loopback address, or with ``--allow-export``."""
    from merging.cli.dashboard import is_loopback

    host = st.get_option("server.address")
    if is_loopback(host) or os.environ.get(ALLOW_EXPORT_ENV) == "1":
        return None
    return (
        f"this dashboard listens on {host or 'every address'}, which other machines can "
        "reach; start it with `paretomerge dashboard --allow-export` to export from the "
        "browser, or export with the command below"
    )


def _tick() -> int:
    """Changes every ``LIVE_SECONDS`` while live, so reads are cached until the next tick;
    otherwise 0: reads are kept until "Refresh now"."""
    return int(time.time() // LIVE_SECONDS) if st.session_state.get("live") else 0


@st.cache_data(show_spinner="Looking for studies...", max_entries=64)
def _studies(urls: tuple[str, ...], tick: int) -> list[StudyRef]:
    return list_studies(list(urls))


@st.cache_data(show_spinner="Reading the study...", max_entries=256)
def _study(ref: StudyRef, tick: int) -> StudyData:
    return load_study(ref)


def cached_study(ref: StudyRef) -> StudyData:
    return _study(ref, _tick())


def readable_study(ref: StudyRef) -> StudyData | None:
    """The study, or None after a warning naming what is wrong with it (other studies still
    show)."""
    try:
        return cached_study(ref)
    except ValueError as err:
        st.warning(f"Study {ref.id} cannot be shown: {err}")
        return None


def refresh() -> None:
    """Forget cached reads: the next access reads the storage again."""
    _studies.clear()
    _study.clear()


def studies() -> list[StudyRef]:
    return _studies(tuple(storages()), _tick())


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


def current_data() -> StudyData:
    """The selected study's data; the page stops with a hint when there is none to show."""
    ref = current_study()
    if ref is None:
        st.info("No study yet: see the Studies page.")
        st.stop()
    data = readable_study(ref)
    if data is None:
        st.stop()
    if data.trials.empty:
        st.info(f"Study {ref.name} has no completed trial yet.")
        st.stop()
    return data


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
            select_trial(wanted)
            return wanted
    knee = data.trials.loc[data.trials["knee"], "key"]
    if len(knee):
        select_trial(knee.iloc[0])
        return knee.iloc[0]
    return None


def keep_selection_in_url() -> None:
    """Mirror the selected trial between the session and the URL on every page: Streamlit
    clears the URL's parameters on a page switch, and a reload starts a new session with
    nothing but the URL."""
    wanted = st.session_state.get("trial") or st.query_params.get("trial")
    if wanted:
        select_trial(wanted)


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
