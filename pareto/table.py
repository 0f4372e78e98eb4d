"""Results tables: rows of objective values (and anything else) read from CSV or JSON lines.

This is what ``paretomerge analyze`` reads, so that results produced by any tool can be put on
a front. Every error names the file, the row or the column, and what was expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pareto._arrays import SENSES, Sense

CSV_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass(frozen=True)
class ObjectiveSpec:
    """An objective column and its sense."""

    name: str
    sense: Sense


def parse_objectives(spec: str) -> tuple[ObjectiveSpec, ...]:
    """Parse ``"helpfulness:max,harmlessness:max,verbosity:min"``.

    Raises ``ValueError`` naming the faulty entry for a missing or unknown sense, an empty
    name, or a name given twice.
    """
    out: list[ObjectiveSpec] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, sense = item.rpartition(":")
        name, sense = name.strip(), sense.strip().lower()
        if not sep or not name:
            raise ValueError(f"objective {item!r} must be written NAME:max or NAME:min")
        if sense not in SENSES:
            raise ValueError(f"objective {item!r} has unknown sense {sense!r}; use max or min")
        if any(o.name == name for o in out):
            raise ValueError(f"objective {name!r} is given twice")
        out.append(ObjectiveSpec(name, sense))  # type: ignore[arg-type]
    if not out:
        raise ValueError(f"no objectives in {spec!r}; write e.g. helpfulness:max,verbosity:min")
    return tuple(out)


@dataclass(frozen=True)
class ResultsTable:
    """Rows read from a results file, in file order; ``columns`` in first-seen order."""

    path: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, object], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def numeric_column(self, name: str) -> np.ndarray:
        """Column ``name`` as finite floats; errors name the row and the value."""
        if name not in self.columns:
            raise ValueError(
                f"{self.path}: no column {name!r}; columns are: {', '.join(self.columns)}"
            )
        values = np.empty(len(self.rows))
        for i, row in enumerate(self.rows):
            raw = row.get(name)
            try:
                if isinstance(raw, bool) or raw is None or raw == "":
                    raise ValueError
                value = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(
                    f"{self.path}: row {i}, column {name!r}: {raw!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise ValueError(
                    f"{self.path}: row {i}, column {name!r} is {raw!r}; values must be finite"
                )
            values[i] = value
        return values

    def objective_matrix(self, objectives: Sequence[ObjectiveSpec]) -> np.ndarray:
        """``(rows, objectives)`` matrix of the objective columns."""
        if not self.rows:
            raise ValueError(f"{self.path}: the file has no data rows")
        return np.column_stack([self.numeric_column(o.name) for o in objectives])


def open_text(path: Path) -> io.TextIOBase:
    """``path`` for reading as UTF-8 text, gunzipped on the fly when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8", newline="")


def json_objects(lines: Iterable[str], source: object) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines text; a line that is not
    a JSON object is a one-line error naming ``source`` and the line."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: line {lineno} is not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{source}: line {lineno} must be a JSON object, got {obj!r:.60}")
        yield lineno, obj


def _format_of(path: Path, first_char: str) -> str:
    suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    if suffix.lower() in CSV_SUFFIXES:
        return "csv"
    if suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    return "jsonl" if first_char == "{" else "csv"


def read_results(path: str | Path) -> ResultsTable:
    """Read a CSV (with a header row; ``.tsv`` is tab-separated) or JSON-lines file.

    The format comes from the suffix (``.csv``, ``.tsv``, ``.jsonl``, ``.ndjson``, ``.json``,
    each optionally ``.gz``), else from the first character. JSON lines must each hold one
    object; blank lines are skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    with open_text(p) as handle:
        text = handle.read()
    fmt = _format_of(p, text.lstrip()[:1])
    columns: dict[str, None] = {}
    rows: list[dict[str, object]] = []
    if fmt == "csv":
        delimiter = "\t" if ".tsv" in p.suffixes else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        if not reader.fieldnames:
            raise ValueError(f"{p}: empty file, expected a header row")
        columns.update((name.strip(), None) for name in reader.fieldnames)
        for row in reader:
            rows.append({(k or "").strip(): v for k, v in row.items()})
    else:
        for _, obj in json_objects(text.splitlines(), p):
            columns.update((k, None) for k in obj)
            rows.append(obj)
    return ResultsTable(str(p), tuple(columns), tuple(rows))
