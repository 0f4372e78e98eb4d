"""Building a zoo: its steps (:mod:`merging.zoo.steps`) run in order, each once
(:mod:`merging.zoo.progress`), and the manifest that says where the components are."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pydantic import BaseModel

from merging.paths import cache_root
from merging.zoo.presets import OBJECTIVES, PRESETS, REFUSAL_PAIRS
from merging.zoo.progress import StepRunner, duration, estimate_basis, outdated_because
from merging.zoo.steps import (
    EXPERT_HEADS,
    ZooBuild,
    base_step,
    expert_step,
    head_step,
    ric_step,
)

MANIFEST_FILE = "zoo.json"


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

    def outdated_steps(self) -> list[str]:
        """The steps built with another recipe than this version's (:data:`RECIPES`), or that
        trained in another dtype than a CPU build here would (:func:`build_dtypes`): a zoo
        cached by an earlier version or built with other settings, whose outdated steps
        ``build_zoo`` builds again, with the steps that read them."""
        dtypes = build_dtypes("cpu")
        return [
            name for name, record in self.steps.items() if outdated_because(name, record, *dtypes)
        ]

    def relocated(self, folder: str | Path) -> ZooManifest:
        """The manifest of this zoo found at ``folder``: the paths inside the folder it was
        built in, moved under ``folder`` (a zoo copied or moved whole keeps pointing at its own
        files, not the originals); paths outside it (a retrained zoo's shared base) stay."""
        old, new = Path(self.folder), Path(folder).resolve()
        if old == new:
            return self

        def move(path: str) -> str:
            p = Path(path)
            inside = p.is_absolute() and p.is_relative_to(old)
            return str(new / p.relative_to(old)) if inside else path

        return self.model_copy(
            update={
                "folder": str(new),
                "base": move(self.base),
                "experts": {k: move(v) for k, v in self.experts.items()},
                "heads": {k: move(v) for k, v in self.heads.items()},
                "ric": None if self.ric is None else move(self.ric),
            }
        )


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
        found = ZooManifest.model_validate_json(manifest.read_text())
    except ValueError as err:  # pydantic's ValidationError is one
        raise ValueError(
            f"{manifest} is unreadable ({' '.join(str(err).split())[:160]}); build the zoo "
            f"again with: paretomerge zoo build --preset {preset}"
        ) from None
    return found.relocated(path)


def build_zoo(
    preset: str = "smol",
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> ZooManifest:
    """Build (or finish building) a zoo and return its manifest: the base, a head per judged
    objective, an expert per objective, then the RiC model (each step reused when built)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    p = PRESETS[preset]
    from merging.device import resolve_device

    device = str(resolve_device(device))  # "auto" becomes cpu or cuda; an unavailable one fails
    basis = estimate_basis(preset, device)
    dtypes = build_dtypes(device)  # a bad PARETOMERGE_CPU_BFLOAT16 fails here, before any write
    root = Path(out).expanduser() if out else default_zoo_dir(preset)
    root.mkdir(parents=True, exist_ok=True)
    steps = StepRunner(root, p, log, basis, *dtypes)
    start = time.perf_counter()
    build = ZooBuild.start(p, data, device)
    build.base = steps.run("base", partial(base_step, build))
    heads_read = ("base",) if build.tiny else ()  # the tiny zoo's heads encode with its base
    refusals = build.refusal_pairs(REFUSAL_PAIRS)
    build.heads = {
        "helpfulness": steps.run(
            "helpfulness_head", partial(head_step, build, pairs=build.helpful), heads_read
        ),
        "harmlessness": steps.run(
            "harmlessness_head",
            partial(head_step, build, pairs=build.harmless, extra=refusals),
            heads_read,
        ),
    }
    rates = {"helpfulness": p.dpo_learning_rate, "harmlessness": p.dpo_learning_rate}
    rates["concise"] = p.concise_learning_rate
    build.experts = {
        name: steps.run(
            f"{name}_expert",
            partial(expert_step, build, expert=name, learning_rate=rate),
            ("base", f"{EXPERT_HEADS[name]}_head"),
        )
        for name, rate in rates.items()
    }
    everything = ("base", *(f"{h}_head" for h in build.heads), *(f"{e}_expert" for e in rates))
    ric = steps.run("ric", partial(ric_step, build), everything)
    margins = steps.records["ric"]["metrics"].get("final_margin_nats_by_reward")
    if margins:
        log(f"  {ric_margins_line(margins)}")
    manifest = ZooManifest(
        preset=preset,
        folder=str(root.resolve()),
        base=str(build.base.resolve()),
        experts={k: str(v.resolve()) for k, v in build.experts.items()},
        heads={
            **{k: str(v.resolve()) for k, v in build.heads.items()},
            "verbosity": "length_tokens",
        },
        objectives=list(OBJECTIVES),
        ric=str(ric.resolve()),
        steps=steps.records,
    )
    (root / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    log(f"zoo {preset} ready at {root} ({duration(time.perf_counter() - start)} this run)")
    return manifest


def build_dtypes(device: str) -> tuple[str, str]:
    """``(now, before)``: what the zoo trains in on ``device``, and what a step whose record
    does not say was built in (the builder's choice before records said, when the zoo trained
    in bfloat16 wherever the CPU computes it natively)."""
    from merging.device import build_dtype, cpu_bfloat16_native, resolve_device

    now = build_dtype(device)
    if resolve_device(device).type != "cpu":
        return now, now
    return now, "bfloat16" if cpu_bfloat16_native() else "float32"


def ric_margins_line(margins: dict[str, float | None]) -> str:
    """One line of the RiC model's contrastive margin per marker at the end of its training:
    how much likelier an answer is under its own scores than under a counterfactual's that
    changed that one marker. A marker with a margin far below the others is one the model
    has not learned to read; measuring the model (``experiments/zoo_report.py``) tells for sure."""
    cells = ", ".join(
        f"{name} {'n/a' if value is None else f'{value:.2f}'}" for name, value in margins.items()
    )
    return f"RiC margin per marker at the end of training (nats): {cells}"
