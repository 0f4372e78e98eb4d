"""The dashboard's pages, run headless with Streamlit's AppTest on the tiny study."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

import app
from app.data import list_studies, load_study

from .conftest import TINY_RUNS, TINY_TRIALS, storages_env

TIMEOUT = 180


@pytest.fixture
def listening():
    """Sets Streamlit's ``server.address`` as ``paretomerge dashboard --host`` does (AppTest
    runs the app in this process); 127.0.0.1, the command's default, until told otherwise."""
    from streamlit import config

    before = config.get_option("server.address")

    def listen(host: str | None) -> None:
        config.set_option("server.address", host)

    listen("127.0.0.1")
    yield listen
    listen(before)


@pytest.fixture
def dashboard(monkeypatch, tiny_study, listening):
    monkeypatch.delenv("PARETOMERGE_DASHBOARD_ALLOW_EXPORT", raising=False)

    def make(*urls: str) -> AppTest:
        for k, v in storages_env(*(urls or (tiny_study,))).items():
            monkeypatch.setenv(k, v)
        return AppTest.from_file(str(app.MAIN), default_timeout=TIMEOUT)

    return make


@pytest.fixture(scope="module")
def tiny(tiny_study):
    return load_study(list_studies([tiny_study])[0])


def charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def layer_rows(chart, name: str) -> pa.Table:
    """The rows of the chart's layer called ``name`` (from the data Streamlit sends)."""
    spec = json.loads(chart.proto.spec)
    datasets = {d.name: d.data.data for d in chart.proto.datasets}
    for layer in spec.get("layer", [spec]):
        if layer.get("name") == name:
            return pa.ipc.open_stream(datasets[layer["data"]["name"]]).read_all()
    raise KeyError(f"no layer {name!r}")


def open_page(at: AppTest, page: str) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    if page != "studies":
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
    return at


def test_studies_page_lists_runs_with_counts_and_hypervolumes(dashboard, tiny):
    at = open_page(dashboard(), "studies")
    assert at.title[0].value == "Studies"
    table = at.dataframe[0].value
    assert list(table["run"]) == TINY_RUNS
    assert set(table["trials"]) == {"12 / 12"}
    assert list(table["hypervolume"]) == pytest.approx([r.hypervolume for r in tiny.runs])
    assert list(table["hypervolume 95%"]) == [
        f"[{r.hypervolume_interval[0]:.3f}, {r.hypervolume_interval[1]:.3f}]" for r in tiny.runs
    ]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["completed trials"] == str(TINY_TRIALS)
    assert metrics["Pareto-optimal"] == str(int(tiny.trials["on_front"].sum()))
    assert at.sidebar.selectbox[0].value == "tiny @ tiny/study.db"


def test_front_explorer_draws_every_pair_with_the_front_and_the_selection(dashboard, tiny):
    at = open_page(dashboard(), "front")
    pairs = charts(at)[:3]  # then the scatter matrix and parallel coordinates
    knee = tiny.trials.loc[tiny.trials["knee"], "key"].iloc[0]
    front = set(tiny.trials.loc[tiny.trials["on_front"], "key"])
    for chart in pairs:
        rows = layer_rows(chart, "trials")
        assert rows.num_rows == TINY_TRIALS
        keys, flags = rows["key"].to_pylist(), rows["on_front"].to_pylist()
        ringed = {k for k, f in zip(keys, flags, strict=True) if f}
        assert ringed == front
        [ring] = [la for la in json.loads(chart.proto.spec)["layer"] if la.get("name") == "front"]
        assert ring["transform"] == [{"filter": "datum.on_front"}]
        assert layer_rows(chart, "selected")["key"].to_pylist() == [knee]  # the default
    titles = [
        [la["encoding"]["x"]["title"], la["encoding"]["y"]["title"]]
        for chart in pairs
        for la in json.loads(chart.proto.spec)["layer"]
        if la.get("name") == "trials"
    ]
    assert sorted(titles) == [  # two columns: the order on the page is by column
        ["harmlessness (higher is better)", "verbosity (lower is better)"],
        ["helpfulness (higher is better)", "harmlessness (higher is better)"],
        ["helpfulness (higher is better)", "verbosity (lower is better)"],
    ]
    assert len(charts(at)) == 7  # three pairs, the matrix's three cells, parallel coordinates
    assert at.selectbox(key="trial_picker|tiny @ tiny/study.db").value == knee
    # the table of Pareto-optimal trials shows P(non-dominated)
    table = at.dataframe[0].value
    assert set(table["key"]) == front
    assert table["P(non-dominated)"].between(0, 1).all()

    # choosing another trial selects it on every chart
    other = tiny.trials.loc[tiny.trials["run"] == "layerwise", "key"].iloc[3]
    at.selectbox(key="trial_picker|tiny @ tiny/study.db").set_value(other).run()
    assert not at.exception
    assert at.session_state["trial"] == other
    assert at.query_params["trial"] == [other] or at.query_params["trial"] == other
    for chart in charts(at)[:3]:
        assert layer_rows(chart, "selected")["key"].to_pylist() == [other]


def _domain(chart, channel: str) -> list[float]:
    [layer] = [la for la in json.loads(chart.proto.spec)["layer"] if la.get("name") == "trials"]
    return layer["encoding"][channel]["scale"]["domain"]


def test_front_explorer_marks_the_knee_and_the_base_and_pads_its_axes(dashboard, tiny):
    at = open_page(dashboard(), "front")
    knee = tiny.trials.loc[tiny.trials["knee"], "key"].to_list()
    base = dict(zip(tiny.objectives, tiny.reference["values"], strict=True))
    metrics = {m.label: m.value for m in at.metric}
    captions = [c.value for c in at.caption]
    for run in tiny.runs:  # each run's hypervolume, as the Studies page has it, and its interval
        assert metrics[run.label] == f"{run.hypervolume:.4f}"
        low, high = run.hypervolume_interval
        assert 0 <= low <= high
        assert f"95% [{low:.3f}, {high:.3f}] over prompts" in captions
    for chart in charts(at)[:6]:  # the pairs and the matrix's cells
        spec = json.loads(chart.proto.spec)
        [layer] = [la for la in spec["layer"] if la.get("name") == "trials"]
        x, y = layer["encoding"]["x"]["field"], layer["encoding"]["y"]["field"]
        assert x != y  # no self-pairs
        assert layer_rows(chart, "trials")["key"].to_pylist()  # all trials drawn
        [knee_layer] = [la for la in spec["layer"] if la.get("name") == "knee"]
        assert knee_layer["transform"] == [{"filter": "datum.knee"}]
        marked = layer_rows(chart, "trials").to_pandas()
        assert marked.loc[marked["knee"], "key"].to_list() == knee
        point = layer_rows(chart, "base").to_pandas()
        assert point[[x, y]].iloc[0].to_list() == pytest.approx([base[x], base[y]])
        # every point, its error bars and the base lie strictly inside the padded axes
        for field, channel in ((x, "x"), (y, "y")):
            lo, hi = _domain(chart, channel)
            err = marked[f"{field}_stderr"]
            low = min((marked[field] - err).min(), base[field])
            high = max((marked[field] + err).max(), base[field])
            assert lo < low
            assert high < hi
            assert (low - lo) == pytest.approx((hi - high), rel=1e-6)
            assert (low - lo) == pytest.approx(0.06 * (high - low), rel=1e-6)
        rules = [la for la in spec["layer"] if la.get("mark", {}).get("type") == "rule"]
        assert len(rules) == 2  # standard-error bars in x and in y
    cells = [
        tuple(
            la["encoding"][c]["field"]
            for la in json.loads(chart.proto.spec)["layer"]
            if la.get("name") == "trials"
            for c in ("x", "y")
        )
        for chart in charts(at)[3:6]
    ]
    assert sorted(cells) == sorted(
        [
            ("helpfulness", "harmlessness"),
            ("helpfulness", "verbosity"),
            ("harmlessness", "verbosity"),
        ]
    )


def test_the_selected_trial_stays_in_the_url_on_every_page(dashboard, tiny):
    """The selection is written to the URL on every page (Streamlit clears the URL's
    parameters on a page switch), and a new session given only the URL selects it again."""
    other = tiny.trials.loc[tiny.trials["run"] == "interpolation", "key"].iloc[5]
    at = open_page(dashboard(), "front")
    at.selectbox(key="trial_picker|tiny @ tiny/study.db").set_value(other).run()
    for page in ("studies", "convergence", "trial", "front"):
        at.query_params.pop("trial", None)  # what a page switch in the browser does
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
        assert at.query_params["trial"] in (other, [other]), page
    reload = dashboard()  # a reload: a new session that has only the URL
    reload.query_params["trial"] = other
    reload.run()
    reload.switch_page("views/trial.py").run()
    assert reload.session_state["trial"] == other
    assert other in reload.markdown[0].value


def test_trial_detail_shows_x_by_family_and_samples_beside_the_base(dashboard, tiny):
    at = dashboard()
    at.run()
    for run, mark, rows in (
        ("layerwise", "rect", 6),
        ("rewards_in_context", "bar", 3),
        ("interpolation", "bar", 3),
        ("decoding", "bar", 3),
        ("ama", "rect", 6),
    ):
        key = tiny.trials.loc[tiny.trials["run"] == run, "key"].iloc[-1]
        at.session_state["trial"] = key
        at.switch_page("views/trial.py").run()
        assert not at.exception, at.exception
        assert key in at.markdown[0].value
        chart, *curve = charts(at)
        spec = json.loads(chart.proto.spec)
        marks = json.dumps(spec)
        details = tiny.details[key]
        if run == "ama":  # the learned ratios' heatmap, then the learning curve
            [curve] = curve
            steps = pa.ipc.open_stream(curve.proto.datasets[0].data.data).read_all()
            assert "total" in steps["loss"].to_pylist()
            assert steps.num_rows == sum(len(point) - 1 for point in details["learning_curve"])
            assert any("Learned by gradient descent" in c.value for c in at.caption)
        else:
            assert not curve
        assert f'"type": "{mark}"' in marks
        data = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all()
        assert data.num_rows == rows
        if run == "rewards_in_context":
            assert set(data["part"].to_pylist()) == {"desired reward"}
        if run == "decoding":
            assert set(data["part"].to_pylist()) == {"weight"}
        assert len(at.expander) == len(details["samples"])
        texts = [t.value for t in at.text]
        assert details["samples"][0]["response"] in texts
        base = {s["prompt"]: s["response"] for s in tiny.reference["samples"]}
        assert base[details["samples"][0]["prompt"]] in texts
        labels = [m.label for m in at.metric]
        assert labels == [
            "helpfulness (higher is better)",
            "harmlessness (higher is better)",
            "verbosity (lower is better)",
        ]
        [export] = [b for b in at.button if b.label == "Export this trial"]
        assert not export.disabled


def test_convergence_page_plots_hypervolume_per_evaluation_and_overlays(dashboard, tiny):
    at = open_page(dashboard(), "convergence")
    hv_chart, overlay = charts(at)
    data = pa.ipc.open_stream(hv_chart.proto.datasets[0].data.data).read_all()
    assert data.num_rows == TINY_TRIALS  # 12 evaluations a run
    assert set(data["run"].to_pylist()) == set(TINY_RUNS)
    x_axis = json.loads(hv_chart.proto.spec)["encoding"]["x"]["axis"]
    assert x_axis == {"format": "d", "tickMinStep": 1}  # whole evaluations
    fronts = pa.ipc.open_stream(overlay.proto.datasets[0].data.data).read_all()
    assert set(fronts["source"].to_pylist()) == {f"tiny / {run}" for run in TINY_RUNS}


def test_switching_study_keeps_each_selection_consistent(dashboard, tiny_study, large_study):
    at = open_page(dashboard(tiny_study, large_study), "front")
    ids = at.sidebar.selectbox[0].options
    assert ids == ["tiny @ tiny/study.db", "large @ " + ids[1].split(" @ ")[1]]
    at.sidebar.selectbox[0].set_value(ids[1]).run()
    assert not at.exception, at.exception
    # more than 5,000 trials: every chart gets all of them (Altair's row limit is off)
    for chart in charts(at)[:3]:
        assert layer_rows(chart, "trials").num_rows == 6000
    assert at.session_state["trial"].startswith("interpolation#")
    at.switch_page("views/studies.py").run()
    [caption] = [c.value for c in at.caption if "hypervolume" in c.value.lower()]
    assert "Hypervolumes of different studies are not comparable" in caption


def test_no_study_gives_a_hint_not_an_error(dashboard, tmp_path):
    from pareto.storage import open_storage, sqlite_url

    url = sqlite_url(tmp_path / "empty.db")
    open_storage(url, create=True)
    at = open_page(dashboard(url), "studies")
    assert "paretomerge quickstart" in at.info[0].value


def test_what_the_browser_sends_only_chooses_among_known_studies(dashboard, tiny):
    at = dashboard()
    at.query_params["study"] = "../../etc/passwd"
    at.query_params["trial"] = "/etc/shadow"
    at.run()
    assert not at.exception
    assert at.session_state["study"] == "tiny @ tiny/study.db"
    at.switch_page("views/trial.py").run()
    assert not at.exception
    knee = tiny.trials.loc[tiny.trials["knee"], "key"].iloc[0]
    assert at.session_state["trial"] == knee  # unknown values fall back, never open files


def test_an_unreadable_or_empty_study_does_not_hide_the_others(dashboard, tiny_study, tmp_path):
    """A storage whose study cannot be shown (an objective named like a dashboard column),
    and a study whose only run has no completed trial: the Studies page warns and lists the
    rest; the front explorer of the empty study says so."""
    from pareto.run_spec import RunSpec
    from pareto.run_store import RunStore
    from pareto.spaces import Simplex, describe_space
    from pareto.storage import open_storage, sqlite_url

    def spec(study: str, objectives: tuple[str, ...]) -> RunSpec:
        return RunSpec(
            study=study, label="interpolation", family="interpolation", experts=("a", "b"),
            driver="random", budget=3, space=describe_space(Simplex(2)),
            objectives=objectives, senses=("max", "min"),
        )  # fmt: skip

    bad = sqlite_url(tmp_path / "bad" / "study.db")
    run = RunStore.create_or_open(open_storage(bad, create=True), spec("clash", ("rank", "cost")))
    trial = run.ask()
    from pareto.trial_records import Outcome

    run.complete(trial, [0.5, 0.5], Outcome({"rank": 1.0, "cost": 2.0}, {"rank": 0, "cost": 0}))
    empty = sqlite_url(tmp_path / "empty" / "study.db")
    RunStore.create_or_open(open_storage(empty, create=True), spec("waiting", ("quality", "cost")))
    at = open_page(dashboard(tiny_study, bad, empty), "studies")
    assert any("clash @ bad/study.db cannot be shown" in w.value for w in at.warning)
    assert list(at.dataframe[0].value["run"]) == [*TINY_RUNS, "interpolation"]
    at.sidebar.selectbox[0].set_value("waiting @ empty/study.db").run()
    at.switch_page("views/front.py").run()
    assert not at.exception
    assert "no completed trial yet" in at.info[0].value


def test_export_button_writes_the_trial_into_the_study_folder(dashboard, tiny, tiny_study):
    from pathlib import Path

    key = tiny.trials.loc[tiny.trials["run"] == "layerwise", "key"].iloc[0]
    at = dashboard()
    at.run()
    at.session_state["trial"] = key
    at.switch_page("views/trial.py").run()
    [export] = [b for b in at.button if b.label == "Export this trial"]
    export.click().run()
    assert not at.exception, at.exception
    folder = Path(tiny_study.removeprefix("sqlite:///")).parent / "exports" / key.replace("#", "-")
    assert any(str(folder) in s.value for s in at.success)
    assert {"config.json", "README.md", "mergekit_config.yml", "export.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert f"--trial '{key}'" in (folder / "README.md").read_text()


def _trial_page(at: AppTest, key: str) -> AppTest:
    at.run()
    at.session_state["trial"] = key
    at.switch_page("views/trial.py").run()
    assert not at.exception, at.exception
    return at


def _export_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.label == "Export this trial"]


def test_export_is_off_where_other_machines_can_reach_the_dashboard(
    dashboard, listening, tiny, monkeypatch
):
    key = tiny.trials.loc[tiny.trials["run"] == "interpolation", "key"].iloc[1]
    for host in ("0.0.0.0", "192.168.1.20", None):  # None: Streamlit's every address
        listening(host)
        at = _trial_page(dashboard(), key)
        assert _export_buttons(at) == []
        [info] = [i.value for i in at.info if "Exporting from the browser is off" in i.value]
        assert f"listens on {host or 'every address'}" in info
        assert "--allow-export" in info
        assert f"--trial '{key}' --out " in at.code[0].value
    monkeypatch.setenv("PARETOMERGE_DASHBOARD_ALLOW_EXPORT", "1")  # --allow-export
    at = _trial_page(dashboard(), key)
    [button] = _export_buttons(at)
    assert not button.disabled
    listening("::1")
    monkeypatch.delenv("PARETOMERGE_DASHBOARD_ALLOW_EXPORT")
    assert len(_export_buttons(_trial_page(dashboard(), key))) == 1


def test_export_replaces_only_an_earlier_export_and_only_when_told(dashboard, tiny_study, tmp_path):
    """A folder of other files is never replaced; another trial's export is, once the box is
    ticked; this trial's finished export shows as exported."""
    import shutil

    from merging.export import export_marker, is_finished_export, write_marker

    db = tmp_path / "runs" / "tiny" / "study.db"
    db.parent.mkdir(parents=True)
    shutil.copy(tiny_study.removeprefix("sqlite:///"), db)
    key = "interpolation#2"
    target = tmp_path / "runs" / "tiny" / "exports" / "interpolation-2"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    at = _trial_page(dashboard(f"sqlite:///{db}"), key)
    assert _export_buttons(at) == []
    assert "holds files that are not an export (notes.txt)" in at.warning[0].value
    assert [p.name for p in target.iterdir()] == ["notes.txt"]

    (target / "notes.txt").unlink()
    write_marker(target, "tiny", trial="layerwise#1", weights=True)
    at.run()
    assert "already holds the export of trial layerwise#1 of study tiny" in at.warning[0].value
    [button] = _export_buttons(at)
    assert button.disabled  # until the box is ticked
    at.checkbox[0].check().run()
    [button] = _export_buttons(at)
    assert not button.disabled
    button.click().run()
    assert not at.exception, at.exception
    assert not at.error, at.error[0].value
    assert is_finished_export(target, study="tiny", trial=key)
    assert export_marker(target)["weights"] is True
    assert (target / "config.json").is_file()
    assert any(str(target) in s.value for s in at.success)
    assert _export_buttons(at) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["interpolation-2"]


def test_reads_are_kept_until_refresh_and_live_rereads(
    dashboard, tiny_study, tmp_path, monkeypatch
):
    """Without Live a study is read once (until "Refresh now"); with Live it is read again
    every LIVE_SECONDS, and the selected trial stays selected."""
    import shutil

    import optuna

    from app import state

    db = tmp_path / "runs" / "tiny" / "study.db"
    db.parent.mkdir(parents=True)
    shutil.copy(tiny_study.removeprefix("sqlite:///"), db)
    url = f"sqlite:///{db}"
    clock = [1_000_000.0]
    monkeypatch.setattr(state.time, "time", lambda: clock[0])
    at = open_page(dashboard(url), "studies")
    completed = {m.label: m.value for m in at.metric}["completed trials"]
    at.session_state["trial"] = "layerwise#3"

    study = optuna.load_study(study_name="tiny/layerwise", storage=url)
    done = study.trials[3]
    study.add_trial(
        optuna.trial.create_trial(
            params=done.params, distributions=done.distributions, values=done.values,
            user_attrs=done.user_attrs,
        )
    )  # fmt: skip
    at.run()
    assert {m.label: m.value for m in at.metric}["completed trials"] == completed  # kept
    at.sidebar.toggle[0].set_value(True).run()  # Live
    clock[0] += state.LIVE_SECONDS
    at.run()
    assert {m.label: m.value for m in at.metric}["completed trials"] == str(int(completed) + 1)
    assert at.session_state["trial"] == "layerwise#3"
