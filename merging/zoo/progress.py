"""Running the zoo's steps once each: resumable (a step is done once its record is written),
with a progress bar per step and a time estimate for this machine."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from merging.zoo.presets import RECIPES, SLOWDOWN, Preset

STEP_FILE = "step.json"


def _read_marker(marker: Path) -> dict | None:
    """A step's record, or None when it is absent or unreadable."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "seconds" in record else None


class StepRunner:
    """Runs named steps once each, recording timings; prints what it does and how long."""

    def __init__(
        self,
        root: Path,
        preset: Preset,
        log: Callable[[str], None],
        basis: tuple[float, str],
        dtype: str = "float32",
        dtype_before: str = "float32",
    ):
        self.root, self.preset, self.log = root, preset, log
        self.dtype = dtype
        """What this run trains in (:func:`merging.device.build_in_bfloat16`): a step whose
        result depends on it records it, and one cached in another is built again."""
        self.dtype_before = dtype_before
        """What such a step was built in when its record does not say (written before records
        said): what the builder chose then, bfloat16 where the CPU computes it natively."""
        self.slowdown, self.basis = basis
        """What the preset's estimates are multiplied by on this machine, and what the
        estimate then is for (:func:`estimate_basis`)."""
        self.records: dict[str, dict] = {}
        self.total = len(preset.estimates)
        self.index = 0
        self.built: list[str] = []
        """The steps built in this run: a cached step that depends on one is built again."""

    def run(
        self,
        name: str,
        build: Callable[[Path, Callable], dict | None],
        depends_on: tuple[str, ...] = (),
    ) -> Path:
        """Step ``name``'s folder: reused when its record is not outdated
        (:func:`outdated_because`) and none of the steps it reads (``depends_on``) was built in
        this run; else built by ``build``."""
        self.index += 1
        folder = self.root / name
        marker = folder / STEP_FILE
        recipe = RECIPES.get(name, 1)
        head = f"[{self.index}/{self.total}] {name}"
        record = _read_marker(marker)
        if marker.is_file() and record is None:
            self.log(f"{head}: {marker} is unreadable (an interrupted write?), building it again")
        if record is not None:
            changed = [step for step in depends_on if step in self.built]
            why = outdated_because(name, record, self.dtype, self.dtype_before)
            if why is None and not changed:
                self.records[name] = record
                took = duration(record["seconds"])
                self.log(f"{head}: done before (took {took}), reused")
                return folder
            why = why or f"{', '.join(changed)} changed"
            self.log(f"{head}: built before ({why}), building it again")
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted or outdated attempt: start the step again
        folder.mkdir(parents=True)
        self.built.append(name)
        about = duration(self.preset.estimates.get(name, 0) * self.slowdown)
        self.log(f"{head}: building (about {about} on {self.basis})")
        start = time.perf_counter()
        bar = progress_bar(name)
        try:
            metrics = build(folder, bar) or {}
        finally:
            bar(None)
        seconds = round(time.perf_counter() - start, 1)
        record = {"seconds": seconds, "recipe": recipe, "metrics": metrics}
        if trains_in_dtype(name):
            record["dtype"] = self.dtype
        partial = marker.with_name(marker.name + ".partial")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, marker)  # a step is done only once its whole record is there
        self.records[name] = record
        self.log(f"{head}: done in {duration(seconds)}")
        return folder


def trains_in_dtype(step: str) -> bool:
    """Whether a step's result depends on the dtype it trains in: the experts and the RiC
    model (the base is converted, the heads fit on a frozen encoder's float32 features)."""
    return step == "ric" or step.endswith("_expert")


def outdated_because(name: str, record: dict, dtype: str, dtype_before: str) -> str | None:
    """Why step ``name``'s record is not what this version builds in ``dtype`` (``"recipe 5,
    now 6"``, ``"built in bfloat16, now float32"``), or None; a record of a step that trains
    and does not say its dtype was built in ``dtype_before``."""
    cached, recipe = record.get("recipe", 1), RECIPES.get(name, 1)
    if cached != recipe:
        return f"recipe {cached}, now {recipe}"
    built_in = record.get("dtype", dtype_before)
    if trains_in_dtype(name) and built_in != dtype:
        return f"built in {built_in}, now {dtype}"
    return None


def estimate_basis(preset: str, device: str) -> tuple[float, str]:
    """``(slowdown, what for)``: the factor on the preset's estimates and the machine they
    are then for. Estimates are a float32 build on 2 CPU cores with AVX-512; :data:`SLOWDOWN`
    scales them for a CPU without AVX-512 and for a bfloat16 build (``PARETOMERGE_CPU_BFLOAT16=1``),
    native or emulated (not for ``tiny``, whose steps take seconds); on an accelerator they
    stay the CPU's, and say so, as an upper bound."""
    from merging.device import (
        build_in_bfloat16,
        cpu_bfloat16_native,
        cpu_has_avx512,
        resolve_device,
    )

    kind = resolve_device(device).type
    if kind != "cpu":
        return 1.0, f"2 CPU cores; {kind} is usually faster"
    if preset == "tiny":
        return 1.0, "2 CPU cores"
    if build_in_bfloat16(device):
        if cpu_bfloat16_native():
            return SLOWDOWN["bfloat16"], "2 CPU cores with native bfloat16"
        return SLOWDOWN["emulated"], "2 CPU cores emulating bfloat16, a rough guess"
    if cpu_has_avx512():
        return 1.0, "2 CPU cores with AVX-512"
    return SLOWDOWN["avx2"], "2 CPU cores without AVX-512"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def counting(bar, total: int) -> Callable[[int], None]:
    """``progress(n)`` callbacks that add ``n`` done items to ``bar``, out of ``total``."""
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        bar(done[0], total)

    return progress


def progress_bar(name: str):
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
