"""Checkpoint series: which run and training step each subject of a response matrix is.

A pretraining run evaluated at many checkpoints is one *series*; its subjects are the
checkpoints (``olmo2-7b`` at step 120000, ...). The metadata comes from one of

- columns of the data file (``run``, ``step``; see ``subject_columns`` of
  :func:`fluid_bayes.data.readers.read_responses`),
- a mapping file with columns ``subject, run, step`` (CSV or parquet),
- a naming pattern: a regular expression with named groups ``run`` and ``step``
  matched against each subject id (default :data:`DEFAULT_PATTERN`, which reads
  ``olmo2-7b@step120000``, ``olmo2-7b_step-120000``, ``olmo2-7b/stage1-step120000``).

Every subject must resolve; one that does not is named in the error (a subject outside
every series would silently vanish from the training-curve metrics otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fluid_bayes.exceptions import DataError

__all__ = ["DEFAULT_PATTERN", "checkpoint_series", "read_reference", "read_series_file"]

DEFAULT_PATTERN = r"^(?P<run>.+?)(?:[@/_-]+stage\d+)?[@/_-]+step[-_]?(?P<step>\d+)(?:[-_].*)?$"


_SUBJECT_NAMES = ("subject", "subject_id", "model")


def _column(cols: dict[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` among the (lower-cased) column names ``cols``, or None."""
    return next((cols[c] for c in names if c in cols), None)


def _finish(frame: pd.DataFrame, subjects: Sequence[str], source: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    frame.index.name = "subject"
    missing = [s for s in subjects if s not in frame.index]
    if missing:
        show = ", ".join(repr(s) for s in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"{source}: no run/step for subject(s) {show}{more}")
    frame = frame.loc[list(subjects), ["run", "step"]]
    no_run = frame["run"].isna() | frame["run"].astype(str).str.strip().eq("")
    if no_run.any():
        bad = frame.index[no_run][0]
        raise DataError(f"{source}: subject {bad!r} has no run")
    steps = pd.to_numeric(frame["step"], errors="coerce")
    if steps.isna().any():
        bad = frame.index[steps.isna()][0]
        raise DataError(
            f"{source}: subject {bad!r} has step {frame.loc[bad, 'step']!r}, not a number"
        )
    frame["run"] = frame["run"].astype(str)
    frame["step"] = steps.astype(float)
    dup = frame.duplicated(["run", "step"], keep=False)
    if dup.any():
        first = frame[dup].sort_values(["run", "step"]).head(2)
        raise DataError(
            f"{source}: subjects {', '.join(map(repr, first.index))} are the same checkpoint "
            f"(run {first['run'].iloc[0]!r}, step {first['step'].iloc[0]:g})"
        )
    return frame


def read_series_file(path: str | Path) -> pd.DataFrame:
    """Read a mapping file with columns ``subject, run, step`` (CSV, TSV or parquet)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    if p.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(p)
    else:
        frame = pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",", dtype=str)
    cols = {c.lower(): c for c in frame.columns}
    subject_col = _column(cols, _SUBJECT_NAMES)
    need = [c for c in ("run", "step") if c not in cols]
    if subject_col is None or need:
        lack = (["subject"] if subject_col is None else []) + need
        raise DataError(f"{path}: mapping file lacks column(s) {', '.join(lack)}")
    frame = frame.rename(columns={cols["run"]: "run", cols["step"]: "step"})
    dups = frame[subject_col][frame[subject_col].duplicated()]
    if len(dups):
        raise DataError(f"{path}: subject {dups.iloc[0]!r} appears more than once")
    return frame.set_index(subject_col)


def checkpoint_series(
    subjects: Sequence[str],
    *,
    meta: pd.DataFrame | None = None,
    mapping: str | Path | pd.DataFrame | None = None,
    pattern: str | None = None,
    source: str = "subjects",
) -> pd.DataFrame:
    """Resolve each subject's run and step.

    Parameters
    ----------
    subjects : sequence of str
        Subject ids (e.g. ``ResponseMatrix.subjects``).
    meta : pandas.DataFrame, optional
        Subject metadata with ``run`` and ``step`` columns (``ResponseMatrix.subject_meta``).
    mapping : str, Path or pandas.DataFrame, optional
        Mapping file or table ``subject, run, step``.
    pattern : str, optional
        Regular expression with named groups ``run`` and ``step``. Used when neither
        ``meta`` nor ``mapping`` is given, defaulting to :data:`DEFAULT_PATTERN`.
    source : str
        Named in error messages.

    Returns
    -------
    pandas.DataFrame
        Index ``subject`` (in the given order); columns ``run`` (str), ``step`` (float).

    Raises
    ------
    DataError
        A subject without run or step, a step that is not a number, or two subjects
        at the same checkpoint.
    """
    given = sum(x is not None for x in (meta, mapping, pattern))
    if given > 1:
        raise ValueError("give one of meta, mapping and pattern")
    if meta is not None:
        lack = [c for c in ("run", "step") if c not in meta.columns]
        if lack:
            raise DataError(f"{source}: subject metadata lacks column(s) {', '.join(lack)}")
        return _finish(meta, subjects, source)
    if mapping is not None:
        if isinstance(mapping, pd.DataFrame):
            frame, where = mapping, "series mapping"
            cols = {str(c).lower(): c for c in frame.columns}
            col = _column(cols, _SUBJECT_NAMES)
            if col is not None:
                frame = frame.set_index(col)
        else:
            frame, where = read_series_file(mapping), str(mapping)
        return _finish(frame, subjects, where)
    regex = re.compile(pattern or DEFAULT_PATTERN, re.IGNORECASE)
    if not {"run", "step"} <= set(regex.groupindex):
        raise ValueError(f"pattern {regex.pattern!r} needs named groups 'run' and 'step'")
    rows = {}
    for s in subjects:
        m = regex.match(s)
        if m is None:
            raise DataError(
                f"{source}: subject {s!r} does not match the checkpoint pattern "
                f"{regex.pattern!r} (give a mapping file or run/step columns instead)"
            )
        rows[s] = {"run": m["run"], "step": m["step"]}
    return _finish(pd.DataFrame.from_dict(rows, orient="index"), subjects, source)


def read_reference(path: str | Path) -> pd.Series:
    """Read external reference scores: columns ``subject`` (or ``model``) and ``score``.

    Returns
    -------
    pandas.Series
        Index subject id, float scores; a missing or non-numeric score is an error
        naming its line.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    cols = {c.lower(): c for c in frame.columns}
    subject_col = _column(cols, _SUBJECT_NAMES)
    score_col = _column(cols, ("score", "reference", "accuracy"))
    if subject_col is None or score_col is None:
        raise DataError(f"{path}: needs a subject (or model) column and a score column")
    dup = frame[subject_col][frame[subject_col].duplicated()]
    if len(dup):
        raise DataError(f"{path}: subject {dup.iloc[0]!r} appears more than once")
    values = pd.to_numeric(frame[score_col], errors="coerce")
    bad = values.isna() | ~values.abs().lt(float("inf"))
    if bad.any():
        k = int(bad.to_numpy().argmax())
        raise DataError(f"{path}, line {k + 2} (subject {frame[subject_col].iloc[k]!r}): "
                        f"score {frame[score_col].iloc[k]!r} is not a finite number")  # fmt: skip
    return pd.Series(values.to_numpy(float), index=frame[subject_col].astype(str), name="reference")
