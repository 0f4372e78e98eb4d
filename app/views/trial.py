"""Trial detail: x as its family means it, objectives against the base, sample generations."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app import charts, state
from app.data import format_value, samples_table, x_caption, x_table

if TYPE_CHECKING:
    from merging.export import StudyExport

st.title("Trial detail")


def export_panel(data, row, key: str) -> None:
    """Export the trial into the study's own folder (``exports/RUN-NUMBER`` beside a SQLite
    study) with :func:`merging.export.export_in_study`, the same code as ``paretomerge
    export``; never anywhere else. Off where ``state.export_off`` says why. A folder already
    there is replaced only when it is an earlier export and the user ticks the box; a folder
    holding anything else, never."""
    from merging.export import export_command, export_in_study, study_export

    there = study_export(data.ref.storage, data.ref.name, key, row["run"], row["trial"])
    target = there.target
    if there.status == "exported":
        st.success(f"Exported to `{target}`")
        st.caption(", ".join(there.present))
        return
    off = state.export_off()
    if off is not None:
        st.info(f"Exporting from the browser is off: {off}.")
        st.code(export_command(data.ref.storage, data.ref.name, key, target), language="bash")
        return
    if not _show_folder(there):
        return
    replace = there.status == "earlier" and st.checkbox(
        "Replace it with this trial's export", key=f"replace_export|{data.ref.id}|{key}"
    )
    clicked = st.button(
        "Export this trial",
        icon=":material/download:",
        disabled=there.status == "earlier" and not replace,
        help="A Hugging Face folder, a mergekit YAML that reproduces the weights, and a model "
        f"card with these scores, written to {target}",
    )
    st.caption(f"Writes `{target}` (as `paretomerge export --trial '{key}'` does).")
    if clicked:
        with st.spinner(f"Exporting {key}: loading the study's models, merging, writing..."):
            try:
                # written beside the target and moved into place when complete; an earlier
                # export there is replaced only as confirmed
                export_in_study(data.ref.storage, data.ref.name, key, replace=replace)
            except Exception as err:  # shown on the page, the dashboard keeps running
                st.error(f"Export failed: {type(err).__name__}: {err}")
                return
        st.rerun()


def _show_folder(there: StudyExport) -> bool:
    """Say what the trial's export folder holds; whether an export may be written there."""
    target = there.target
    if there.status == "outside":
        st.error(f"`{target}` is not a folder in the study's exports folder `{there.folder}`.")
    elif there.status == "not_a_folder":
        st.warning(f"`{target}` is a file: move it away to export this trial there.")
    elif there.status == "foreign":
        present = there.present
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        st.warning(
            f"`{target}` holds files that are not an export ({shown}): move them away to "
            "export this trial there."
        )
    elif there.status == "earlier":
        marker = there.marker
        what = (
            f"the export of trial {marker.get('trial')} of study {marker.get('study')}"
            if marker
            else "an earlier export, unfinished or from an older paretomerge"
        )
        st.warning(f"`{target}` already holds {what}.")
    return there.status in ("absent", "earlier")


data = state.current_data()

key = state.trial_picker(data, state.selected_trial(data))
row = data.trials.set_index("key").loc[key]
details = data.details[key]
base = (data.reference or {}).get("values")
base_err = (data.reference or {}).get("stderr")

st.markdown(
    f"**{key}** · family **{row['family']}** · driver **{row['driver']}** · "
    f"front rank **{row['rank']}**"
    + (" · **knee of the front**" if row["knee"] else "")
    + f" · P(non-dominated) **{row['p_nondominated']:.2f}**"
)
used = row["prompts_used"]
raced = details.get("raced_out")
st.caption(
    f"P(non-dominated) by {data.uncertainty}."
    + ("" if pd.isna(used) else f" Scored on {int(used)} prompts.")
    + (
        f" Raced out: an earlier trial dominates it with probability "
        f"{details.get('p_dominated', float('nan')):.2f} on those prompts (most likely trial "
        f"{details.get('raced_out_by')}); its values are the base's plus its paired "
        "difference from the base."
        if raced
        else ""
    )
)
n_objectives = len(data.objectives)
per_row = math.ceil(n_objectives / math.ceil(n_objectives / 3))  # at most 3, rows balanced
columns = [c for start in range(0, n_objectives, per_row) for c in st.columns(per_row)]
for col, o, s in zip(columns, data.objectives, data.senses, strict=False):
    paired = row[f"{o}_vs_base_text"]
    delta = None if base is None else f"{row[o] - base[data.objectives.index(o)]:+.4g}"
    delta = paired or delta
    col.metric(
        f"{o} ({'higher' if s == 'max' else 'lower'} is better)",
        format_value(row[o], row[f"{o}_stderr"]),
        delta=None if delta is None else f"{delta} vs base",
        delta_color="normal" if s == "max" else "inverse",
        help="difference from the base model [paired 95% interval over the same prompts]"
        if paired
        else None,
    )
if base is not None:
    st.caption(
        "Base model: "
        + ", ".join(
            f"{o} {format_value(v, e)}"
            for o, v, e in zip(data.objectives, base, base_err or [None] * len(base), strict=True)
        )
    )

left, right = st.columns([3, 2])
with left:
    st.subheader("x")
    experts = data.experts[row["run"]]
    table = x_table(details, experts)
    st.caption(f"{row['family']}: {x_caption(row['family'])}")
    st.altair_chart(charts.x_chart(table), width="stretch")
    curve = details.get("learning_curve")
    if curve:
        preference = ", ".join(
            f"{o} {w:.2f}" for o, w in zip(data.objectives, details["preference"], strict=True)
        )
        st.caption(
            f"Learned by gradient descent (driver {row['driver']}) for "
            f"the preference {preference}, in {details.get('learn_s', '?')} s; the losses of "
            "the objectives' stand-ins by step:"
        )
        st.altair_chart(charts.learning_curve_chart(curve), width="stretch")
with right:
    st.subheader("Evaluation")
    timings = details.get("timings") or {}
    facts = {
        "trial number": int(row["trial"]),
        "evaluation in its run": int(row["evaluation"]),
        "completed": str(row["completed_at"]),
        "worker": details.get("worker", "—"),
        "from cache": details.get("cached", False),
        "evaluation hash": str(details.get("eval_hash", "—"))[:16],
        **{f"{k} (s)": round(float(v), 2) for k, v in timings.items()},
    }
    st.dataframe(
        pd.DataFrame({"": list(facts), "value": [str(v) for v in facts.values()]}),
        hide_index=True,
        width="stretch",
    )
    export_panel(data, row, key)

st.subheader("Sample generations, beside the base model's")
samples = samples_table(details, data.reference, data.objectives)
if samples.empty:
    st.info("This trial recorded no sample generations.")
for i, s in samples.iterrows():
    with st.expander(f"Prompt {i + 1}: {s['prompt'][:100]}", expanded=i == 0):
        st.text(s["prompt"])
        a, b = st.columns(2)
        scores = ", ".join(f"{o} {s[o]:.3g}" for o in data.objectives if pd.notna(s[o]))
        a.markdown(f"**This trial** · {scores}")
        a.text(s["response"])
        b.markdown(
            "**Base model** · "
            + ", ".join(
                f"{o} {s[f'base {o}']:.3g}" for o in data.objectives if pd.notna(s[f"base {o}"])
            )
        )
        b.text(s["base response"] if isinstance(s["base response"], str) else "(not recorded)")
