"""Prompt sets and preference pairs, and the stable split by prompt hash.

A prompt is a conversation: a list of ``{"role", "content"}`` messages ending with a user turn,
rendered for a policy with its tokenizer's chat template. Readers accept:

* prompts: JSON lines with ``prompt`` (a string or a list of messages), ``messages`` or
  ``text``; or a text file with one prompt per line;
* preference pairs: HH-RLHF (``chosen``/``rejected`` dialogues written as
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; the prompt is everything before the final
  assistant turn) and TRL's preference format (``prompt``, ``chosen``, ``rejected`` as strings
  or as lists of messages);

plain or gzipped. Splits come from a hash of the prompt text, never from row order, so a
prompt never lands on two sides and a split does not move when the file is reordered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pareto.table import json_objects, open_text

Messages = tuple[dict, ...]
SPLITS = ("train", "validation", "evaluation")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")


@dataclass(frozen=True)
class Prompt:
    """A conversation that ends with a user turn."""

    messages: Messages

    @property
    def text(self) -> str:
        """A plain rendering, used for hashing and for encoders without a chat template."""
        return render_plain(self.messages)

    @property
    def last_user(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred (``chosen``) and a dispreferred (``rejected``) response."""

    prompt: Prompt
    chosen: str
    rejected: str


def render_plain(messages: Sequence[dict]) -> str:
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "".join(f"\n\n{names.get(m['role'], m['role'])}: {m['content']}" for m in messages)


def prompt_hash(prompt: Prompt) -> str:
    return hashlib.sha256(prompt.text.encode("utf-8")).hexdigest()


def split_of(prompt: Prompt, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """``train``, ``validation`` or ``evaluation``, from the prompt's hash."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(
            f"split fractions must be 3 non-negative numbers summing to 1; got {fractions}"
        )
    u = int(prompt_hash(prompt)[:15], 16) / 16**15
    edge = 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        edge += frac
        if u < edge:
            return name
    return SPLITS[-1]


def select_split(
    items: Iterable, split: str, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> list:
    """Items (prompts or pairs) whose prompt falls in ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    out = []
    for item in items:
        prompt = item.prompt if isinstance(item, PreferencePair) else item
        if split_of(prompt, fractions) == split:
            out.append(item)
    return out


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    with open_text(path) as handle:
        yield from json_objects(handle, path)


def parse_dialogue(text: str) -> list[dict]:
    """Split an HH-RLHF dialogue into ``{"role", "content"}`` messages.

    ``"\\n\\nHuman: a\\n\\nAssistant: b"`` gives a user message ``a`` then an assistant one ``b``.
    """
    parts = _TURN.split(text)
    if len(parts) < 3:
        raise ValueError("no '\\n\\nHuman:' / '\\n\\nAssistant:' turns found")
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        messages.append({"role": role, "content": content.strip()})
    return messages


def _as_messages(value, where: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValueError(f"{where}: expected a string or a list of {{role, content}} messages")


def _response_text(value, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and "content" in value[-1]:
        return value[-1]["content"]
    raise ValueError(f"{where}: expected a string or a list of messages")


def read_prompts(path: str | Path, *, log: Callable[[str], None] | None = None) -> list[Prompt]:
    """Prompts from JSON lines (``prompt``/``messages``/``text``) or a text file (one a line).

    In an HH-RLHF file (``chosen`` dialogues) the prompt is the dialogue before its last turn;
    the few dialogues where that does not end with a user turn (HH-RLHF has some with two
    assistant turns in a row) are skipped, and ``log`` is told how many."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such prompts file")
    stem_suffix = Path(p.stem).suffix if p.suffix == ".gz" else p.suffix
    prompts: list[Prompt] = []
    skipped = dialogues = 0
    if stem_suffix in {".jsonl", ".json", ".ndjson"}:
        for lineno, obj in _json_lines(p):
            where = f"{p}: line {lineno}"
            if "chosen" in obj and isinstance(obj["chosen"], str) and "prompt" not in obj:
                dialogues += 1
                try:
                    msgs = parse_dialogue(obj["chosen"])[:-1]
                except ValueError:
                    msgs = []
                if not msgs or msgs[-1]["role"] != "user":
                    skipped += 1
                    continue
            else:
                key = next((k for k in ("prompt", "messages", "text") if k in obj), None)
                if key is None:
                    raise ValueError(f"{where}: needs a 'prompt', 'messages' or 'text' field")
                msgs = _as_messages(obj[key], where)
            prompts.append(_check_prompt(msgs, where))
    else:
        with open_text(p) as handle:
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    prompts.append(
                        _check_prompt(
                            [{"role": "user", "content": line.strip()}], f"{p}: line {lineno}"
                        )
                    )
    if not prompts:
        raise ValueError(f"{p}: no prompts found")
    if skipped and log is not None:
        log(
            f"{p}: skipped {skipped} of {dialogues} dialogues whose turns before the last "
            "do not end with a user turn"
        )
    return prompts


def _check_prompt(messages: list[dict], where: str) -> Prompt:
    if not messages or messages[-1]["role"] != "user":
        raise ValueError(f"{where}: a prompt must end with a user turn")
    return Prompt(tuple(messages))


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Preference pairs from an HH-RLHF or TRL-format JSON-lines file (gzipped or not).

    Pairs whose two sides are identical, or whose dialogues disagree before the final turn,
    are skipped (they carry no preference).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such pairs file")
    pairs: list[PreferencePair] = []
    for lineno, obj in _json_lines(p):
        where = f"{p}: line {lineno}"
        if "chosen" not in obj or "rejected" not in obj:
            raise ValueError(f"{where}: a preference pair needs 'chosen' and 'rejected'")
        if "prompt" in obj:  # TRL format
            prompt = _check_prompt(_as_messages(obj["prompt"], where), where)
            chosen = _response_text(obj["chosen"], where)
            rejected = _response_text(obj["rejected"], where)
        elif isinstance(obj["chosen"], str):  # HH-RLHF dialogues
            try:
                c, r = parse_dialogue(obj["chosen"]), parse_dialogue(obj["rejected"])
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            if c[:-1] != r[:-1] or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
                continue
            prompt = _check_prompt(c[:-1], where)
            chosen, rejected = c[-1]["content"], r[-1]["content"]
        else:  # TRL conversational format without a separate prompt
            c = _as_messages(obj["chosen"], where)
            r = _as_messages(obj["rejected"], where)
            prompt = _check_prompt(c[:-1], where)
            chosen, rejected = c[-1]["content"], r[-1]["content"]
        if chosen.strip() == rejected.strip():
            continue
        pairs.append(PreferencePair(prompt, chosen, rejected))
    if not pairs:
        raise ValueError(f"{p}: no usable preference pairs")
    return pairs
