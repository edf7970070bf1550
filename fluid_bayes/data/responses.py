"""The response matrix: who answered which item, right (1) or wrong (0).

:class:`ResponseMatrix` is the one data type every other module consumes. It is built
by :func:`from_array`, the single validation point: every reader in
:mod:`fluid_bayes.data.readers` ends by calling it, so a matrix that exists is always valid
(values 0.0 / 1.0 or NaN for missing, unique ids, every item answered by someone, every
subject answering something). What validation changed or noticed (binarized cells,
dropped subjects, constant items) is kept in a :class:`DataReport`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluid_bayes.data.report import (
    DataReport,
    build_report,
    constant_columns,
    duplicates,
    show_ids,
)
from fluid_bayes.data.tables import nfc_clashes
from fluid_bayes.exceptions import DataError

__all__ = [
    "DataReport",
    "ResponseMatrix",
    "constant_columns",
    "from_array",
    "group_codes",
]


def _align_meta(
    meta: pd.DataFrame, ids: Sequence[str], *, kind: str, source: str
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Reorder ``meta`` (indexed by id) to ``ids``; return it and report notes.

    Every id must be present; rows for other ids are ignored and reported.
    """
    if not isinstance(meta, pd.DataFrame):
        raise DataError(f"{source}: {kind} metadata must be a pandas DataFrame, got {type(meta)}")
    index = [str(i) for i in meta.index]
    dup = duplicates(index)
    if dup:
        raise DataError(f"{source}: duplicate {kind} id(s) in the metadata: {show_ids(dup)}")
    present = set(index)
    missing = [i for i in ids if i not in present]
    if missing:
        raise DataError(
            f"{source}: {len(missing)} {kind}(s) of the response matrix have no"
            f" metadata row: {show_ids(missing)}"
        )
    wanted = set(ids)
    extra = [i for i in index if i not in wanted]
    notes: tuple[str, ...] = ()
    if extra:
        notes = (
            f"{source}: {len(extra)} metadata row(s) for {kind}s not in the response"
            f" matrix were ignored: {show_ids(extra)}",
        )
    out = meta.copy()
    out.index = pd.Index(index, name=kind)
    out = out.loc[list(ids)]
    out.index.name = kind
    return out, notes


@dataclass(frozen=True, eq=False)
class ResponseMatrix:
    """A validated subjects x items matrix of binary responses.

    Build it with :func:`from_array` (or a reader of :mod:`fluid_bayes.data.readers`); the
    constructor itself only checks consistency of an already-valid matrix.

    Attributes
    ----------
    values : numpy.ndarray
        float64 array, shape ``(n_subjects, n_items)``: 1.0 correct, 0.0 wrong, NaN
        missing. Read-only.
    subjects : tuple of str
        Subject ids (e.g. models or checkpoints), one per row.
    items : tuple of str
        Item ids, one per column.
    item_meta : pandas.DataFrame or None
        Item metadata, index = item ids in ``items`` order (name ``"item"``).
    subject_meta : pandas.DataFrame or None
        Subject metadata, index = subject ids in ``subjects`` order (name
        ``"subject"``).
    report : DataReport
        What validation did and noticed; computed from the values when not given.
    """

    values: np.ndarray
    subjects: tuple[str, ...]
    items: tuple[str, ...]
    item_meta: pd.DataFrame | None = None
    subject_meta: pd.DataFrame | None = None
    report: DataReport = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        """Check shapes and value set; lock the values array."""
        values = np.asarray(self.values, dtype=np.float64)
        if values.flags.writeable or not values.flags.owndata:
            values = np.array(values, dtype=np.float64, copy=True)
        values.setflags(write=False)
        subjects = tuple(str(s) for s in self.subjects)
        items = tuple(str(i) for i in self.items)
        if values.ndim != 2 or values.shape != (len(subjects), len(items)):
            raise DataError(
                f"values of shape {values.shape} do not match"
                f" {len(subjects)} subject(s) x {len(items)} item(s)"
            )
        observed = values[~np.isnan(values)]
        if not np.isin(observed, (0.0, 1.0)).all():
            raise DataError(
                "ResponseMatrix values must be 0.0, 1.0 or NaN; build it with from_array()"
            )
        for meta, ids, kind in (
            (self.item_meta, items, "item"),
            (self.subject_meta, subjects, "subject"),
        ):
            if meta is not None and [str(i) for i in meta.index] != list(ids):
                raise DataError(f"{kind}_meta must be indexed by the {kind} ids, in order")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "subjects", subjects)
        object.__setattr__(self, "items", items)
        if self.report is None:
            report = build_report(
                values,
                items,
                source="array",
                threshold=None,
                n_binarized=0,
                dropped=(),
                notes=(),
            )
            object.__setattr__(self, "report", report)

    # -- basic properties --------------------------------------------------------------

    @property
    def n_subjects(self) -> int:
        """Number of subjects (rows)."""
        return len(self.subjects)

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return len(self.items)

    @property
    def mask(self) -> np.ndarray:
        """Boolean array, True where a cell was observed (not missing)."""
        return ~np.isnan(self.values)

    def __repr__(self) -> str:
        """Return a short description (shape, missing share, source)."""
        return (
            f"ResponseMatrix({self.n_subjects} subjects x {self.n_items} items,"
            f" {self.report.n_missing} missing, source={self.report.source!r})"
        )

    def __eq__(self, other: object) -> bool:
        """Equal ids, values (NaN equal to NaN) and metadata."""
        if not isinstance(other, ResponseMatrix):
            return NotImplemented
        if self.subjects != other.subjects or self.items != other.items:
            return False
        if not np.array_equal(self.values, other.values, equal_nan=True):
            return False
        for a, b in (
            (self.item_meta, other.item_meta),
            (self.subject_meta, other.subject_meta),
        ):
            if (a is None) != (b is None) or (a is not None and not a.equals(b)):
                return False
        return True

    def __hash__(self) -> int:
        """Hash of the ids and shape (consistent with ``==``)."""
        return hash((self.subjects, self.items))

    # -- conversions -------------------------------------------------------------------

    def fingerprint(self) -> str:
        """Return a sha256 hex digest of the ids and values, for provenance.

        Missing cells hash the same whatever NaN payload they carry; metadata is not
        included.
        """
        h = hashlib.sha256()
        h.update(b"fluid_bayes.ResponseMatrix/v1\0")
        h.update(f"{self.n_subjects}x{self.n_items}\0".encode())
        for ids in (self.subjects, self.items):
            for i in ids:
                h.update(i.encode("utf-8") + b"\x1f")
            h.update(b"\x1e")
        code = np.where(np.isnan(self.values), 2, self.values).astype(np.uint8)
        h.update(np.ascontiguousarray(code).tobytes())
        return h.hexdigest()

    def to_dataarray(self) -> xr.DataArray:
        """Return the matrix as a :class:`xarray.DataArray` (dims subject, item)."""
        return xr.DataArray(
            np.array(self.values),
            dims=("subject", "item"),
            coords={"subject": list(self.subjects), "item": list(self.items)},
            name="response",
            attrs={"source": self.report.source},
        )

    def to_frame(self) -> pd.DataFrame:
        """Return a wide DataFrame: index = subject ids, columns = item ids."""
        return pd.DataFrame(
            np.array(self.values),
            index=pd.Index(list(self.subjects), name="subject"),
            columns=pd.Index(list(self.items), name="item"),
        )

    def accuracy(self) -> pd.Series:
        """Return each subject's share of correct answers over the cells it answered."""
        observed = self.mask
        n = observed.sum(axis=1)
        right = np.where(observed, self.values, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(n > 0, right / np.maximum(n, 1), np.nan)
        return pd.Series(acc, index=pd.Index(list(self.subjects), name="subject"), name="accuracy")

    # -- derived matrices --------------------------------------------------------------

    def select(
        self,
        *,
        subjects: Iterable[str] | None = None,
        items: Iterable[str] | None = None,
    ) -> ResponseMatrix:
        """Return the sub-matrix of the given subjects and items, in the order given.

        Parameters
        ----------
        subjects, items : iterable of str, optional
            Ids to keep (all when None). Unknown or repeated ids raise
            :class:`~fluid_bayes.exceptions.DataError`.

        Returns
        -------
        ResponseMatrix
            The selection; its report is recomputed (constant items, missing cells) and
            keeps the threshold, binarization count and dropped subjects of this one.
            Unlike :func:`from_array`, a selection may hold an item nobody answered.
        """
        rows = self._positions(subjects, self.subjects, "subject")
        cols = self._positions(items, self.items, "item")
        values = self.values[np.ix_(rows, cols)]
        new_subjects = tuple(self.subjects[r] for r in rows)
        new_items = tuple(self.items[c] for c in cols)
        notes = self.report.notes
        if len(rows) != self.n_subjects or len(cols) != self.n_items:
            notes = (
                *notes,
                f"selection of {len(rows)} of {self.n_subjects} subjects and"
                f" {len(cols)} of {self.n_items} items",
            )
        report = build_report(
            values,
            new_items,
            source=self.report.source,
            threshold=self.report.threshold,
            n_binarized=self.report.n_binarized,
            dropped=self.report.dropped_subjects,
            notes=notes,
        )
        return ResponseMatrix(
            values=values,
            subjects=new_subjects,
            items=new_items,
            item_meta=None if self.item_meta is None else self.item_meta.iloc[cols],
            subject_meta=None if self.subject_meta is None else self.subject_meta.iloc[rows],
            report=report,
        )

    def without_constant_items(self) -> ResponseMatrix:
        """Return the matrix without the items everyone got right or everyone got wrong.

        Their answers order no subject, so the likelihood leaves one side of their
        difficulty to the prior; with many of them (MMLU-Redux: 3,610 of 5,700 items
        for 14 models) the joint posterior has ridges NUTS cannot cross
        (``benchmarks/README.md``). The removed items are listed in the report's
        ``dropped_items`` and a note; subjects left without any answer are dropped and
        reported as well.

        Returns
        -------
        ResponseMatrix
            ``self`` when no item is constant.
        """
        right, wrong = self.report.constant_correct, self.report.constant_wrong
        if not right and not wrong:
            return self
        constant = set(right) | set(wrong)
        kept = [j for j, i in enumerate(self.items) if i not in constant]
        if not kept:
            raise DataError(f"all {self.n_items} items are constant; nothing to calibrate")
        has_answer = (~np.isnan(self.values[:, kept])).any(axis=1)
        subjects = [s for s, a in zip(self.subjects, has_answer, strict=True) if a]
        lost = tuple(s for s, a in zip(self.subjects, has_answer, strict=True) if not a)
        keep = [self.items[j] for j in kept]
        sel = self.select(subjects=subjects, items=keep)
        note = (
            f"dropped {len(constant)} constant item(s) ({len(right)} all correct, "
            f"{len(wrong)} all wrong) before calibration"
        )
        if lost:
            note += f" and {len(lost)} subject(s) left without answers"
        report = dataclasses.replace(
            sel.report,
            dropped_subjects=self.report.dropped_subjects + lost,
            dropped_items=self.report.dropped_items + right + wrong,
            notes=(*self.report.notes, note),
        )
        return dataclasses.replace(sel, report=report)

    def _positions(
        self, wanted: Iterable[str] | None, ids: tuple[str, ...], kind: str
    ) -> list[int]:
        """Positions of ``wanted`` ids in ``ids`` (all when None), checked."""
        if wanted is None:
            return list(range(len(ids)))
        if isinstance(wanted, str):
            wanted = [wanted]
        wanted = [str(w) for w in wanted]
        if not wanted:
            raise DataError(f"{self.report.source}: selection has no {kind}s")
        where = {s: k for k, s in enumerate(ids)}
        unknown = [w for w in wanted if w not in where]
        if unknown:
            raise DataError(
                f"{self.report.source}: unknown {kind} id(s) in selection: {show_ids(unknown)}"
            )
        dup = duplicates(wanted)
        if dup:
            raise DataError(f"{self.report.source}: {kind} id(s) selected twice: {show_ids(dup)}")
        return [where[w] for w in wanted]

    def with_item_meta(
        self, meta: pd.DataFrame, *, source: str = "item metadata"
    ) -> ResponseMatrix:
        """Return a copy with item metadata attached.

        Parameters
        ----------
        meta : pandas.DataFrame
            Indexed by item id (as from :func:`fluid_bayes.data.readers.read_item_meta`). Every
            item of the matrix must have a row; rows for other items are ignored and
            reported in ``report.notes``.
        source : str, optional
            Name of the metadata's origin, used in messages.

        Returns
        -------
        ResponseMatrix
            Same responses, ``item_meta`` in ``items`` order with index name ``"item"``.
        """
        aligned, notes = _align_meta(meta, self.items, kind="item", source=source)
        report = dataclasses.replace(self.report, notes=(*self.report.notes, *notes))
        return dataclasses.replace(self, item_meta=aligned, report=report)


def from_array(
    values: Any,
    *,
    subjects: Sequence[Any],
    items: Sequence[Any],
    item_meta: pd.DataFrame | None = None,
    subject_meta: pd.DataFrame | None = None,
    threshold: float | None = None,
    source: str = "array",
    notes: Sequence[str] = (),
) -> ResponseMatrix:
    """Validate a subjects x items array of scores and build a :class:`ResponseMatrix`.

    This is the single validation point of the package.

    Parameters
    ----------
    values : array_like
        Shape ``(n_subjects, n_items)``; scores in [0, 1], NaN (or None) = missing.
    subjects, items : sequence
        Row and column ids (converted to str); must be unique.
    item_meta, subject_meta : pandas.DataFrame, optional
        Metadata indexed by id; every id must be present, extra rows are ignored and
        reported.
    threshold : float, optional
        Binarization threshold in (0, 1]: a score ``>= threshold`` counts as correct.
        Required when some score is neither 0 nor 1.
    source : str, optional
        Name of the data's origin, used in messages and the report.
    notes : sequence of str, optional
        Extra report lines (e.g. from a reader).

    Returns
    -------
    ResponseMatrix
        Values 0.0 / 1.0 / NaN, read-only. Subjects with no answer at all are dropped
        (with a warning) and listed in ``report.dropped_subjects``.

    Raises
    ------
    DataError
        Empty input, duplicate ids, non-finite or out-of-range values, continuous scores
        without a threshold, or an item nobody answered.
    """
    subj = [str(s) for s in subjects]
    itm = [str(i) for i in items]
    if not subj:
        raise DataError(f"{source}: no subjects")
    if not itm:
        raise DataError(f"{source}: no items")
    for ids, kind in ((subj, "subject"), (itm, "item")):
        dup = duplicates(ids)
        if dup:
            raise DataError(f"{source}: duplicate {kind} id(s): {show_ids(dup)}")
        clashes = nfc_clashes(ids)
        if clashes:
            a, b = clashes[0]
            raise DataError(
                f"{source}: {kind} ids {a!r} and {b!r} differ only in Unicode normalization "
                "(equal after NFC): write them the same way, or make them distinct"
            )
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: values are not all numbers ({exc})") from exc
    if arr.shape != (len(subj), len(itm)):
        raise DataError(
            f"{source}: values of shape {arr.shape} do not match {len(subj)} subject(s)"
            f" x {len(itm)} item(s)"
        )

    def _cell(r: int, c: int) -> str:
        v = float(arr[r, c])
        return f"value {v!r} for subject {subj[r]!r} (row {r + 1}), item {itm[c]!r}"

    bad = np.argwhere(np.isinf(arr))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{source}: {_cell(r, c)} is not finite")
    missing = np.isnan(arr)
    bad = np.argwhere(~missing & ((arr < 0.0) | (arr > 1.0)))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{source}: {_cell(r, c)} is outside [0, 1]")

    if threshold is not None:
        threshold = float(threshold)
        if not 0.0 < threshold <= 1.0:
            raise DataError(f"{source}: threshold {threshold!r} is not in (0, 1]")
    continuous = ~missing & (arr != 0.0) & (arr != 1.0)
    n_binarized = int(continuous.sum())
    if n_binarized:
        if threshold is None:
            r, c = np.argwhere(continuous)[0]
            raise DataError(
                f"{source}: continuous scores found ({n_binarized} cell(s) neither 0"
                f" nor 1, e.g. {_cell(r, c)}); an explicit binarization threshold is"
                " required (e.g. --threshold 0.5 or threshold=0.5)"
            )
        arr = np.where(missing, np.nan, (arr >= threshold).astype(np.float64))

    unanswered = [itm[j] for j in np.flatnonzero(missing.all(axis=0))]
    if unanswered:
        raise DataError(
            f"{source}: {len(unanswered)} item(s) nobody answered: {show_ids(unanswered)}"
        )
    empty_rows = missing.all(axis=1)
    dropped = tuple(subj[r] for r in np.flatnonzero(empty_rows))
    if dropped:
        warnings.warn(
            f"{source}: dropped {len(dropped)} subject(s) with no answers: {show_ids(dropped)}",
            stacklevel=2,
        )
        keep = np.flatnonzero(~empty_rows)
        arr = arr[keep]
        subj = [subj[r] for r in keep]

    all_notes = tuple(notes)
    if item_meta is not None:
        item_meta, extra = _align_meta(item_meta, itm, kind="item", source=source)
        all_notes += extra
    if subject_meta is not None:
        subject_meta = subject_meta.copy()
        subject_meta.index = pd.Index([str(s) for s in subject_meta.index])
        subject_meta = subject_meta.loc[~subject_meta.index.isin(dropped)]
        subject_meta, extra = _align_meta(subject_meta, subj, kind="subject", source=source)
        all_notes += extra

    report = build_report(
        arr,
        itm,
        source=source,
        threshold=threshold,
        n_binarized=n_binarized,
        dropped=dropped,
        notes=all_notes,
    )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    arr.setflags(write=False)
    return ResponseMatrix(
        values=arr,
        subjects=tuple(subj),
        items=tuple(itm),
        item_meta=item_meta,
        subject_meta=subject_meta,
        report=report,
    )


def group_codes(data: ResponseMatrix, group_by: str | None) -> tuple[np.ndarray, list[str]] | None:
    """Return each item's group (an item metadata column) as integer codes.

    Parameters
    ----------
    data : ResponseMatrix
        The answers, with item metadata.
    group_by : str or None
        The item metadata column holding the groups (e.g. the MMLU subject).

    Returns
    -------
    tuple of (numpy.ndarray, list of str) or None
        Per item the index of its group (shape ``(n_items,)``) and the sorted group
        labels; None when ``group_by`` is None.

    Raises
    ------
    DataError
        If there is no such column, or an item has no group.
    """
    if group_by is None:
        return None
    meta = data.item_meta
    if meta is None or group_by not in meta.columns:
        have = [] if meta is None else list(meta.columns)
        raise DataError(
            f"--group-by {group_by!r}: no such item metadata column (have {have}); "
            "pass item metadata with --items-meta"
        )
    col = meta[group_by]
    missing = [
        str(i) for i, v in col.items() if v is None or (isinstance(v, float) and np.isnan(v))
    ]
    if missing:
        raise DataError(
            f"--group-by {group_by!r}: no group for item(s) {missing[:10]} ({len(missing)} in all)"
        )
    labels = col.astype(str).to_numpy()
    groups, codes = np.unique(labels, return_inverse=True)
    return codes, [str(g) for g in groups]
