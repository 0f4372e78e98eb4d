"""The dashboard's tables: what load_study derives from a study, checked against pareto."""

from __future__ import annotations

import numpy as np
import pytest

from app.data import (
    list_studies,
    load_study,
    pair_front,
    samples_table,
    storage_label,
    x_rows,
)
from pareto.dominance import nondominated_sort, pareto_mask
from pareto.report import study_report
from pareto.runs import open_runs
from pareto.storage import open_storage

from .conftest import TINY_RUNS, TINY_TRIALS


@pytest.fixture(scope="module")
def tiny(tiny_study):
    [ref] = list_studies([tiny_study])
    return load_study(ref)


def test_tiny_study_table_matches_the_store_and_pareto(tiny, tiny_study):
    runs = open_runs(open_storage(tiny_study), "tiny")
    assert tiny.ref.name == "tiny"
    assert storage_label(tiny_study) == "tiny/study.db"
    assert tiny.objectives == ("helpfulness", "harmlessness", "verbosity")
    assert [r.label for r in tiny.runs] == TINY_RUNS
    assert all(r.completed == r.budget == 12 and r.failed == 0 for r in tiny.runs)
    assert len(tiny.trials) == TINY_TRIALS
    values = tiny.trials[list(tiny.objectives)].to_numpy()
    expected = np.vstack([r.results().values for r in runs])
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(tiny.trials["on_front"], pareto_mask(values, tiny.senses))
    np.testing.assert_array_equal(tiny.trials["rank"], nondominated_sort(values, tiny.senses) + 1)
    assert tiny.trials["knee"].sum() == 1
    assert tiny.trials.loc[tiny.trials["knee"], "on_front"].all()
    p = tiny.trials["p_nondominated"]
    assert ((p >= 0) & (p <= 1)).all()
    # hypervolumes are the report's; each run's history ends at its hypervolume
    report = study_report([r.results() for r in runs])
    for run, row in zip(tiny.runs, report.runs, strict=True):
        assert run.hypervolume == pytest.approx(row.hypervolume)
        last = tiny.history[tiny.history["run"] == run.label].iloc[-1]
        assert last["evaluations"] == 12
        assert last["hypervolume"] == pytest.approx(row.hypervolume)
    assert len(tiny.reference["values"]) == 3


def test_tiny_study_is_read_with_paired_uncertainty(tiny):
    """The tiny study kept per-prompt scores: paired differences from the base with intervals
    that hold them, and identical trials sharing one P(non-dominated)."""
    from pareto.report import PAIRED

    assert tiny.uncertainty == PAIRED
    t = tiny.trials
    assert (t["prompts_used"] == 8).all()
    base = np.array(tiny.reference["values"])
    for j, o in enumerate(tiny.objectives):
        np.testing.assert_allclose(t[f"{o}_vs_base"], t[o] - base[j], atol=1e-9)
        assert (t[f"{o}_vs_base_low"] <= t[f"{o}_vs_base"] + 1e-12).all()
        assert (t[f"{o}_vs_base"] <= t[f"{o}_vs_base_high"] + 1e-12).all()
        assert t[f"{o}_vs_base_text"].str.match(r"^[+-]").all()
    same = t.groupby([*tiny.objectives, "run"])["p_nondominated"].nunique()
    assert (same == 1).all()


def test_x_is_shown_the_way_each_family_means_it(tiny):
    by_run = {r: tiny.trials.loc[tiny.trials["run"] == r, "key"].iloc[0] for r in tiny.experts}
    inter = x_rows(tiny.details[by_run["interpolation"]], tiny.experts["interpolation"])
    assert [g for g, *_ in inter] == ["weight"] * 3
    assert [n for _, n, _ in inter] == ["helpfulness", "harmlessness", "concise"]
    assert sum(v for *_, v in inter) == pytest.approx(1.0)
    np.testing.assert_allclose([v for *_, v in inter], tiny.details[by_run["interpolation"]]["x"])
    layer = x_rows(tiny.details[by_run["layerwise"]], tiny.experts["layerwise"])
    assert [g for g, *_ in layer] == ["block 0"] * 3 + ["block 1"] * 3
    for block in ("block 0", "block 1"):
        assert sum(v for g, _, v in layer if g == block) == pytest.approx(1.0)
    ric = tiny.details[by_run["rewards_in_context"]]
    rows = x_rows(ric, tiny.experts["rewards_in_context"])
    assert [(g, n) for g, n, _ in rows] == [
        ("desired reward", o) for o in ("helpfulness", "harmlessness", "verbosity")
    ]
    np.testing.assert_allclose([v for *_, v in rows], ric["x"])  # mapping "rewards": x itself


def test_samples_sit_beside_the_base_model_for_the_same_prompt(tiny):
    key = tiny.trials["key"].iloc[0]
    table = samples_table(tiny.details[key], tiny.reference, tiny.objectives)
    base = {s["prompt"]: s for s in tiny.reference["samples"]}
    assert len(table) == len(tiny.details[key]["samples"]) >= 1
    for _, row in table.iterrows():
        assert row["base response"] == base[row["prompt"]]["response"]
        assert row["base verbosity"] == base[row["prompt"]]["scores"]["verbosity"]


def test_an_empty_answer_reads_empty_not_blank(tiny):
    key = tiny.trials["key"].iloc[0]
    details = {**tiny.details[key]}
    details["samples"] = [{**s, "response": " \n"} for s in details["samples"]]
    table = samples_table(details, tiny.reference, tiny.objectives)
    assert set(table["response"]) == {"(empty)"}
    assert samples_table(details, None, tiny.objectives)["base response"].isna().all()


def test_pair_front_is_the_brute_force_front_of_two_objectives():
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.integers(0, 6, (60, 2)), columns=["a", "b"]).astype(float)
    front = pair_front(frame, "a", "b", ("max", "min"))
    pts = frame.to_numpy()
    brute = [
        i
        for i, p in enumerate(pts)
        if not any(q[0] >= p[0] and q[1] <= p[1] and (q != p).any() for q in pts)
    ]
    assert sorted(front.index) == brute
    assert list(front["a"]) == sorted(front["a"])  # sorted along x, for the staircase


def test_a_large_study_loads(large_study):
    [ref] = list_studies([large_study])
    data = load_study(ref)
    assert len(data.trials) == 6000
    # the history is capped at 200 hypervolumes, and ends at the full run
    assert len(data.history) == 200
    assert data.history["evaluations"].iloc[-1] == 6000
    # a study without per-prompt scores falls back to independent errors, and says so
    from pareto.report import INDEPENDENT

    assert data.uncertainty == INDEPENDENT
    assert (data.trials["helpfulness_vs_base_text"] == "").all()
    assert data.trials["prompts_used"].isna().all()


def test_storage_labels_are_distinct_and_storages_listed_once(tmp_path):
    from app.data import storage_labels

    a = f"sqlite:///{tmp_path}/a/runs/tiny/study.db"
    b = f"sqlite:///{tmp_path}/b/runs/tiny/study.db"
    labels = storage_labels([a, b, a])
    assert list(labels) == [a, b]
    assert labels == {a: "a/runs/tiny/study.db", b: "b/runs/tiny/study.db"}
    assert storage_labels(["postgresql+psycopg://me:secret@db:5432/s"]) == {
        "postgresql+psycopg://me:secret@db:5432/s": "postgresql+psycopg://me:***@db:5432/s"
    }


def test_the_front_is_coloured_by_run_so_learned_and_searched_layerwise_stay_apart(tiny):
    """``ama`` and the searched ``layerwise`` are one family; the default colour is the run, so
    each gets its own legend entry (colouring by family puts both under ``layerwise``)."""
    from app.charts import front_scatter

    objs, senses = tiny.objectives, tiny.senses
    by_run = front_scatter(tiny.trials, objs[0], objs[1], objs, senses).to_dict()
    by_family = front_scatter(
        tiny.trials, objs[0], objs[1], objs, senses, colour_by="family"
    ).to_dict()

    def colour_field(spec):
        [trials] = [layer for layer in spec["layer"] if layer.get("name") == "trials"]
        return trials["encoding"]["color"]["field"]

    assert colour_field(by_run) == "run"
    assert colour_field(by_family) == "family"
    rows = tiny.trials
    assert set(rows["run"]) == set(TINY_RUNS)
    assert set(rows.loc[rows["run"].isin(["ama", "layerwise"]), "family"]) == {"layerwise"}
