"""The study runner: connects a study's search (``pareto.search``) to merging and evaluation.

``StudySession`` resolves a study's models (a zoo, built or reused, or the given checkpoints),
prompts and objectives once per process, keeps one resident merger per expert set, and
evaluates any run's ``x``: merge in place, generate, score. ``run_study`` drives every run of
a study to its budget; ``run_worker`` helps any process driving it, from any machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from merging.study.prompts import data_folder, load_prompts
from merging.study.spec import StudySpec, parse_study_spec
from pareto.prompt_scores import encode_scores
from pareto.spaces import describe_space
from pareto.store import (
    SCORES_ATTR,
    Outcome,
    RunSpec,
    RunStore,
    new_storage,
    open_runs,
    open_storage,
    sqlite_url,
)

CHECKPOINTS_ATTR = "checkpoints"
"""Study attribute: content hashes of the checkpoints the study evaluates."""
STUDY_FILE = "study.db"
Log = Callable[[str], None]


def default_out(spec: StudySpec) -> Path:
    """Where a study's outputs go by default: ``./runs/NAME``."""
    return Path("runs") / spec.name


def storage_url(spec: StudySpec, given: str | None, out: str | Path | None) -> str:
    """``--storage``, else the study file's ``storage``, else ``OUT/study.db`` (SQLite)."""
    if given:
        return given
    if spec.storage:
        return spec.storage
    return sqlite_url(Path(out or default_out(spec)) / STUDY_FILE)


class StudySession:
    """A study's models, prompts and objectives, loaded once; evaluates ``x`` of any run."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        data: str | None = None,
        device: str | None = None,
        log: Log = print,
        evaluate: bool = True,
        build: bool = True,
        dtype: str = "auto",
        placement: str = "auto",
        device_memory: int | None = None,
        host_memory: int | None = None,
    ):
        """``evaluate=False`` loads the models only (no prompts, no reward heads: for export);
        ``build=False`` refuses to build a missing zoo (a clear error instead of a long build).
        ``placement``, ``device_memory``, ``host_memory``: the memory plan's choices
        (:func:`merging.merger.plan_experts`); the plan of every expert set is printed, and a
        set that cannot fit refused, before any weight or reward head is loaded.
        """
        from transformers.utils import logging as hf_logging

        from merging.evaluate import Evaluator, parse_objective

        hf_logging.disable_progress_bar()  # one line per checkpoint load is noise in a study
        self.spec, self.log = spec, log
        self.device = device or spec.device
        self.dtype = dtype
        self.data = data_folder(spec, data)
        self.base, self.experts, self.ric, zoo_objectives = self._models(build)
        objectives = list(spec.objectives) or [parse_objective(o) for o in zoo_objectives]
        self.objectives = objectives
        self.prompts = load_prompts(spec.prompts, self.data, spec.resolve) if evaluate else []
        self.families = {f.run_label: self._family(f) for f in spec.families}
        self._mergers: dict[str, Any] = {}
        self._expert_sets: dict[str, Any] = {}
        self.plans = self._plan(evaluate, placement, device_memory, host_memory)
        self.evaluator = (
            Evaluator(self.prompts, objectives, spec.generation, device=self.device)
            if evaluate
            else None
        )
        self._tokenizer = None
        self._stores: dict[str, RunStore] = {}
        self._peer_scores: dict[str, dict[int, np.ndarray | None]] = {}
        self._anchor: np.ndarray | None = None

    def attach(self, runs: list[RunStore]) -> None:
        """The stored runs this session evaluates for: racing compares each candidate with
        the completed trials of its own run, and reads the base's scores from them."""
        self._stores = {run.spec.label: run for run in runs}

    # -- set-up --------------------------------------------------------------------------
    def _models(self, build: bool = True):
        spec = self.spec
        if spec.zoo is None:
            return (
                spec.resolve(spec.base),
                {k: spec.resolve(v) for k, v in spec.experts.items()},
                spec.resolve(spec.ric),
                [],
            )
        from merging.zoo import build_zoo, load_zoo

        folder = spec.resolve(spec.zoo_folder)
        try:
            zoo = load_zoo(spec.zoo, folder)
        except FileNotFoundError:
            if not build:
                raise
            self.log(f"building the {spec.zoo} zoo first (cached for later runs)")
            zoo = build_zoo(spec.zoo, data=self.data, out=folder, log=self.log)
        return zoo.base, dict(zoo.experts), zoo.ric, zoo.objective_specs()

    def _family(self, f):
        from merging.families import family_for_checkpoints

        return family_for_checkpoints(f.family, self.experts, self.ric, f.settings)

    def run_specs(self) -> list[RunSpec]:
        """One run per family of the study, as recorded in the store."""
        out = []
        for f in self.spec.families:
            family = self.families[f.run_label]
            search = f.search(self.spec.search)
            out.append(
                RunSpec(
                    study=self.spec.name,
                    label=f.run_label,
                    family=f.family,
                    family_settings=dict(f.settings.items()),
                    experts=tuple(family.experts),
                    driver=search.driver,
                    driver_settings=dict(search.settings),
                    budget=search.budget,
                    seed=search.seed,
                    space=describe_space(family.space),
                    objectives=tuple(o.name for o in self.objectives),
                    senses=tuple(o.sense for o in self.objectives),
                    details={"study_spec": self.spec.model_dump(mode="json")},
                )
            )
        return out

    def _expert_set(self, family):
        """The checkpoints ``family`` merges, inspected once per set (families that merge the
        same set share it)."""
        from merging.checkpoints import ExpertSet

        key = family.checkpoints
        if key not in self._expert_sets:
            paths = family.checkpoint_paths(self.experts, self.ric)
            self._expert_sets[key] = ExpertSet.from_paths(self.base, paths)
        return self._expert_sets[key]

    def _plan(self, evaluate: bool, placement: str, device_memory, host_memory) -> dict:
        """The memory plan of each expert set the study's families use, printed; the second
        set is planned beside the first (the session keeps both)."""
        from merging.merger import plan_experts
        from merging.plan import Generation

        keys: dict[str, Any] = {}
        whole: dict[str, bool] = {}
        for family in self.families.values():
            keys.setdefault(family.checkpoints, family)
            whole[family.checkpoints] = whole.get(family.checkpoints, False) or family.whole_tensors
        generation = (
            Generation.of_settings(self.spec.generation, len(self.prompts)) if evaluate else None
        )
        heads = [o.head for o in self.objectives] if evaluate else []
        plans, reserved = {}, 0
        for key, family in keys.items():
            plan = plan_experts(
                self._expert_set(family),
                device=self.device,
                dtype=self.dtype,
                placement=placement,
                generation=generation,
                heads=heads,
                whole_tensors=whole[key],
                device_memory=device_memory,
                host_memory=host_memory,
                reserved=reserved,
            )
            self.log(f"{key}: {plan.table()}")
            plans[key] = plan
            reserved += plan.merger_device_bytes
        return plans

    def merger(self, family):
        """The merger holding ``family``'s expert set (one per set, shared), as planned."""
        return self._merger(family)

    def _merger(self, family):
        from merging.merger import open_merger

        key = family.checkpoints
        if key not in self._mergers:
            self._mergers[key] = open_merger(
                self._expert_set(family), self.plans[key], device=self.device, dtype=self.dtype
            )
        return self._mergers[key]

    def checkpoint_hashes(self) -> dict[str, str]:
        """Content hashes of the study's checkpoints (``base``, each expert, ``ric``): what an
        export checks before writing weights, on whichever machine it runs."""
        from merging.paths import content_hash

        found = {"base": self.base, **self.experts}
        if self.ric is not None:
            found["ric"] = self.ric
        return {name: content_hash(path) for name, path in found.items()}

    def tokenizer(self):
        if self._tokenizer is None:
            from merging.policy import load_tokenizer

            self._tokenizer = load_tokenizer(self.base)
        return self._tokenizer

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, run: RunSpec, x: np.ndarray) -> Outcome:
        """Merge ``x`` of ``run``'s family in place, generate and score (racing, when the
        study races, against the run's completed trials)."""
        from merging.policy import merged_identity

        family = self.families[run.label]
        recipe = family.recipe(x)
        merger = self._merger(family)
        start = time.perf_counter()
        family.apply(recipe, merger)
        merged = time.perf_counter() - start

        def evaluate(span=None):
            return self.evaluator.evaluate(
                merger.model,
                self.tokenizer(),
                merged_identity(merger, recipe),
                prompt_transform=family.prompt_transform(recipe),
                span=span,
            )

        attrs = {
            "timings": {"merge_s": round(merged, 4)},
            "recipe": recipe.model_dump(mode="json"),
            "merge_dtype": str(merger.dtype).removeprefix("torch."),
        }
        if self.spec.racing is None:
            result = evaluate()
            attrs["timings"].update(result.timings)
            attrs.update(eval_hash=result.eval_hash, cached=result.cached, samples=result.samples)
            return Outcome(
                values={n: v.mean for n, v in result.objectives.items()},
                stderrs={n: v.stderr for n, v in result.objectives.items()},
                attrs=attrs,
                scores=result.scores,
            )
        return self._race(run, evaluate, attrs)

    def _race(self, run: RunSpec, evaluate, attrs: dict) -> Outcome:
        """Score batch by batch until a completed trial of the run surely dominates the
        candidate, or every prompt is scored (:func:`pareto.racing.race`)."""
        from merging.evaluate import mean_and_stderr
        from pareto.racing import race, raced_estimate

        names = [o.name for o in self.objectives]
        results = []

        def score_batch(lo: int, hi: int) -> np.ndarray:
            result = evaluate((lo, hi))
            results.append(result)
            return np.array([result.scores[n] for n in names], dtype=float).T

        # no base scores yet (a worker that started before the base was evaluated): a raced
        # out trial could not be estimated through them, so this one gets every prompt
        anchor = self._anchor_scores(run.label)
        peer_numbers, peers = self._peers(run.label) if anchor is not None else ([], [])
        settings = self.spec.racing
        outcome = race(score_batch, len(self.prompts), peers, run.senses, settings)
        scores = outcome.scores
        if outcome.raced_out:
            means, errs = raced_estimate(scores, anchor)
        else:
            pairs = [mean_and_stderr(scores[:, j]) for j in range(len(names))]
            means, errs = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        timings = attrs["timings"]
        for r in results:
            for key, value in r.timings.items():
                timings[key] = round(timings.get(key, 0.0) + value, 3)
        attrs.update(
            eval_hash=results[0].eval_hash,
            cached=all(r.cached for r in results),
            samples=results[0].samples,
            prompts_used=len(scores),
            raced_out=outcome.raced_out,
            p_dominated=round(outcome.p_dominated, 4),
        )
        if outcome.raced_out:
            attrs["raced_out_by"] = int(peer_numbers[outcome.by])
        return Outcome(
            values={n: float(means[j]) for j, n in enumerate(names)},
            stderrs={n: float(errs[j]) for j, n in enumerate(names)},
            attrs=attrs,
            scores={n: scores[:, j].tolist() for j, n in enumerate(names)},
        )

    def _peers(self, label: str) -> tuple[list[int], list[np.ndarray]]:
        """The run's completed trials that kept their per-prompt scores: numbers, scores."""
        from optuna.trial import TrialState

        from pareto.store import trial_attrs, trial_scores

        store = self._stores.get(label)
        if store is None:
            return [], []
        known = self._peer_scores.setdefault(label, {})
        names = [o.name for o in self.objectives]
        for t in store.trials(states=(TrialState.COMPLETE,)):
            if t.number not in known:
                known[t.number] = trial_scores(trial_attrs(t), names)
        kept = [(n, s) for n, s in known.items() if s is not None]
        return [n for n, _ in kept], [s for _, s in kept]

    def _anchor_scores(self, label: str) -> np.ndarray | None:
        """The base model's per-prompt scores, from the run's reference."""
        from pareto.store import trial_scores

        if self._anchor is None and label in self._stores:
            reference = self._stores[label].study.user_attrs.get("reference") or {}
            self._anchor = trial_scores(reference, [o.name for o in self.objectives])
        return self._anchor

    def evaluate_base(self) -> dict:
        """The base model's objective values and samples: the reference every trial's
        generations are read against."""
        from merging.policy import use_base

        merger = self._merger(self.families[self.spec.families[0].run_label])
        identity = use_base(merger)
        result = self.evaluator.evaluate(merger.model, self.tokenizer(), identity)
        names = [o.name for o in self.objectives]
        columns = np.array([result.scores[n] for n in names], dtype=float).T
        return {
            "values": [result.objectives[n].mean for n in names],
            "stderr": [result.objectives[n].stderr for n in names],
            "samples": result.samples,
            "eval_hash": result.eval_hash,
            SCORES_ATTR: encode_scores(columns, names),
        }


def open_study_runs(session: StudySession, storage) -> list[RunStore]:
    from pareto.search import sampler_for

    runs = []
    for run_spec in session.run_specs():
        run = RunStore.create_or_open(storage, run_spec, sampler_for(run_spec, run_spec.seed))
        runs.append(run)
    return runs


def run_study(
    spec: StudySpec,
    *,
    storage_url: str,
    data: str | None = None,
    device: str | None = None,
    heartbeat: tuple[int, int] | None = None,
    log: Log = print,
    memory: dict | None = None,
) -> list[RunStore]:
    """Run every family of ``spec`` to its budget (resuming what the storage holds).

    ``memory``: the memory plan's options (``placement``, ``device_memory``, ``host_memory``)."""
    from pareto.search import check_settings

    session = StudySession(spec, data=data, device=device, log=log, **(memory or {}))
    for run_spec in session.run_specs():
        check_settings(run_spec)  # before anything is stored
    with new_storage(storage_url, **_heartbeat_kwargs(heartbeat)) as storage:
        return _run_study(session, storage, log)


def _run_study(session: StudySession, storage, log: Log) -> list[RunStore]:
    from pareto.search import drive

    runs = open_study_runs(session, storage)
    # only runs with no trial yet: a resumed old study must not vouch for checkpoints that may
    # have changed since its trials were evaluated
    unhashed = [
        run for run in runs if CHECKPOINTS_ATTR not in run.study.user_attrs and not run.trials()
    ]
    if unhashed:
        hashes = session.checkpoint_hashes()
        for run in unhashed:
            run.study.set_user_attr(CHECKPOINTS_ATTR, hashes)
    session.attach(runs)
    # a reference without per-prompt scores (an older study) is measured again: the paired
    # comparisons and racing need the base's scores
    missing = [
        run for run in runs if SCORES_ATTR not in (run.study.user_attrs.get("reference") or {})
    ]
    if missing:
        log("evaluating the base model (the reference for every trial's generations)")
        reference = session.evaluate_base()
        for run in missing:
            run.study.set_user_attr("reference", reference)
    for run in runs:
        done, budget = run.counts().complete, run.spec.budget
        state = "done" if done >= budget else "resuming" if done else "starting"
        log(f"{run.spec.label}: {run.spec.driver}, {done}/{budget} evaluations done ({state})")
        if done >= budget:
            continue
        with tqdm(
            total=budget,
            initial=done,
            desc=run.spec.label,
            unit="trial",
            dynamic_ncols=True,
            disable=log is not print,  # callers with their own log (tests, benchmarks)
        ) as bar:

            def progress(message: str, bar=bar) -> None:
                if log is print:
                    bar.write(message)  # above the bar, not through it
                else:
                    log(message)
                bar.update(1)

            drive(run, session.evaluate, log=progress)
    return runs


def run_worker(
    storage_url: str,
    study: str,
    *,
    data: str | None = None,
    device: str | None = None,
    heartbeat: tuple[int, int] | None = None,
    max_trials: int | None = None,
    wait: float = 0.0,
    log: Log = print,
    memory: dict | None = None,
) -> int:
    """Evaluate trials of ``study`` until all its runs are finished; returns how many.

    ``wait`` seconds: how long to wait for the study to appear in the storage (workers may be
    started before the process that creates it)."""
    from pareto.search import sampler_for, work

    deadline = time.monotonic() + wait
    while True:
        try:  # the storage itself may not exist yet either
            runs = open_runs(open_storage(storage_url, **_heartbeat_kwargs(heartbeat)), study)
            break
        except ValueError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
    spec = parse_study_spec(runs[0].spec.details["study_spec"], f"study {study!r} (stored)")
    session = StudySession(spec, data=data, device=device, log=log, **(memory or {}))
    for run in runs:
        run.use_sampler(sampler_for(run.spec, None))
    session.attach(runs)
    return work(runs, session.evaluate, log=log, max_trials=max_trials)


def _heartbeat_kwargs(heartbeat: tuple[int, int] | None) -> dict:
    if heartbeat is None:
        return {}
    return {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1]}
