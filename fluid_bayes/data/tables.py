"""Tables read as text, for the readers of :mod:`fluid_bayes.data.readers`.

A cell stays text until :func:`parse_scores`, so every error can name the file, its
1-based line (the header is line 1; for parquet files, the 1-based data row), the
subject and the item.
"""

from __future__ import annotations

import csv
import json
import math
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluid_bayes.exceptions import DataError

__all__ = [
    "NA",
    "PARQUET_SUFFIXES",
    "Table",
    "check_file",
    "check_header",
    "check_ids",
    "delimiter_hint",
    "find_column",
    "json_lines",
    "nfc_clashes",
    "parse_scores",
    "read_table",
    "row_ids",
    "score_value",
    "table_body",
]

#: cell texts read as a missing answer (compared lower-cased)
NA = frozenset({"", "na", "nan", "n/a", "null", "none"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


@dataclass(frozen=True)
class Table:
    """A table read as text: header, rows of cells, and where each row came from."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]  # 1-based line number (text) or data-row number (parquet) per row
    unit: str  # "line" or "row"

    def where(self, k: int) -> str:
        """Location of data row ``k`` (0-based), e.g. ``"answers.csv, line 7"``."""
        return f"{self.path}, {self.unit} {self.lines[k]}"


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path, raising DataError if it is not a readable file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if not p.is_file():
        raise DataError(f"{path}: not a file")
    return p


def read_table(path: str | Path) -> Table:
    """Read a CSV/TSV or parquet file as text cells, keeping line numbers."""
    p = check_file(path)
    name = str(path)
    if p.suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet_table(p, name)
    delimiter = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            last = 0
            for record in reader:
                start, last = last + 1, reader.line_num
                if not record or all(not c.strip() for c in record):
                    continue  # blank line: no data
                if header is None:
                    header = [c.strip() for c in record]
                    hint = delimiter_hint(header, delimiter)
                    if hint:
                        raise DataError(f"{name}, line {start}: {hint}")
                    continue
                if len(record) != len(header):
                    raise DataError(
                        f"{name}, line {start}: {len(record)} field(s), but the"
                        f" header has {len(header)}"
                    )
                rows.append([c.strip() for c in record])
                lines.append(start)
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not a UTF-8 text file ({exc.reason})") from exc
    except csv.Error as exc:
        raise DataError(f"{name}, line {last + 1}: malformed CSV ({exc})") from exc
    if header is None:
        raise DataError(f"{name}: empty file, no subjects")
    return Table(name, header, rows, lines, "line")


def delimiter_hint(header: Sequence[str], delimiter: str) -> str | None:
    """Say so when a one-column header splits into more columns on another delimiter.

    Parameters
    ----------
    header : sequence of str
        The header's fields as split on ``delimiter``.
    delimiter : str
        The delimiter used (``","`` for CSV, tab for ``.tsv``).

    Returns
    -------
    str or None
        E.g. ``"the header is one column when split on commas but 4 on semicolons: ..."``;
        ``None`` when the header has several columns or no delimiter splits it better.
    """
    if len(header) != 1:
        return None
    best = max(
        ((len(header[0].split(d)), d) for d in _DELIMITERS if d != delimiter), default=(1, "")
    )
    if best[0] < 2:
        return None
    used, other = _DELIMITERS[delimiter], _DELIMITERS[best[1]]
    return (
        f"the header is one column when split on {used}s but {best[0]} when split on "
        f"{other}s: the file looks {other}-separated; save it {used}-separated"
        + (" (or as .tsv for tabs)" if other == "tab" else "")
    )


def nfc_clashes(ids: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of different ids that are equal after Unicode NFC normalization.

    Such ids (a precomposed ``"é"`` and ``"e"`` + a combining accent) print alike but
    would become two items or subjects.

    Returns
    -------
    list of (str, str)
        ``(first seen, clashing)`` per clash, in the order found; exact repeats are
        not clashes (they are duplicates).
    """
    seen: dict[str, str] = {}
    out = []
    for i in ids:
        if i.isascii():
            seen.setdefault(i, i)
            continue
        first = seen.setdefault(unicodedata.normalize("NFC", i), i)
        if first != i:
            out.append((first, i))
    return out


def check_ids(ids: Sequence[str], where: Callable[[int], str], *, kind: str) -> None:
    """Ids must be non-empty and distinct after Unicode NFC normalization.

    ``where(k)`` names the location of id ``k`` for messages (file and line).

    Raises
    ------
    DataError
        At the first empty id, or the first id that clashes with an earlier one.
    """
    for k, i in enumerate(ids):
        if not i.strip():
            raise DataError(f"{where(k)}: empty {kind} id")
    clashes = nfc_clashes(ids)
    if clashes:
        a, b = clashes[0]
        raise DataError(f"{where(list(ids).index(b))}: {kind} ids {_nfc_message(a, b)}")


def _nfc_message(a: str, b: str) -> str:
    return (
        f"{a!r} and {b!r} differ only in Unicode normalization (equal after NFC): "
        "write them the same way, or make them distinct"
    )


def read_parquet_table(p: Path, name: str) -> Table:
    """Read a parquet file as text cells (a named index becomes the first column)."""
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"{name}: cannot read as parquet ({exc})") from exc
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    header = [str(c) for c in df.columns]
    columns = []
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype("Int8")
        columns.append(["" if pd.isna(v) else str(v) for v in s.tolist()])
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    return Table(name, header, rows, list(range(1, len(rows) + 1)), "row")


def check_header(table: Table, *, first: int, kind: str) -> None:
    """Columns from ``first`` on must be named and unique (they are ``kind`` ids)."""
    seen: dict[str, int] = {}
    for k, col in enumerate(table.header[first:], start=first + 1):
        if not col:
            raise DataError(f"{table.path}: column {k} of the header has no {kind} id")
        if col in seen:
            raise DataError(
                f"{table.path}: duplicate {kind} {col!r} in the header"
                f" (columns {seen[col]} and {k})"
            )
        seen[col] = k
    clashes = nfc_clashes(table.header[first:])
    if clashes:
        a, b = clashes[0]
        raise DataError(f"{table.path}: {kind} ids in the header (columns {seen[a]} and "
                        f"{seen[b]}) {_nfc_message(a, b)}")  # fmt: skip


def row_ids(table: Table, *, kind: str) -> list[str]:
    """First-column ids of the data rows, checked non-empty and unique."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for k, row in enumerate(table.rows):
        rid = row[0]
        if rid.lower() in NA:
            raise DataError(f"{table.where(k)}: missing {kind} id")
        if rid in seen:
            raise DataError(
                f"{table.where(k)}: duplicate {kind} {rid!r} (first on {table.unit}"
                f" {table.lines[seen[rid]]})"
            )
        seen[rid] = k
        ids.append(rid)
    clashes = nfc_clashes(ids)
    if clashes:
        a, b = clashes[0]
        raise DataError(f"{table.where(seen[b])}: {kind} ids (first on {table.unit} "
                        f"{table.lines[seen[a]]}) {_nfc_message(a, b)}")  # fmt: skip
    return ids


def parse_scores(cells: np.ndarray, where: Callable[[int, int], str]) -> np.ndarray:
    """Convert a 2-D array of text cells to float64 scores in [0, 1] (NaN = missing).

    ``where(r, c)`` names the cell's location for messages (file, line, subject, item).
    """
    if cells.size == 0:
        return np.zeros(cells.shape, dtype=np.float64)
    lowered = np.char.lower(cells.astype(str))
    missing = np.isin(lowered, list(NA))
    text = np.where(missing, "nan", cells.astype(str))
    try:
        values = text.astype(np.float64)
    except ValueError:
        values = None
    if values is None:  # find the first offending cell, row by row
        values = np.empty(cells.shape, dtype=np.float64)
        for (r, c), raw in np.ndenumerate(text):
            try:
                values[r, c] = float(raw)
            except ValueError:
                raise DataError(f"{where(r, c)}: {str(cells[r, c])!r} is not a number") from None
    values[missing] = np.nan
    bad = np.argwhere(np.isnan(values) & ~missing)
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{where(r, c)}: {str(cells[r, c])!r} is not a number")
    bad = np.argwhere(np.isinf(values))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{where(r, c)}: {str(cells[r, c])!r} is not finite")
    bad = np.argwhere(~missing & ((values < 0.0) | (values > 1.0)))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{where(r, c)}: {str(cells[r, c])!r} is outside [0, 1]")
    return values


def score_value(value: Any, where: str) -> float:
    """One score read from JSON or a log record: a number in [0, 1] (a bool as 0/1).

    Raises
    ------
    DataError
        Not a number, not finite or outside [0, 1], named by ``where``.
    """
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"{where}: {value!r} is not a number")
    v = float(value)
    if not math.isfinite(v):
        raise DataError(f"{where}: {value!r} is not finite")
    if not 0.0 <= v <= 1.0:
        raise DataError(f"{where}: {value!r} is outside [0, 1]")
    return v


def table_body(table: Table, first: int) -> np.ndarray:
    """Cells of columns ``first:`` as a 2-D str array."""
    width = len(table.header) - first
    if not table.rows:
        return np.empty((0, width), dtype=str)
    return np.array([row[first:] for row in table.rows], dtype=str).reshape(-1, width)


def find_column(header: Sequence[str], names: Sequence[str], *, path: str, role: str) -> int:
    """Index of the one column whose lower-cased name is in ``names`` (-1: none)."""
    hits = [k for k, c in enumerate(header) if c.lower() in names]
    if len(hits) > 1:
        found = ", ".join(repr(header[k]) for k in hits)
        raise DataError(f"{path}: several columns could hold the {role}: {found}; keep one")
    return hits[0] if hits else -1


def json_lines(p: Path, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON-lines file.

    Raises
    ------
    DataError
        Naming the file and line: invalid JSON, a line that is not an object, or a
        file that is not UTF-8 text.
    """
    try:
        with p.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{name}, line {n}: invalid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{name}, line {n}: expected a JSON object")
                yield n, obj
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not a UTF-8 text file ({exc.reason})") from exc
