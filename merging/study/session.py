"""A study's session: its models, prompts and objectives loaded once, evaluating any ``x``.

``StudySession`` resolves a study's models (a zoo, built or reused, or the given checkpoints),
prompts and objectives once per process, plans and keeps one resident merger per expert set,
and evaluates any run's ``x``: merge in place, generate, score (raced against the run's
completed trials when the study races, :mod:`merging.study.racing`). The runner
(:mod:`merging.study.runner`) and exports (:mod:`merging.export.trial`) open one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from merging.study.prompts import data_folder, load_prompts
from merging.study.racing import Racing
from merging.study.spec import StudySpec
from pareto.prompt_scores import encode_scores
from pareto.run_spec import RunSpec
from pareto.run_store import RunStore
from pareto.spaces import describe_space
from pareto.trial_records import SCORES_ATTR, Outcome

Log = Callable[[str], None]


def zoo_head(objective, heads: dict[str, str]) -> str:
    """The zoo's head of ``objective`` (an objective written ``NAME=zoo:SENSE``), or a one-line
    error naming the zoo's objectives."""
    if not heads:
        raise ValueError(f"objective {objective.name!r}: head 'zoo' needs a study with a zoo")
    if objective.name not in heads:
        raise ValueError(
            f"objective {objective.name!r}: the zoo has no head by that name; its objectives: "
            f"{', '.join(heads)}"
        )
    return heads[objective.name]


def learns(driver: str) -> bool:
    """Whether search driver ``driver`` learns its points on the models."""
    from pareto.search import DRIVERS

    return driver in DRIVERS and DRIVERS.get(driver).learns


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
        from merging.heads import complete_spec

        hf_logging.disable_progress_bar()  # one line per checkpoint load is noise in a study
        self.spec, self.log = spec, log
        self.device = device or spec.device
        self.dtype = dtype
        self.data = data_folder(spec, data)
        self.base, self.experts, self.ric, zoo_objectives = self._models(build)
        zoo_heads = {o.name: o.head for o in map(parse_objective, zoo_objectives)}
        objectives = [
            o.model_copy(
                update={
                    "head": complete_spec(
                        zoo_head(o, zoo_heads) if o.head == "zoo" else o.head,
                        data=self.data,
                        base=self.base,
                    )
                }
            )
            for o in list(spec.objectives) or [parse_objective(o) for o in zoo_objectives]
        ]
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
        self._racing = Racing([o.name for o in objectives])

    def attach(self, runs: list[RunStore]) -> None:
        """The stored runs this session evaluates for: racing compares each candidate with
        the completed trials of its own run, and reads the base's scores from them."""
        self._racing.attach(runs)

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
            return self._zoo_models(build_zoo(spec.zoo, data=self.data, out=folder, log=self.log))
        outdated = zoo.outdated_steps()
        if outdated and build:  # an older version's zoo: this version's recipes, not its own
            self.log(
                f"the cached {spec.zoo} zoo's {', '.join(outdated)} step(s) are of an older "
                "recipe, or trained in another dtype: building them again (cached for later runs)"
            )
            zoo = build_zoo(spec.zoo, data=self.data, out=zoo.folder, log=self.log)
        return self._zoo_models(zoo)

    @staticmethod
    def _zoo_models(zoo):
        """``_models``' answer for a built zoo."""
        return zoo.base, dict(zoo.experts), zoo.ric, zoo.objective_specs()

    def _family(self, f):
        from merging.families import family_for_checkpoints

        senses = {o.name: o.sense for o in self.objectives}
        return family_for_checkpoints(f.family, self.experts, self.ric, f.settings, senses)

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
                    family_settings=dict(f.settings.items()) | family.run_settings(),
                    experts=tuple(family.experts),
                    driver=search.driver,
                    driver_settings=dict(search.settings),
                    budget=search.budget,
                    seed=search.seed,
                    space=describe_space(family.space),
                    objectives=tuple(o.name for o in self.objectives),
                    senses=tuple(o.sense for o in self.objectives),
                    evaluation=self.evaluator.conditions() if self.evaluator else {},
                    details={"study_spec": self.spec.model_dump(mode="json")},
                )
            )
        return out

    def _expert_set(self, family):
        """The checkpoints ``family`` merges, inspected once per set (families that merge the
        same set share it)."""
        from merging.expert_set import ExpertSet

        key = family.checkpoints
        if key not in self._expert_sets:
            paths = family.checkpoint_paths(self.experts, self.ric)
            self._expert_sets[key] = ExpertSet.from_paths(self.base, paths)
        return self._expert_sets[key]

    def _plan(self, evaluate: bool, placement: str, device_memory, host_memory) -> dict:
        """The memory plan of each expert set the study's families use, printed; the second
        set is planned beside the first (the session keeps both)."""
        from merging.merger import plan_experts
        from merging.sizes import Generation
        from merging.study.learning import check_learning

        keys: dict[str, Any] = {}
        whole: dict[str, bool] = {}
        ways: dict[str, str] = {}
        for family in self.families.values():
            keys.setdefault(family.checkpoints, family)
            whole[family.checkpoints] = whole.get(family.checkpoints, False) or family.whole_tensors
            if family.placement is not None:
                ways[family.checkpoints] = family.placement_for(placement)
        for f in self.spec.families:  # a driver that learns on the experts needs them resident
            if learns(f.search(self.spec.search).driver):
                check_learning(self, f, placement)
                ways[self.families[f.run_label].checkpoints] = "resident"
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
                placement=ways.get(key, placement),
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

    def learner(self, run: RunSpec):
        """The function a driver that learns its points (``ama``) calls for ``run``
        (:mod:`merging.study.learning`)."""
        from merging.study.learning import study_learner

        return study_learner(self, run)

    def run_checkpoints(self, label: str) -> dict[str, str]:
        """The checkpoints run ``label`` evaluates, the base and its family's, and the reward
        heads that score it, named as :meth:`checkpoint_hashes` names them."""
        family = self.families[label]
        paths = {"base": self.base, **family.checkpoint_paths(self.experts, self.ric)}
        return paths | self.head_folders()

    def head_folders(self) -> dict[str, str]:
        """The objectives' heads that are folders (a trained head, a reward model), named
        ``head:OBJECTIVE``: retrained, they change what every score of a run means."""
        return {
            f"head:{o.name}": o.head for o in self.objectives if Path(o.head).expanduser().is_dir()
        }

    def checkpoint_hashes(self) -> dict[str, str]:
        """Content hashes of the study's checkpoints (``base``, each expert, ``ric``) and of its
        heads' folders (:meth:`head_folders`): what an export checks before writing weights,
        and a resumed run before it adds trials, on whichever machine it runs."""
        from merging.paths import content_hash

        found = {"base": self.base, **self.experts}
        if self.ric is not None:
            found["ric"] = self.ric
        found |= self.head_folders()
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
                family.policy(recipe, merger),
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
        return self._racing.race(
            run, evaluate, attrs, prompts=len(self.prompts), settings=self.spec.racing
        )

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
