"""The zoo's training data, built from HH-RLHF files in their original layout.

* helpfulness pairs: helpful-base; harmlessness pairs: harmless-base (both: the ``train`` side
  of the prompt-hash split, the last user turn as the prompt, short enough to train on a CPU);
* an objective's expert trains on the pairs whose human label its reward head agrees with (the
  head scores the chosen response higher): DPO then moves the policy the way the objective is
  measured, instead of along whatever else the raw labels carry (in helpful-base, for example,
  many labels the head disagrees with prefer the *shorter* answer);
* concise pairs: from the same helpfulness pairs, those where *both* responses are good (the
  helpfulness head scores each above its median over the pool) and one is at least 1.5 times
  longer than the other; the shorter is preferred. So "concise" means shorter at equal quality,
  not just shorter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from merging.data import PreferencePair, Prompt, read_pairs, select_split

HH_FILES = {
    "helpful": "helpful-base/test.jsonl.gz",
    "harmless": "harmless-base/test.jsonl.gz",
}
HUB_DATASET = "Anthropic/hh-rlhf"
MAX_PROMPT_CHARS, MAX_RESPONSE_CHARS = 300, 500


def locate_hh_rlhf(data: str | Path | None) -> Path:
    """The HH-RLHF folder: ``data`` if given, else the Hugging Face hub's copy if reachable.

    Raises ``FileNotFoundError`` with one line saying what to pass.
    """
    if data is not None:
        folder = Path(data).expanduser()
        missing = [f for f in HH_FILES.values() if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} lacks {', '.join(missing)} (the original HH-RLHF layout)"
            )
        return folder
    try:
        from huggingface_hub import snapshot_download

        folder = Path(
            snapshot_download(
                HUB_DATASET, repo_type="dataset", allow_patterns=list(HH_FILES.values())
            )
        )
        if all((folder / f).is_file() for f in HH_FILES.values()):
            return folder
    except Exception as err:
        reason = type(err).__name__
    else:
        reason = "files missing"
    raise FileNotFoundError(
        f"HH-RLHF could not be fetched from the hub ({reason}); pass --data DIR with "
        "helpful-base/test.jsonl.gz and harmless-base/test.jsonl.gz (e.g. ../shared/data/hh-rlhf)"
    )


def short_pairs(path: Path, split: str = "train") -> list[PreferencePair]:
    """Pairs of one split, prompts cut to the last user turn, long ones dropped."""
    out = []
    for p in select_split(read_pairs(path), split):
        last = p.prompt.messages[-1]
        if len(last["content"]) > MAX_PROMPT_CHARS:
            continue
        if max(len(p.chosen), len(p.rejected)) > MAX_RESPONSE_CHARS:
            continue
        out.append(PreferencePair(Prompt((last,)), p.chosen, p.rejected))
    return out


def pair_scores(pairs: list[PreferencePair], head) -> tuple[np.ndarray, np.ndarray]:
    """The head's scores of every chosen and every rejected response."""
    prompts = [p.prompt for p in pairs]
    return (
        head.score(prompts, [p.chosen for p in pairs]),
        head.score(prompts, [p.rejected for p in pairs]),
    )


def agreeing_pairs(
    pairs: list[PreferencePair], scores: tuple[np.ndarray, np.ndarray]
) -> list[PreferencePair]:
    """The pairs whose chosen response the head scores higher."""
    chosen, rejected = scores
    return [p for p, c, r in zip(pairs, chosen, rejected, strict=True) if c > r]


def concise_pairs(
    pairs: list[PreferencePair], scores: tuple[np.ndarray, np.ndarray], *, ratio: float = 1.5
) -> list[PreferencePair]:
    """Pairs of two good responses (both above the head's median) preferring the shorter."""
    chosen, rejected = scores
    median = float(np.median(np.concatenate([chosen, rejected])))
    out = []
    for p, c, r in zip(pairs, chosen, rejected, strict=True):
        if c <= median or r <= median:
            continue
        short, long = sorted((p.chosen, p.rejected), key=len)
        if len(long) >= ratio * max(1, len(short)):
            out.append(PreferencePair(p.prompt, short, long))
    return out
