"""The dashboard's entry script: page set-up, the sidebar (study, refresh), navigation."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts the working folder first on sys.path: a user's own app.py or app/
# there must not shadow this package
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[0] != PACKAGE_ROOT:  # the script runs again on every interaction: insert once
    sys.path.insert(0, PACKAGE_ROOT)

import altair as alt  # noqa: E402
import streamlit as st  # noqa: E402

from app import state  # noqa: E402

VIEWS = Path(__file__).with_name("views")

st.set_page_config(page_title="paretomerge", page_icon="📈", layout="wide")
# Altair's row limit (5,000) guards notebooks against huge inline data; Streamlit ships the
# data itself, and studies may hold many more trials than that.
alt.data_transformers.disable_max_rows()

pages = st.navigation(
    [
        st.Page(VIEWS / "studies.py", title="Studies", icon=":material/table_rows:", default=True),
        st.Page(VIEWS / "front.py", title="Front explorer", icon=":material/scatter_plot:"),
        st.Page(VIEWS / "trial.py", title="Trial detail", icon=":material/search:"),
        st.Page(
            VIEWS / "convergence.py",
            title="Convergence and comparison",
            icon=":material/show_chart:",
        ),
    ]
)

with st.sidebar:
    st.markdown("### paretomerge")
    found = state.studies()
    if found:
        ref = state.current_study()
        state.keep_selection_in_url()
        ids = [r.id for r in found]
        st.session_state["study_picker"] = ref.id
        st.selectbox(
            "Study",
            ids,
            key="study_picker",
            on_change=lambda: state.select_study(st.session_state["study_picker"]),
        )
    st.toggle(
        f"Live (re-read every {state.LIVE_SECONDS} s)",
        key="live",
        help="Keep re-reading the storage while a study runs; your selection is kept.",
    )
    if st.button("Refresh now", icon=":material/refresh:"):
        state.refresh()
    studies_word = "study" if len(found) == 1 else "studies"
    st.caption(f"{len(state.storages())} storage(s), {len(found)} {studies_word}")


@st.fragment(run_every=state.LIVE_SECONDS)
def _live() -> None:
    """While live, rerun the whole page every few seconds (the selection is kept)."""
    if not st.session_state.pop("_full_run", False):
        st.rerun(scope="app")


if st.session_state.get("live"):
    st.session_state["_full_run"] = True
    _live()


pages.run()
