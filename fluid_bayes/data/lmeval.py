"""Reader of lm-evaluation-harness per-sample logs into a :class:`ResponseMatrix`.

lm-eval (EleutherAI) run with ``--log_samples`` writes, per model, one file
``samples_<task>_<timestamp>.jsonl`` per task, usually under
``<output_path>/<model_name_sanitized>/``. Each line is one scored sample: ``doc_id``
(the document's index in the task), ``filter`` (the post-processing of the answer, e.g.
``"none"``, or ``"strict-match"`` / ``"flexible-extract"`` for gsm8k: one line per
document and filter), ``metrics`` (the names of the metric fields) and one field per
metric (``"acc": 1.0``), besides ``doc``, ``target``, ``resps``, ``filtered_resps`` and
hashes, which are ignored.

Ids
---
* Task: the file name without ``samples_`` and ``.jsonl`` and without a trailing
  ``_<timestamp>``, a timestamp being ``YYYY-MM-DDTHH-MM-SS`` with optional fractional
  seconds (lm-eval's ``datetime.isoformat()`` with ``:`` replaced by ``-``; ``:`` is also
  accepted). A name without such a timestamp is the task whole: ``samples_arc_easy.jsonl``
  is task ``arc_easy``.
* Item: ``<task>/<doc_id>``, tasks in order of first appearance, documents by ``doc_id``.
* Subject: for a directory, the directory of each file relative to it (the model folder,
  ``/``-separated; the directory's own name for files directly in it); for one file,
  the name of its parent directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from fluid_bayes.data.responses import ResponseMatrix, from_array
from fluid_bayes.data.tables import json_lines, parse_scores
from fluid_bayes.exceptions import DataError

__all__ = ["read_lm_eval"]

_DEFAULT_METRICS = ("acc", "exact_match")
_TIMESTAMP = re.compile(r"_\d{4}-\d{2}-\d{2}T\d{2}[-:]\d{2}[-:]\d{2}(?:\.\d+)?$")


def _task_name(filename: str) -> str:
    """Task of a samples file name (see the module docstring for the rule)."""
    stem = filename.removesuffix(".jsonl").removeprefix("samples_")
    return _TIMESTAMP.sub("", stem)


def _samples_files(path: Path) -> list[tuple[Path, str]]:
    """The samples files under ``path`` with the subject id of each."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        return [(path, path.resolve().parent.name)]
    files = sorted(p for p in path.rglob("samples_*.jsonl") if p.is_file())
    if not files:
        raise DataError(
            f"{path}: no samples_<task>_<timestamp>.jsonl files found (the per-sample"
            " output of lm-eval --log_samples)"
        )
    out = []
    for f in files:
        rel = f.parent.relative_to(path).as_posix()
        out.append((f, path.resolve().name if rel == "." else rel))
    return out


def _read_lines(p: Path) -> list[tuple[int, int, str, dict[str, Any]]]:
    """Parse a samples file: (line number, doc_id, filter, record) per non-blank line."""
    records = []
    for n, obj in json_lines(p, str(p)):
        if "doc_id" not in obj:
            raise DataError(f"{p}, line {n}: missing field 'doc_id'")
        doc = obj["doc_id"]
        if isinstance(doc, bool) or not isinstance(doc, int):
            raise DataError(f"{p}, line {n}: doc_id {doc!r} is not an integer")
        flt = obj.get("filter", "none")
        if not isinstance(flt, str):
            raise DataError(f"{p}, line {n} (doc_id {doc}): filter {flt!r} is not text")
        records.append((n, doc, flt, obj))
    if not records:
        raise DataError(f"{p}: empty file, no samples")
    return records


def _pick_filter(
    p: Path, records: list[tuple[int, int, str, dict[str, Any]]], wanted: str | None
) -> tuple[str, tuple[str, ...]]:
    """The filter whose lines are read, and report notes."""
    found = list(dict.fromkeys(r[2] for r in records))
    shown = ", ".join(map(repr, found))
    if len(found) == 1:
        if wanted is not None and wanted != found[0]:
            return found[0], (f"{p}: no filter {wanted!r}; read its only filter {found[0]!r}",)
        return found[0], ()
    if wanted is None:
        raise DataError(
            f"{p}: several filters ({shown}) score each doc_id; choose one with filter="
        )
    if wanted not in found:
        raise DataError(f"{p}: no lines with filter {wanted!r}; filters found: {shown}")
    return wanted, ()


def _pick_metric(p: Path, n: int, doc: int, obj: dict[str, Any]) -> str:
    """Default metric of a file from its first record: acc, exact_match, first listed."""
    for m in _DEFAULT_METRICS:
        if m in obj:
            return m
    listed = obj.get("metrics")
    if isinstance(listed, list) and listed:
        return str(listed[0])
    raise DataError(
        f"{p}, line {n} (doc_id {doc}): no 'acc' or 'exact_match' field and no 'metrics'"
        " list; name the metric with metric="
    )


def read_lm_eval(
    path: str | Path,
    *,
    metric: str | None = None,
    threshold: float | None = None,
    filter: str | None = None,  # noqa: A002 - lm-eval's own name for it
) -> ResponseMatrix:
    """Read lm-evaluation-harness per-sample logs (``--log_samples`` output).

    Parameters
    ----------
    path : str or Path
        One ``samples_<task>_<timestamp>.jsonl`` file (one subject, named after the
        file's parent directory), or a directory searched recursively for
        ``samples_*.jsonl`` files (subject = each file's directory relative to it). Item
        ids are ``<task>/<doc_id>``; see the module docstring for the exact rules.
    metric : str, optional
        The metric field to score. Default, per file: ``acc`` if the first sample has
        it, else ``exact_match``, else the first name of its ``metrics`` list. The
        choice per task is recorded in ``report.notes``.
    threshold : float, optional
        Binarization threshold (score ``>= threshold`` is correct), required if some
        score is neither 0 nor 1.
    filter : str, optional
        Which ``filter`` lines to read in a file that scores each document under several
        filters (required there). A file with a single filter is read whatever this says
        (noted in the report when it differs).

    Returns
    -------
    ResponseMatrix
        Documents a subject has no sample for are missing (NaN); so are ``null`` scores.

    Raises
    ------
    DataError
        No samples files, an empty file, invalid JSON, a missing or non-integer
        ``doc_id``, a missing metric, a value not a number in [0, 1], a duplicate
        ``doc_id`` under one filter, several filters and no ``filter=``, or two files of
        one subject and task; messages name the file, line and ``doc_id``.
    """
    root = Path(path)
    files = _samples_files(root)
    owner: dict[tuple[str, str], Path] = {}
    task_info: dict[str, tuple[str, Path, set[str]]] = {}  # task -> metric, its file, filters
    docs: dict[str, set[int]] = {}
    subjects: dict[str, int] = {}
    cells: list[tuple[int, str, int]] = []  # (subject row, task, doc_id) per value
    raw: list[str] = []
    locs: list[tuple[Path, int, int, str]] = []  # (file, line, doc_id, metric) per value
    notes: list[str] = []
    for p, subject in files:
        task = _task_name(p.name)
        if not task:
            raise DataError(f"{p}: no task name in the file name")
        if (subject, task) in owner:
            raise DataError(
                f"{p}: second samples file of subject {subject!r} and task {task!r} (the"
                f" first is {owner[(subject, task)]}); keep one"
            )
        owner[(subject, task)] = p
        records = _read_lines(p)
        flt, flt_notes = _pick_filter(p, records, filter)
        notes.extend(flt_notes)
        records = [r for r in records if r[2] == flt]
        n0, doc0, _, obj0 = records[0]
        chosen = metric if metric is not None else _pick_metric(p, n0, doc0, obj0)
        if task in task_info and task_info[task][0] != chosen:
            raise DataError(
                f"{p}: default metric {chosen!r} differs from {task_info[task][0]!r} for"
                f" the same task in {task_info[task][1]}; name the metric with metric="
            )
        task_info.setdefault(task, (chosen, p, set()))[2].add(flt)
        row = subjects.setdefault(subject, len(subjects))
        first: dict[int, int] = {}
        for n, doc, _, obj in records:
            where = f"{p}, line {n} (doc_id {doc})"
            if doc in first:
                raise DataError(
                    f"{where}: duplicate doc_id {doc} with filter {flt!r}"
                    f" (first on line {first[doc]})"
                )
            first[doc] = n
            if chosen not in obj:
                listed = obj.get("metrics")
                have = (
                    f" (its metrics: {', '.join(map(str, listed))})"
                    if isinstance(listed, list) and listed
                    else ""
                )
                raise DataError(f"{where}: missing metric {chosen!r}{have}")
            value = obj[chosen]
            raw.append(str(float(value) if isinstance(value, bool) else value))
            locs.append((p, n, doc, chosen))
            cells.append((row, task, doc))
        docs.setdefault(task, set()).update(first)

    def where(r: int, c: int) -> str:
        p, n, doc, m = locs[r]
        return f"{p}, line {n} (doc_id {doc}), metric {m!r}"

    scores = parse_scores(np.array(raw, dtype=str).reshape(-1, 1), where)
    items = [f"{t}/{d}" for t in task_info for d in sorted(docs[t])]
    col = {item: k for k, item in enumerate(items)}
    values = np.full((len(subjects), len(items)), np.nan)
    for (row, task, doc), v in zip(cells, scores[:, 0], strict=True):
        values[row, col[f"{task}/{doc}"]] = v
    how = "as asked" if metric is not None else "default"
    notes[:0] = [f"{root}: {len(files)} lm-eval samples file(s), {len(task_info)} task(s)"] + [
        f"task {t!r}: metric {m!r} ({how}), filter {', '.join(map(repr, sorted(f)))}"
        for t, (m, _, f) in task_info.items()
    ]
    return from_array(
        values,
        subjects=list(subjects),
        items=items,
        threshold=threshold,
        source=str(root),
        notes=notes,
    )
