"""Readers of response data into a :class:`~fluid_bayes.data.responses.ResponseMatrix`.

Formats: wide and long tables, py-irt JSON lines, the Fluid Benchmarking layout,
frequency-weighted response patterns and harness logs (lm-eval, Inspect AI, lighteval, HELM,
every_eval_ever: :func:`fluid_bayes.data.eval_records.read_log`); and point-estimate item banks
(``item_id,a,b``, :func:`read_point_params`).

Every reader ends with :func:`fluid_bayes.data.responses.from_array`, so its output is
validated the same way. Cells are read as text first, so a bad cell is reported with the
file, its 1-based line number (the header is line 1; for parquet files, the 1-based data
row), the subject id and the item id. Empty cells and ``NA`` / ``nan`` / ``null`` /
``None`` (any case) are missing answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluid_bayes.data.eval_records import LOG_FORMATS, read_log
from fluid_bayes.data.formats import FORMATS
from fluid_bayes.data.harness_logs import detect_harness_format
from fluid_bayes.data.report import duplicates
from fluid_bayes.data.responses import ResponseMatrix, from_array
from fluid_bayes.data.tables import (
    NA,
    Table,
    check_file,
    check_header,
    check_ids,
    delimiter_hint,
    find_column,
    json_lines,
    parse_scores,
    read_table,
    row_ids,
    score_value,
    table_body,
)
from fluid_bayes.dims import ITEM
from fluid_bayes.exceptions import DataError

__all__ = [
    "FORMATS",
    "detect_format",
    "read_fb",
    "read_item_meta",
    "read_long",
    "read_patterns",
    "read_point_params",
    "read_pyirt",
    "read_responses",
    "read_wide",
]

_JSON_SUFFIXES = frozenset({".jsonl", ".jsonlines", ".json"})
_SUBJECT_COLS = ("subject_id", "subject", "model")
_ITEM_COLS = ("item_id", "item")
_SCORE_COLS = ("score", "correct", "value", "response")
_FREQ_COLS = ("freq", "frequency", "count", "n")


# -- readers ---------------------------------------------------------------------------


def read_wide(
    path: str | Path, *, threshold: float | None = None, subject_columns: Sequence[str] = ()
) -> ResponseMatrix:
    """Read a wide table: one row per subject, one column per item.

    Parameters
    ----------
    path : str or Path
        CSV (``.tsv``: tab-separated) or parquet file. The first column holds the
        subject ids (any header name); every other column is an item. Empty cell =
        missing.
    threshold : float, optional
        Binarization threshold, required if some score is neither 0 nor 1.
    subject_columns : sequence of str
        Columns that describe the subject (e.g. ``run``, ``step`` of a checkpoint)
        rather than items: kept as text in ``subject_meta``.

    Returns
    -------
    ResponseMatrix
    """
    table = read_table(path)
    check_header(table, first=1, kind="item")
    if not table.rows:
        raise DataError(f"{table.path}: no subjects (header only)")
    lack = [c for c in subject_columns if c not in table.header[1:]]
    if lack:
        raise DataError(f"{table.path}: no column(s) {', '.join(map(repr, lack))} in the header")
    keep = [k for k, c in enumerate(table.header) if k == 0 or c not in subject_columns]
    subjects = row_ids(table, kind="subject")
    meta = None
    if subject_columns:
        cols = [table.header.index(c) for c in subject_columns]
        meta = pd.DataFrame([[row[k] for k in cols] for row in table.rows],
                            index=subjects, columns=list(subject_columns))  # fmt: skip
        table = Table(table.path, [table.header[k] for k in keep],
                       [[row[k] for k in keep] for row in table.rows], table.lines,
                       table.unit)  # fmt: skip
    if len(table.header) < 2:
        raise DataError(f"{table.path}: no items (only the subject id column)")
    items = table.header[1:]

    def where(r: int, c: int) -> str:
        return f"{table.where(r)} (subject {subjects[r]!r}), item {items[c]!r}"

    values = parse_scores(table_body(table, 1), where)
    return from_array(
        values, subjects=subjects, items=items, threshold=threshold, source=table.path,
        subject_meta=meta,
    )  # fmt: skip


def read_fb(path: str | Path, *, threshold: float | None = 0.5) -> ResponseMatrix:
    """Read the reference Fluid Benchmarking layout: one row per item.

    Parameters
    ----------
    path : str or Path
        CSV or parquet file; the first column holds the item ids, every other column is
        a subject (a model or checkpoint). Never auto-detected: pass ``format="fb"``.
    threshold : float, optional
        Scores ``>= threshold`` count as correct (default 0.5, as in the reference
        implementation); recorded in the report.

    Returns
    -------
    ResponseMatrix
        Transposed to subjects x items.
    """
    table = read_table(path)
    check_header(table, first=1, kind="subject")
    if len(table.header) < 2:
        raise DataError(f"{table.path}: no subjects (only the item id column)")
    if not table.rows:
        raise DataError(f"{table.path}: no items (header only)")
    items = row_ids(table, kind="item")
    subjects = table.header[1:]

    def where(r: int, c: int) -> str:
        return f"{table.where(r)} (item {items[r]!r}), subject {subjects[c]!r}"

    values = parse_scores(table_body(table, 1), where)
    return from_array(
        values.T, subjects=subjects, items=items, threshold=threshold, source=table.path
    )


def read_long(path: str | Path, *, threshold: float | None = None) -> ResponseMatrix:
    """Read a long table: one row per (subject, item) answer.

    Parameters
    ----------
    path : str or Path
        CSV or parquet file with a subject column (``subject``, ``subject_id`` or
        ``model``), an item column (``item`` or ``item_id``) and a score column
        (``score``, ``correct``, ``value`` or ``response``); names are case-insensitive.
        Other columns are ignored (and reported in ``report.notes``).
    threshold : float, optional
        Binarization threshold, required if some score is neither 0 nor 1.

    Returns
    -------
    ResponseMatrix
        Subjects and items in first-seen order; pairs absent from the file are missing.
    """
    table = read_table(path)
    cols = {}
    for role, names in (
        ("subject", _SUBJECT_COLS),
        ("item", _ITEM_COLS),
        ("score", _SCORE_COLS),
    ):
        k = find_column(
            table.header,
            names,
            path=table.path,
            role=f"{role} id" if role != "score" else "score",
        )
        if k < 0:
            raise DataError(
                f"{table.path}: no {role} column (expected one of {', '.join(names)});"
                f" columns are {', '.join(repr(c) for c in table.header)}"
            )
        cols[role] = k
    if not table.rows:
        raise DataError(f"{table.path}: no subjects (header only)")
    si, ii, vi = cols["subject"], cols["item"], cols["score"]
    subj_pos: dict[str, int] = {}
    item_pos: dict[str, int] = {}
    first_line: dict[tuple[str, str], int] = {}
    pairs = []
    for k, row in enumerate(table.rows):
        s, i = row[si], row[ii]
        for v, role in ((s, "subject"), (i, "item")):
            if v.lower() in NA:
                raise DataError(f"{table.where(k)}: missing {role} id")
        if (s, i) in first_line:
            raise DataError(
                f"{table.where(k)}: duplicate answer of subject {s!r} to item {i!r}"
                f" (first on {table.unit} {first_line[(s, i)]})"
            )
        first_line[(s, i)] = table.lines[k]
        pairs.append(
            (
                subj_pos.setdefault(s, len(subj_pos)),
                item_pos.setdefault(i, len(item_pos)),
            )
        )
    subjects, items = list(subj_pos), list(item_pos)
    raw = np.array([[row[vi]] for row in table.rows], dtype=str).reshape(-1, 1)

    def where(r: int, c: int) -> str:
        row = table.rows[r]
        return f"{table.where(r)} (subject {row[si]!r}), item {row[ii]!r}"

    scores = parse_scores(raw, where)[:, 0]
    values = np.full((len(subjects), len(items)), np.nan)
    idx = np.array(pairs, dtype=np.intp)
    values[idx[:, 0], idx[:, 1]] = scores
    ignored = [c for k, c in enumerate(table.header) if k not in (si, ii, vi)]
    notes = (f"{table.path}: ignored column(s) {', '.join(map(repr, ignored))}",) if ignored else ()
    return from_array(
        values,
        subjects=subjects,
        items=items,
        threshold=threshold,
        source=table.path,
        notes=notes,
    )


def read_pyirt(path: str | Path, *, threshold: float | None = None) -> ResponseMatrix:
    """Read py-irt JSON lines: ``{"subject_id": ..., "responses": {item: 0/1, ...}}``.

    Parameters
    ----------
    path : str or Path
        One JSON object per line; blank lines are skipped. Other keys are ignored.
    threshold : float, optional
        Binarization threshold, required if some score is neither 0 nor 1.

    Returns
    -------
    ResponseMatrix
        Items are the union of all responses, in first-seen order; an item a subject
        has no response for is missing.
    """
    p = check_file(path)
    name = str(path)
    subjects: list[str] = []
    seen: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    item_pos: dict[str, int] = {}
    for n, obj in json_lines(p, name):
        lacking = [k for k in ("subject_id", "responses") if k not in obj]
        if lacking:
            raise DataError(f"{name}, line {n}: missing key(s) {', '.join(lacking)}")
        sid, resp = obj["subject_id"], obj["responses"]
        if sid is None or isinstance(sid, dict | list) or str(sid).strip() == "":
            raise DataError(f"{name}, line {n}: invalid subject_id {sid!r}")
        sid = str(sid)
        if sid in seen:
            raise DataError(
                f"{name}, line {n}: duplicate subject {sid!r} (first on line {seen[sid]})"
            )
        if not isinstance(resp, dict):
            raise DataError(f"{name}, line {n} (subject {sid!r}): responses must be a JSON object")
        row = {}
        for item, v in resp.items():
            where = f"{name}, line {n} (subject {sid!r}), item {item!r}"
            if v is None:
                continue
            row[item_pos.setdefault(item, len(item_pos))] = score_value(v, where)
        seen[sid] = n
        subjects.append(sid)
        records.append(row)
    if not subjects:
        raise DataError(f"{name}: empty file, no subjects")
    values = np.full((len(subjects), len(item_pos)), np.nan)
    for r, row in enumerate(records):
        if row:
            values[r, list(row)] = list(row.values())
    return from_array(
        values,
        subjects=subjects,
        items=list(item_pos),
        threshold=threshold,
        source=name,
    )


def read_patterns(path: str | Path, *, threshold: float | None = None) -> ResponseMatrix:
    """Read response patterns with frequencies (e.g. the LSAT-6 / LSAT-7 data).

    Parameters
    ----------
    path : str or Path
        CSV or parquet file: one frequency column (``freq``, ``frequency``, ``count`` or
        ``n``, case-insensitive; a non-negative integer) and one 0/1 column per item.
    threshold : float, optional
        Binarization threshold, only needed for continuous item columns.

    Returns
    -------
    ResponseMatrix
        Pattern row ``r`` (1-based, in file order) is expanded into ``freq`` subjects
        named ``f"pattern{r}_{k}"``, ``k = 1..freq``; ``subject_meta`` has the pattern
        number of each subject in column ``"pattern"``.
    """
    table = read_table(path)
    fk = find_column(table.header, _FREQ_COLS, path=table.path, role="frequency")
    if fk < 0:
        raise DataError(
            f"{table.path}: no frequency column (expected one of {', '.join(_FREQ_COLS)})"
        )
    item_cols = [k for k in range(len(table.header)) if k != fk]
    items = [table.header[k] for k in item_cols]
    for k, col in zip(item_cols, items, strict=True):
        if not col:
            raise DataError(f"{table.path}: column {k + 1} of the header has no item id")
    dup = duplicates(items)
    if dup:
        raise DataError(f"{table.path}: duplicate item(s) in the header: {dup}")
    if not table.rows:
        raise DataError(f"{table.path}: no subjects (header only)")
    freqs = []
    for k, row in enumerate(table.rows):
        raw = row[fk]
        try:
            f = float(raw)
        except ValueError:
            f = math.nan
        if not math.isfinite(f) or f != int(f) or f < 0:
            raise DataError(f"{table.where(k)}: frequency {raw!r} is not a non-negative integer")
        freqs.append(int(f))
    cells = np.array([[row[k] for k in item_cols] for row in table.rows], dtype=str)
    cells = cells.reshape(len(table.rows), len(items))

    def where(r: int, c: int) -> str:
        return f"{table.where(r)} (pattern {r + 1}), item {items[c]!r}"

    patterns = parse_scores(cells, where)
    counts = np.array(freqs, dtype=np.intp)
    if counts.sum() == 0:
        raise DataError(f"{table.path}: no subjects (all frequencies are 0)")
    values = np.repeat(patterns, counts, axis=0)
    subjects = [f"pattern{r}_{k}" for r, f in enumerate(freqs, start=1) for k in range(1, f + 1)]
    pattern_of = np.repeat(np.arange(1, len(freqs) + 1), counts)
    meta = pd.DataFrame({"pattern": pattern_of}, index=pd.Index(subjects, name="subject"))
    return from_array(
        values,
        subjects=subjects,
        items=items,
        subject_meta=meta,
        threshold=threshold,
        source=table.path,
        notes=(f"{table.path}: {len(freqs)} pattern(s) expanded into {len(subjects)} subjects",),
    )


def read_item_meta(path: str | Path) -> pd.DataFrame:
    """Read item metadata (CSV or parquet) indexed by item id.

    Parameters
    ----------
    path : str or Path
        The item id is column ``item_id``, else ``item`` (case-insensitive), else
        the first column. Other columns are kept; all-number ones become numeric.

    Returns
    -------
    pandas.DataFrame
        Index name ``"item"``.
    """
    table = read_table(path)
    lower = [c.lower() for c in table.header]
    k = next((lower.index(c) for c in _ITEM_COLS if c in lower), 0)
    ids = row_ids(
        Table(
            table.path,
            table.header,
            [[r[k]] for r in table.rows],
            table.lines,
            table.unit,
        ),
        kind="item",
    )
    data: dict[str, Any] = {}
    for j, col in enumerate(table.header):
        if j == k:
            continue
        if col in data:
            raise DataError(f"{table.path}: duplicate column {col!r} in the header")
        s = pd.Series([r[j] for r in table.rows], dtype=object)
        s = s.where(~s.str.lower().isin(NA), np.nan)
        try:
            s = pd.to_numeric(s)
        except (ValueError, TypeError):
            pass
        data[col] = s.to_numpy()
    return pd.DataFrame(data, index=pd.Index(ids, name="item"))


def detect_format(path: str | Path) -> str:
    """Guess the format of a response file from its name and header.

    Harness logs are named by :func:`fluid_bayes.data.harness_logs.detect_harness_format`
    (a directory of several harnesses' logs is an error); any other directory is
    ``"lm-eval"``; other ``.jsonl`` / ``.jsonlines`` / ``.json`` files are ``"pyirt"``.
    For tables (CSV or parquet): columns naming a subject, an item and a score make
    ``"long"``; a frequency column whose other columns hold only 0/1 makes ``"patterns"``;
    anything else is ``"wide"``. The Fluid Benchmarking layout (``"fb"``) looks like a
    wide table and is never detected: pass ``format="fb"``.
    """
    p = Path(path)
    if (kind := detect_harness_format(p)) is not None or p.is_dir():
        return kind or "lm-eval"
    p = check_file(path)
    if p.suffix.lower() in _JSON_SUFFIXES:
        return "pyirt"
    table = read_table(p)
    lower = [c.lower() for c in table.header]
    if all(any(c in names for c in lower) for names in (_SUBJECT_COLS, _ITEM_COLS, _SCORE_COLS)):
        return "long"
    freq = [k for k, c in enumerate(lower) if c in _FREQ_COLS]
    if len(freq) == 1 and len(lower) > 1 and table.rows:
        others = [row[k].lower() for row in table.rows for k in range(len(lower)) if k != freq[0]]
        if set(others) <= {"0", "1", "0.0", "1.0"} | NA:
            return "patterns"
    return "wide"


def _normalize_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """Index item metadata by item id (its ``item_id``/``item`` column if unindexed)."""
    if isinstance(meta.index, pd.RangeIndex) and meta.index.name is None:
        cols = [c for c in meta.columns if str(c).lower() in _ITEM_COLS]
        if len(cols) == 1:
            meta = meta.set_index(cols[0])
    meta = meta.copy()
    meta.index = meta.index.astype(str)
    meta.index.name = "item"
    return meta


def read_responses(
    path: str | Path,
    *,
    format: str = "auto",  # noqa: A002 - the public keyword name
    threshold: float | None = None,
    item_meta: str | Path | pd.DataFrame | None = None,
    metric: str | None = None,
    filter: str | None = None,  # noqa: A002 - lm-eval's own word
    subject_columns: Sequence[str] = (),
) -> ResponseMatrix:
    """Read a response file in any supported format.

    Parameters
    ----------
    path : str or Path
        The response file (for harness logs, a log file or a directory of them).
    format : {"auto", "wide", "long", "pyirt", "fb", "patterns", "lm-eval", "inspect", ...}
        :data:`FORMATS`; ``"auto"`` uses :func:`detect_format` (which never picks ``"fb"``).
        Harness logs: :func:`fluid_bayes.data.eval_records.read_log` with its defaults.
    threshold : float, optional
        Binarization threshold; for ``"fb"`` the default is 0.5.
    item_meta : str, Path or pandas.DataFrame, optional
        Item metadata to attach (see :func:`read_item_meta`); every item needs a row.
    metric, filter : str, optional
        Harness logs only: the metric (the scorer, stat or result id) and lm-eval's filter.
    subject_columns : sequence of str
        Wide tables only: columns that describe subjects (e.g. ``run``, ``step``),
        kept in ``subject_meta`` instead of being read as items.

    Returns
    -------
    ResponseMatrix
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if format == "auto":
        format = detect_format(path)  # noqa: A001
    if (metric is not None or filter is not None) and format not in LOG_FORMATS:
        raise DataError(
            f"{path}: metric and filter apply to lm-eval samples and other harness logs,"
            f" not {format!r}"
        )
    if subject_columns and format != "wide":
        raise DataError(f"{path}: subject columns apply to wide tables, not {format!r}")
    if format == "fb":
        rm = read_fb(path, threshold=0.5 if threshold is None else threshold)
    elif format in LOG_FORMATS:
        rm = read_log(path, format=format, metric=metric, filter=filter, threshold=threshold)
    else:
        reader = {
            "wide": partial(read_wide, subject_columns=tuple(subject_columns)),
            "long": read_long,
            "pyirt": read_pyirt,
            "patterns": read_patterns,
        }[format]
        rm = reader(path, threshold=threshold)
    if item_meta is not None:
        if isinstance(item_meta, pd.DataFrame):
            rm = rm.with_item_meta(_normalize_meta(item_meta), source="item metadata")
        else:
            rm = rm.with_item_meta(read_item_meta(item_meta), source=str(item_meta))
    return rm


def read_point_params(path: str | Path) -> pd.DataFrame:
    """Read an ``item_id,a,b`` CSV of point estimates (py-irt, mirt, the paper's banks).

    Also accepts slope-intercept form (``item_id,a,d`` with ``P = logistic(a*theta + d)``,
    converted by ``b = -d / a``) and the column names ``item``/``discrimination``/
    ``difficulty``.

    Returns
    -------
    pandas.DataFrame
        Index ``item``; columns ``a``, ``b`` (float64) and any extra columns.

    Raises
    ------
    DataError
        Missing columns, non-numeric or non-finite values (with line number and
        item id), duplicate item ids, ``a == 0`` with an intercept.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if hint := delimiter_hint([str(c) for c in df.columns], ","):
        raise DataError(f"{path}, line 1: {hint}")
    if df.empty:
        raise DataError(f"{path}: no items")
    lower = {c.lower().strip(): c for c in df.columns}
    rename = {"item_id": "item", "discrimination": "a", "difficulty": "b", "intercept": "d"}
    cols = {rename.get(k, k): v for k, v in lower.items()}
    if "item" not in cols:
        raise DataError(f"{path}: needs an item_id column (have {list(df.columns)})")
    if "a" not in cols or not ({"b", "d"} & set(cols)):
        raise DataError(f"{path}: needs columns a and b (or a and d) (have {list(df.columns)})")
    items = df[cols["item"]].str.strip()
    check_ids(items.tolist(), lambda k: f"{path}, line {k + 2}", kind="item")
    dup = items[items.duplicated()].tolist()
    if dup:
        raise DataError(f"{path}: duplicate item id(s) {dup[:10]}")
    out = pd.DataFrame(index=pd.Index(items.tolist(), name=ITEM))

    def numeric(col: str) -> np.ndarray:
        vals = df[cols[col]].str.strip()
        num = pd.to_numeric(vals, errors="coerce")
        bad = ~np.isfinite(num.to_numpy(float))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}, line {k + 2}, item {items.iloc[k]!r}: {col} = {vals.iloc[k]!r} "
                "is not a finite number"
            )
        return num.to_numpy(float)

    a = numeric("a")
    if "b" in cols:
        b = numeric("b")
    else:
        d = numeric("d")
        zero = np.flatnonzero(a == 0)
        if zero.size:
            k = int(zero[0])
            raise DataError(
                f"{path}, line {k + 2}, item {items.iloc[k]!r}: a = 0, b = -d/a undefined"
            )
        b = -d / a
    out["a"], out["b"] = a, b
    for key, col in cols.items():
        if key not in ("item", "a", "b", "d"):
            out[key] = df[col].to_numpy()
    return out
