"""The Evaluator: generate for a prompt set, score every objective, report means with errors.

An objective's value is the mean over prompts of its head's score, with the standard error of
that mean (sample standard deviation over sqrt(n)). Results are cached on disk by a hash of
everything that determines them: the policy (recipe and checkpoint fingerprints, or a model's
fingerprint), the device type and dtype, the prompts, the generation settings and each head's
identity. A repeated evaluation is read back without generating.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from merging.data import Prompt
from merging.generation import GenerationSettings, generate
from merging.heads import PolicyHead, PolicyView, RewardHead, load_head
from merging.paths import cache_root

DEFAULT_SAMPLES = 3


class Objective(BaseModel):
    """A named objective: the head that scores it and whether more is better."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    head: str
    sense: Literal["max", "min"]


def parse_objective(text: str) -> Objective:
    """``NAME=HEAD:SENSE``, e.g. ``verbosity=length_tokens:min`` or ``help=heads/help:max``."""
    name, eq, rest = text.partition("=")
    head, colon, sense = rest.rpartition(":")
    if not eq or not name.strip() or not colon or not head.strip():
        raise ValueError(f"objective {text!r} must be written NAME=HEAD:SENSE (SENSE max or min)")
    if sense not in ("max", "min"):
        raise ValueError(f"objective {text!r}: sense {sense!r} must be max or min")
    return Objective(name=name.strip(), head=head.strip(), sense=sense)


class ObjectiveValue(BaseModel):
    mean: float
    stderr: float
    sense: Literal["max", "min"]
    n: int


class EvaluationResult(BaseModel):
    """What one evaluation of one policy gives."""

    objectives: dict[str, ObjectiveValue]
    samples: list[dict]
    """A few ``{"prompt", "response", "scores"}`` to read."""
    scores: dict[str, list[float]]
    """Per-prompt scores of every objective, in prompt order (for paired comparisons)."""
    responses: list[str]
    eval_hash: str
    timings: dict[str, float]
    cached: bool = False

    def public(self) -> dict:
        """The JSON that ``paretomerge evaluate --json`` prints."""
        return {
            "objectives": {k: v.model_dump() for k, v in self.objectives.items()},
            "samples": self.samples,
            "eval_hash": self.eval_hash,
            "cached": self.cached,
            "timings": self.timings,
        }


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        raise ValueError("no scores to average")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Evaluator:
    """Evaluates policies on fixed prompts, objectives and generation settings."""

    def __init__(
        self,
        prompts: Sequence[Prompt],
        objectives: Sequence[Objective],
        settings: GenerationSettings | None = None,
        *,
        heads: dict[str, RewardHead] | None = None,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        device: str | None = "auto",
        n_samples: int = DEFAULT_SAMPLES,
    ):
        if not prompts:
            raise ValueError("an evaluation needs at least one prompt")
        names = [o.name for o in objectives]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"objective names must be unique and not empty; got {names}")
        self.prompts = list(prompts)
        self.objectives = list(objectives)
        self.settings = settings or GenerationSettings()
        self.heads = dict(heads or {})
        for o in self.objectives:
            if o.name not in self.heads:
                self.heads[o.name] = load_head(o.head, device=device)
            self.heads[o.name].check_prompts(len(self.prompts))
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "evaluations"
        self.use_cache = use_cache
        self.n_samples = n_samples

    def conditions(self) -> dict:
        """What every evaluation of a run shares and a resumed run must not change: the prompts
        (their count and digest) and the generation settings (the batch size aside, which
        does not change what a greedy answer says)."""
        digest = _digest([p.messages for p in self.prompts])[:12]
        return {
            "prompts": f"{len(self.prompts)} prompts, sha256 {digest}",
            "generation": self.settings.model_dump(mode="json", exclude={"batch_size"}),
        }

    def eval_hash(self, policy_identity: dict, tokenizer=None, span=None) -> str:
        """The cache key of evaluating the policy on the prompts (``span = (lo, hi)``: the
        prompts ``lo..hi`` only, as racing does batch by batch)."""
        for o in self.objectives:
            if tokenizer is not None:
                self.heads[o.name].bind_policy(tokenizer)
        prompts = self.prompts if span is None else self.prompts[span[0] : span[1]]
        return _digest(
            {
                "policy": policy_identity,
                "prompts": _digest([p.messages for p in prompts]),
                "settings": self.settings.model_dump(),
                "objectives": [
                    [o.name, o.sense, self.heads[o.name].identity()] for o in self.objectives
                ],
            }
        )

    def evaluate(
        self,
        model,
        tokenizer,
        policy_identity: dict,
        *,
        prompt_transform=None,
        progress=None,
        span: tuple[int, int] | None = None,
    ) -> EvaluationResult:
        """Generate, score and summarise (or read the cached result).

        ``prompt_transform`` rewrites each prompt before generation (rewards-in-context writes
        the desired scores into it); heads always score against the original prompt, and the
        transform must be part of ``policy_identity`` (a family's recipe is). ``span = (lo,
        hi)`` evaluates prompts ``lo..hi`` only (cached on their own).
        """
        key = self.eval_hash(policy_identity, tokenizer, span)
        path = self.cache_dir / f"{key}.json"
        if self.use_cache and path.is_file():
            result = EvaluationResult.model_validate_json(path.read_text())
            return result.model_copy(update={"cached": True})
        prompts = self.prompts if span is None else self.prompts[span[0] : span[1]]
        if not prompts:
            raise ValueError(f"no prompts in span {span} of {len(self.prompts)}")
        start = time.perf_counter()
        shown = [prompt_transform(p) for p in prompts] if prompt_transform else prompts
        responses = generate(model, tokenizer, shown, self.settings, progress=progress)
        generated = time.perf_counter()
        lo = 0 if span is None else span[0]
        view = PolicyView(
            model,
            tokenizer,
            prompts,
            responses,
            (lo, lo + len(prompts)),
            prompt_transform,
            self.settings.system_prompt,
        )
        scores = {}
        for o in self.objectives:
            head = self.heads[o.name]
            policy = isinstance(head, PolicyHead)
            s = head.score_policy(view) if policy else head.score(prompts, responses)
            scores[o.name] = np.asarray(s, dtype=float)
        scored = time.perf_counter()
        timings = {
            "generate_s": round(generated - start, 3),
            "score_s": round(scored - generated, 3),
        }
        result = self._summarise(prompts, responses, scores, key, timings)
        if self.use_cache:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(result.model_dump_json())
            tmp.replace(path)
        return result

    def _summarise(self, prompts, responses, scores, key: str, timings) -> EvaluationResult:
        """Each objective's mean and standard error, the first samples, and every score."""
        values = {}
        for o in self.objectives:
            mean, se = mean_and_stderr(scores[o.name])
            values[o.name] = ObjectiveValue(mean=mean, stderr=se, sense=o.sense, n=len(prompts))
        samples = [
            {
                "prompt": prompts[i].last_user,
                "response": responses[i],
                "scores": {k: float(v[i]) for k, v in scores.items()},
            }
            for i in range(min(self.n_samples, len(prompts)))
        ]
        return EvaluationResult(
            objectives=values,
            samples=samples,
            scores={k: v.tolist() for k, v in scores.items()},
            responses=responses,
            eval_hash=key,
            timings=timings,
        )
