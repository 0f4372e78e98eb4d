"""HH-RLHF (Anthropic's helpful and harmless preference pairs): its subsets, and the folder
that holds them, local or the Hugging Face hub's copy. Every command that reads HH-RLHF finds
it here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SUBSETS = ("helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled")
"""The subsets of the original layout, each a folder holding :data:`FILE`."""
FILE = "test.jsonl.gz"
HUB_DATASET = "Anthropic/hh-rlhf"
DATA_ENV = "PARETOMERGE_DATA"
"""The HH-RLHF folder, where a command is given none (``--data``, a study's ``prompts.data``)."""
ZOO_SUBSETS = ("helpful-base", "harmless-base")
"""The subsets a folder must hold by default: the ones the zoo trains on."""


def subset_file(subset: str) -> str:
    """A subset's file, relative to the HH-RLHF folder."""
    if subset not in SUBSETS:
        raise ValueError(f"HH-RLHF has no subset {subset!r}; its subsets: {', '.join(SUBSETS)}")
    return f"{subset}/{FILE}"


def locate_hh_rlhf(data: str | Path | None, subsets: Sequence[str] = ZOO_SUBSETS) -> Path:
    """The HH-RLHF folder holding ``subsets``: ``data`` if given, else the Hugging Face hub's
    copy if reachable. Raises ``FileNotFoundError`` with one line saying what to pass."""
    files = [subset_file(s) for s in subsets]
    if data is not None:
        folder = Path(data).expanduser()
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} lacks {', '.join(missing)} (the original HH-RLHF layout)"
            )
        return folder
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(HUB_DATASET, repo_type="dataset", allow_patterns=files))
        if all((folder / f).is_file() for f in files):
            return folder
    except Exception as err:
        reason = type(err).__name__
    else:
        reason = "files missing"
    raise FileNotFoundError(
        f"HH-RLHF could not be fetched from the hub ({reason}); pass --data DIR with "
        f"{' and '.join(files)} (e.g. ../shared/data/hh-rlhf)"
    )
