"""Readers of Inspect AI and lighteval per-sample logs into a :class:`ResponseMatrix`.

Also :class:`ScoreCells`, the scores of one read gathered record by record (shared with
:mod:`fluid_bayes.data.eval_records`), and :func:`detect_harness_format`, which names the
harness whose logs a path holds.

Inspect AI (``format="inspect"``)
    ``.eval`` logs (Inspect's zip format) and ``.json`` logs, read with Inspect's own
    ``inspect_ai.log.read_eval_log`` (the optional extra ``fluid-bayes[inspect]``).
    Subject: ``log.eval.model`` (e.g. ``openai/gpt-4o``); item: ``<log.eval.task>/<sample
    id>``. The score is the sample's ``Score.value`` of one scorer, mapped to a number by
    ``inspect_ai.scorer.value_to_float()`` (``C`` = 1, ``I`` = 0, ``P`` = 0.5, ``N`` = 0,
    yes/no, true/false, numbers as they are); a value it cannot map (a list, a dict,
    other text) is an error, not Inspect's silent 0. With several epochs the epochs'
    values of a sample are averaged (Inspect's default ``mean`` reducer).
lighteval (``format="lighteval"``)
    ``details_<task>_<timestamp>.parquet``, written by lighteval's ``EvaluationTracker``
    under ``<output_dir>/details/<model>/<timestamp>/``: one row per sample (the
    ``asdict`` of its ``Detail``, columns sorted). From lighteval 0.11 the columns are
    ``doc``, ``metric`` and ``model_response`` (structs; the score is
    ``metric[<name>]``, the document id ``doc.id``, its index in the task's split); in
    lighteval 0.10 one column per ``Detail`` field, the scores in ``metrics`` (a struct);
    before 0.10 the same columns as text, ``metrics`` a Python ``repr`` of a dict. Item:
    ``<task>/<doc.id>``, or ``<task>/<row index>`` where the file has no document ids;
    the task is the file name's (e.g. ``arc:challenge|25``). Subject: the model folder,
    the path below ``details/`` without the timestamp folder (``org/model``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fluid_bayes.data.report import show_ids
from fluid_bayes.data.responses import ResponseMatrix, from_array
from fluid_bayes.data.tables import score_value
from fluid_bayes.exceptions import DataError

__all__ = [
    "INSPECT_EXTRA",
    "ScoreCells",
    "detect_harness_format",
    "read_inspect",
    "read_lighteval",
]

INSPECT_EXTRA = "pip install fluid-bayes[inspect]"

_TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}[-:]\d{2}[-:]\d{2}(?:\.\d+)?"
_STAMP_DIR = re.compile(rf"^{_TIMESTAMP}$")
_DETAILS_NAME = re.compile(rf"^details_(?P<task>.+?)(?:_{_TIMESTAMP})?\.parquet$")
_INSPECT_JSON_HEAD = re.compile(r'^\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:')
_EEE_KEYS = frozenset({"schema_version", "evaluation_id", "sample_id", "evaluation"})
_LIGHTEVAL_DEFAULTS = ("acc", "em", "exact_match", "extractive_match", "quasi_exact_match")


class ScoreCells:
    """Scores of one read, gathered record by record, then one :class:`ResponseMatrix`.

    Parameters
    ----------
    source : str
        The path read, for messages and the report.
    repeats : str
        What a repeat of one subject and item is called in the report (``"epochs"``).

    Notes
    -----
    A subject and item given twice is an error unless the two carry distinct ``repeat``
    keys (epochs, trials): repeats are averaged. Missing scores (None or NaN) are counted
    and listed in the report; an item or subject with no score at all is left out and
    named there, never dropped silently.
    """

    def __init__(self, source: str, *, repeats: str = "repeats") -> None:
        self.source = source
        self.repeats = repeats
        self._subjects: dict[str, int] = {}
        self._items: dict[str, int] = {}
        self._cells: dict[tuple[str, str], dict[Hashable, tuple[float, str]]] = {}
        self._missing: dict[str, list[str]] = {}  # reason -> "subject, item" labels
        self._seen: set[tuple[str, str]] = set()

    def add(
        self,
        subject: str,
        item: str,
        value: Any,
        *,
        where: str,
        repeat: Hashable = None,
        missing: str = "no score",
    ) -> None:
        """Record one score.

        Parameters
        ----------
        subject, item : str
            The ids.
        value : float, bool, int or None
            The score in [0, 1]; None or NaN is a missing score, counted under
            ``missing`` (the reason shown in the report).
        where : str
            The record's location (file, line or record, field) for messages.
        repeat : hashable, optional
            The repeat (epoch, trial) this score is of; None: the only one.
        missing : str
            Why the score is missing, when it is.

        Raises
        ------
        DataError
            A value not a finite number in [0, 1], or the same subject, item and repeat
            twice.
        """
        key = (subject, item)
        reps = self._cells.setdefault(key, {})
        if repeat in reps or (repeat is None and reps) or (None in reps):
            first = reps.get(repeat, next(iter(reps.values()), (0.0, "?")))[1]
            what = f"{self.repeats[:-1]} {repeat!r} of " if repeat is not None else ""
            raise DataError(
                f"{where}: second score for {what}subject {subject!r}, item {item!r}"
                f" (the first: {first})"
            )
        if value is None or (isinstance(value, float) and math.isnan(value)):
            reps[repeat] = (math.nan, where)
            self._missing.setdefault(missing, []).append(f"{subject}: {item}")
            return
        reps[repeat] = (score_value(value, where), where)
        self._subjects.setdefault(subject, len(self._subjects))
        self._items.setdefault(item, len(self._items))

    def __len__(self) -> int:
        """Number of (subject, item) cells given, with or without a score."""
        return len(self._cells)

    def build(self, *, threshold: float | None, notes: Iterable[str] = ()) -> ResponseMatrix:
        """Average the repeats and validate with :func:`from_array`.

        Parameters
        ----------
        threshold : float, optional
            Binarization threshold (score ``>= threshold`` is correct), required if some
            score (or average of repeats) is neither 0 nor 1.
        notes : iterable of str
            Report lines of the reader, put first.

        Returns
        -------
        ResponseMatrix
        """
        if not self._items:
            reasons = "; ".join(f"{len(v)} {k}" for k, v in self._missing.items())
            raise DataError(f"{self.source}: no scores read ({reasons or 'no records'})")
        values = np.full((len(self._subjects), len(self._items)), np.nan)
        n_averaged = 0
        sizes: set[int] = set()
        for (subject, item), reps in self._cells.items():
            scores = [v for v, _ in reps.values() if not math.isnan(v)]
            if not scores:
                continue
            if len(reps) > 1:
                n_averaged += 1
                sizes.add(len(reps))
            values[self._subjects[subject], self._items[item]] = sum(scores) / len(scores)
        out = list(notes)
        if n_averaged:
            shown = ", ".join(map(str, sorted(sizes)))
            out.append(
                f"{n_averaged} score(s) are the mean over {shown} {self.repeats} (missing"
                f" {self.repeats} left out of the mean)"
            )
        for reason, cells in self._missing.items():
            out.append(f"{len(cells)} record(s) without a score ({reason}): {show_ids(cells)}")
        given = {s for s, _ in self._cells}
        lost = [s for s in given if s not in self._subjects]
        if lost:
            out.append(f"{len(lost)} subject(s) with no score at all, left out: {show_ids(lost)}")
        given_items = list(dict.fromkeys(i for _, i in self._cells))
        lost = [i for i in given_items if i not in self._items]
        if lost:
            out.append(f"{len(lost)} item(s) nobody has a score for, left out: {show_ids(lost)}")
        return from_array(
            values,
            subjects=list(self._subjects),
            items=list(self._items),
            threshold=threshold,
            source=self.source,
            notes=out,
        )


# -- finding files -----------------------------------------------------------------------


def _first_json_line(p: Path) -> dict[str, Any] | None:
    """The first non-blank line of a file parsed as a JSON object, or None."""
    try:
        with p.open(encoding="utf-8-sig") as fh:
            for line in fh:
                if line.strip():
                    obj = json.loads(line)
                    return obj if isinstance(obj, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


def _is_inspect_json(p: Path) -> bool:
    """Whether a ``.json`` file starts like an Inspect log (``{"version": N, "status"``)."""
    try:
        with p.open(encoding="utf-8") as fh:
            head = fh.read(512)
    except (OSError, UnicodeDecodeError):
        return False
    return bool(_INSPECT_JSON_HEAD.match(head))


def _file_kind(p: Path) -> str | None:
    """The harness whose log the file ``p`` is, from its name and first bytes."""
    name, suffix = p.name, p.suffix.lower()
    if suffix == ".eval":
        return "inspect"
    if name == "per_instance_stats.json":
        return "helm"
    if _DETAILS_NAME.match(name):
        return "lighteval"
    if name.startswith("samples_") and name.endswith(".jsonl"):
        return "lm-eval"
    if suffix == ".json" and _is_inspect_json(p):
        return "inspect"
    if suffix in (".jsonl", ".json"):
        first = _first_json_line(p)
        if first is not None and _EEE_KEYS <= first.keys():
            return "eee"
    return None


def detect_harness_format(path: str | Path) -> str | None:
    """Name the harness whose per-sample logs ``path`` is or holds.

    Parameters
    ----------
    path : str or Path
        A log file or a directory searched recursively.

    Returns
    -------
    str or None
        ``"inspect"`` (``*.eval``, or ``*.json`` starting as Inspect's JSON logs do),
        ``"lighteval"`` (``details_*.parquet``), ``"helm"`` (``per_instance_stats.json``),
        ``"eee"`` (JSON lines whose first record has every_eval_ever's
        ``schema_version``, ``evaluation_id``, ``sample_id`` and ``evaluation``) or
        ``"lm-eval"`` (``samples_*.jsonl``); None for a file of none of these, or a
        directory with none of them.

    Raises
    ------
    DataError
        A directory holding the logs of several harnesses.
    """
    p = Path(path)
    if p.is_file():
        return _file_kind(p)
    if not p.is_dir():
        return None
    kinds: dict[str, Path] = {}
    for f in sorted(p.rglob("*")):
        if f.suffix.lower() in (".eval", ".json", ".jsonl", ".parquet") and f.is_file():
            kind = _file_kind(f)
            if kind is not None:
                kinds.setdefault(kind, f)
    if len(kinds) > 1:
        found = ", ".join(f"{k} ({f})" for k, f in kinds.items())
        raise DataError(
            f"{p}: holds the logs of several harnesses: {found}; choose one with format="
        )
    return next(iter(kinds), None)


def _find(path: Path, kind: str, what: str) -> list[Path]:
    """The files of harness ``kind`` at ``path`` (one file, or a directory's, sorted)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(f for f in path.rglob("*") if f.is_file() and _file_kind(f) == kind)
    if not files:
        raise DataError(f"{path}: no {what} found")
    return files


# -- Inspect AI ---------------------------------------------------------------------------


def _inspect_api(path: Path) -> tuple[Callable[..., Any], Callable[[Any], float], set[str]]:
    """``read_eval_log``, ``value_to_float()`` and the texts it maps, or a DataError."""
    try:
        from inspect_ai.log import read_eval_log
        from inspect_ai.scorer import CORRECT, INCORRECT, NOANSWER, PARTIAL, value_to_float
    except ImportError:
        raise DataError(
            f"{path}: reading Inspect AI logs needs inspect_ai: {INSPECT_EXTRA}"
        ) from None
    known = {str(v) for v in (CORRECT, INCORRECT, PARTIAL, NOANSWER)}
    known |= {"yes", "no", "true", "false"}
    return read_eval_log, value_to_float(), known


def _inspect_value(value: Any, to_float: Callable[[Any], float], known: set[str], where: str):
    """A sample's score value as a float (None: missing), or a DataError."""
    if value is None:
        return None
    if isinstance(value, list | dict):
        kind = "list" if isinstance(value, list) else "dict"
        raise DataError(
            f"{where}: score value {value!r} is a {kind}; only one value per scorer is read"
        )
    if isinstance(value, str) and value not in known and value.lower() not in known:
        try:
            if not math.isfinite(float(value)):
                raise ValueError
        except ValueError:
            raise DataError(
                f"{where}: score value {value!r} is not C, I, P, N, yes/no, true/false or a number"
            ) from None
    return to_float(value)


def _inspect_scorers(log: Any) -> list[str]:
    """The scorer names of a log: from its spec, else its results, else its samples."""
    names = [s.name for s in (getattr(log.eval, "scorers", None) or [])]
    if not names and log.results is not None:
        names = [s.scorer for s in log.results.scores]
    if not names:
        names = [k for s in log.samples or [] for k in (s.scores or {})]
    return list(dict.fromkeys(names))


def read_inspect(
    path: str | Path, *, scorer: str | None = None, threshold: float | None = None
) -> ResponseMatrix:
    """Read Inspect AI eval logs (``.eval`` or ``.json``).

    Parameters
    ----------
    path : str or Path
        One log file, or a directory searched recursively for ``*.eval`` files and
        ``*.json`` Inspect logs (other JSON files are ignored). Subject:
        ``log.eval.model``; item: ``<task>/<sample id>``; a model may have logs of
        several tasks, but one log per model and task.
    scorer : str, optional
        The scorer whose values are read. Default, per log: the first scorer of its
        task (Inspect's headline score); the choice is noted in the report. A log
        without the scorer named is an error naming its scorers.
    threshold : float, optional
        Binarization threshold (score ``>= threshold`` is correct), required when some
        value, or mean over epochs, is neither 0 nor 1 (``P`` = 0.5, numeric scores).

    Returns
    -------
    ResponseMatrix
        Samples with an error or no value of the scorer are missing; invalidated
        samples are left out; both are counted in ``report.notes``.

    Raises
    ------
    DataError
        inspect_ai not installed, no logs, a file Inspect cannot read, a log without
        samples, a value not mappable to a number in [0, 1], the same sample and epoch
        twice, or two logs of one model and task; messages name the file, sample,
        epoch and scorer.
    """
    root = Path(path)
    files = _find(root, "inspect", "Inspect AI logs (*.eval, or *.json Inspect logs)")
    read_eval_log, to_float, known = _inspect_api(root)
    cells = ScoreCells(str(root), repeats="epochs")
    owner: dict[tuple[str, str], Path] = {}
    notes = [f"{root}: {len(files)} Inspect AI log(s)"]
    for p in files:
        try:
            log = read_eval_log(str(p))
        except Exception as exc:  # noqa: BLE001 - any failure of Inspect's reader
            msg = str(exc).splitlines()[0] if str(exc) else ""
            raise DataError(
                f"{p}: not a readable Inspect log ({type(exc).__name__}: {msg})"
            ) from None
        subject, task = str(log.eval.model), str(log.eval.task)
        if (subject, task) in owner:
            raise DataError(
                f"{p}: second log of model {subject!r} and task {task!r} (the first is"
                f" {owner[(subject, task)]}); keep one"
            )
        owner[(subject, task)] = p
        if not log.samples:
            raise DataError(f"{p}: no samples in the log (status {log.status!r})")
        names = _inspect_scorers(log)
        if scorer is not None and scorer not in names:
            raise DataError(f"{p}: no scorer {scorer!r}; its scorers: {', '.join(names)}")
        if not names:
            raise DataError(f"{p}: no scorer in the log and no sample with a score")
        chosen = scorer if scorer is not None else names[0]
        how = "as asked" if scorer is not None else "the first"
        notes.append(
            f"{p.name}: model {subject!r}, task {task!r}, scorer {chosen!r} ({how} of"
            f" {', '.join(map(repr, names))}), status {log.status!r},"
            f" {len(log.samples)} sample record(s), epochs {log.eval.config.epochs or 1}"
        )
        invalid = 0
        for s in log.samples:
            where = f"{p}, sample {s.id!r}, epoch {s.epoch}, scorer {chosen!r}"
            if getattr(s, "invalidation", None) is not None:
                invalid += 1
                continue
            score = (s.scores or {}).get(chosen)
            item = f"{task}/{s.id}"
            if s.error is not None:
                value, why = None, "sample error"
            elif score is None:
                value, why = None, f"no {chosen!r} score"
            else:
                value, why = _inspect_value(score.value, to_float, known, where), "null value"
            cells.add(subject, item, value, where=where, repeat=s.epoch, missing=why)
        if invalid:
            notes.append(f"{p.name}: {invalid} invalidated sample record(s) left out")
    return cells.build(threshold=threshold, notes=notes)


# -- lighteval -----------------------------------------------------------------------------


def _lighteval_subject(p: Path, root: Path) -> str:
    """The model folder of a details file (see the module docstring)."""
    model_dir = p.parent.parent if _STAMP_DIR.match(p.parent.name) else p.parent
    parts = model_dir.resolve().parts
    if "details" in parts[:-1]:
        k = len(parts) - 1 - parts[::-1].index("details")
        return "/".join(parts[k + 1 :])
    if root.is_dir():
        try:
            rel = model_dir.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = ""
        if rel and rel != ".":
            return rel
    return model_dir.resolve().name


def _lighteval_rows(p: Path) -> tuple[list[Any], list[str] | None, str]:
    """Metric dicts (or texts) per row, document ids (or None) and the schema's name."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:  # noqa: BLE001 - any failure of the parquet reader
        raise DataError(f"{p}: not a readable parquet file ({exc})") from None
    cols = table.column_names
    if "metric" in cols:
        ids = None
        if "doc" in cols:
            docs = table.column("doc").to_pylist()
            ids = [d.get("id") if isinstance(d, dict) else None for d in docs]
            if any(i is None or i == "" for i in ids):
                ids = None
        return table.column("metric").to_pylist(), ids, "lighteval >= 0.11 (metric, doc)"
    if "metrics" in cols:
        return table.column("metrics").to_pylist(), None, "lighteval <= 0.10 (metrics)"
    raise DataError(
        f"{p}: no 'metric' or 'metrics' column (columns: {', '.join(cols)}); not a lighteval"
        " details file"
    )


def _lighteval_metrics(p: Path, row: int, obj: Any) -> dict[str, Any]:
    """One row's metric dict (a struct, or the text of a dict before lighteval 0.10)."""
    if isinstance(obj, str):
        try:
            obj = ast.literal_eval(obj)
        except (ValueError, SyntaxError):
            raise DataError(f"{p}, row {row}: metrics {obj[:80]!r} is not a dict") from None
    if not isinstance(obj, dict):
        raise DataError(f"{p}, row {row}: metrics {obj!r} is not a dict of scores")
    return obj


def _lighteval_default(p: Path, metrics: dict[str, Any]) -> str:
    """Default metric of a file: acc-like (``_LIGHTEVAL_DEFAULTS``), else the only one."""
    for m in _LIGHTEVAL_DEFAULTS:
        if m in metrics:
            return m
    if len(metrics) == 1:
        return next(iter(metrics))
    raise DataError(
        f"{p}: several metrics ({', '.join(map(repr, metrics))}) and none of"
        f" {', '.join(_LIGHTEVAL_DEFAULTS)}; name one with metric="
    )


def read_lighteval(
    path: str | Path, *, metric: str | None = None, threshold: float | None = None
) -> ResponseMatrix:
    """Read lighteval per-sample details (``details_<task>_<timestamp>.parquet``).

    Parameters
    ----------
    path : str or Path
        One details file, or a directory searched recursively for them (typically
        lighteval's ``--output-dir`` or its ``details/`` folder). Subject: the model
        folder; item: ``<task>/<doc id>``; see the module docstring.
    metric : str, optional
        The metric read. Default, per file: the first of ``acc``, ``em``,
        ``exact_match``, ``extractive_match``, ``quasi_exact_match`` present, else the
        only metric; a file with several others is an error listing them.
    threshold : float, optional
        Binarization threshold, required when some score is neither 0 nor 1.

    Returns
    -------
    ResponseMatrix
        Null or NaN scores are missing, counted in ``report.notes``.

    Raises
    ------
    DataError
        No details files, an unreadable file, no metrics column, a metric missing from
        a file (naming the ones it has), a score not a number in [0, 1], a duplicate
        document id, or two files of one model and task; messages name the file, the
        1-based row and the metric.
    """
    root = Path(path)
    files = _find(root, "lighteval", "lighteval details files (details_<task>_<timestamp>.parquet)")
    cells = ScoreCells(str(root))
    owner: dict[tuple[str, str], Path] = {}
    notes = [f"{root}: {len(files)} lighteval details file(s)"]
    for p in files:
        match = _DETAILS_NAME.match(p.name)
        task = match.group("task") if match else p.stem
        subject = _lighteval_subject(p, root)
        if (subject, task) in owner:
            raise DataError(
                f"{p}: second details file of model {subject!r} and task {task!r} (the first"
                f" is {owner[(subject, task)]}); keep one"
            )
        owner[(subject, task)] = p
        rows, ids, schema = _lighteval_rows(p)
        if not rows:
            raise DataError(f"{p}: no rows")
        chosen = metric
        for k, obj in enumerate(rows):
            metrics = _lighteval_metrics(p, k + 1, obj)
            if chosen is None:
                chosen = _lighteval_default(p, metrics)
            where = f"{p}, row {k + 1}, metric {chosen!r}"
            if chosen not in metrics:
                have = ", ".join(map(repr, metrics)) or "none"
                raise DataError(f"{where}: no such metric (its metrics: {have})")
            doc = ids[k] if ids is not None else k
            cells.add(subject, f"{task}/{doc}", metrics[chosen], where=where, missing="null")
        how = "as asked" if metric is not None else "default"
        id_rule = "doc.id" if ids is not None else "row index"
        notes.append(
            f"{p.name}: model {subject!r}, task {task!r}, metric {chosen!r} ({how}),"
            f" {len(rows)} row(s), {schema}, item ids by {id_rule}"
        )
    return cells.build(threshold=threshold, notes=notes)
