"""Which harness document each bank item is: the item -> (task, document id) map.

A live evaluation asks a harness to run *documents*; a bank scores *items*. The map
between them is part of the bank (its item metadata columns ``task`` and ``doc_id``, and
a fingerprint of the map in its configuration, so two banks that differ only in their
map have different identities).

Document ids
------------
* lm-evaluation-harness: ``doc_id`` is the document's 0-based index in the task's
  evaluation split (what ``simple_evaluate(samples={task: [ids]})`` takes).
* Inspect AI: the sample's ``id`` (an integer or a string; Inspect numbers samples
  from 1 when the dataset gives none, so a 0-based lm-eval index is *not* an Inspect id).

Canonical ids
-------------
Banks calibrated from lm-eval ``--log_samples`` output (:func:`fluid_bayes.read_lm_eval`)
have item ids ``<task>/<doc_id>``; such a bank needs no map. Any other bank gets one from
an ``item,task,doc_id`` CSV (``sample_id`` is accepted for ``doc_id``), at calibration
(``calibrate --items-map``) or later (``fluid-bayes bank map``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluid_bayes.bank import ItemBank, bank_hash
from fluid_bayes.dims import ITEM
from fluid_bayes.exceptions import BankError, DataError

__all__ = [
    "DocumentMap",
    "attach_documents",
    "bank_documents",
    "read_items_map",
]

#: Item metadata columns that hold the map.
TASK_COLUMN = "task"
DOC_COLUMN = "doc_id"


@dataclass(frozen=True)
class DocumentMap:
    """Item -> (task, document id), one entry per item, in the bank's item order.

    Attributes
    ----------
    items : tuple of str
        Bank item ids.
    tasks : tuple of str
        Harness task of each item.
    doc_ids : tuple of str
        Document id of each item within its task, as text (lm-eval's integer index or
        Inspect's sample id); :meth:`lm_eval_ids` converts to integers.
    source : str
        Where the map came from (a file, ``"canonical ids"`` or ``"bank"``).
    """

    items: tuple[str, ...]
    tasks: tuple[str, ...]
    doc_ids: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if not len(self.items) == len(self.tasks) == len(self.doc_ids):
            raise ValueError("items, tasks and doc_ids must have the same length")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def task_names(self) -> tuple[str, ...]:
        """The distinct tasks, in order of first appearance."""
        return tuple(dict.fromkeys(self.tasks))

    def lookup(self, items: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """Group items by task: ``{task: [(item, doc_id), ...]}``.

        Raises
        ------
        BankError
            An item the map does not have (named).
        """
        where = self._index
        out: dict[str, list[tuple[str, str]]] = {}
        for item in items:
            k = where.get(item)
            if k is None:
                raise BankError(f"item {item!r} has no harness document in the map")
            out.setdefault(self.tasks[k], []).append((item, self.doc_ids[k]))
        return out

    def item_of(self, task: str, doc_id: str | int) -> str | None:
        """The item of a task's document (None when the map has no such document)."""
        return self._by_document.get((task, str(doc_id)))

    def require_items(self, items: Iterable[str], what: str = "bank") -> None:
        """Check that the map names exactly ``items`` (a bank's, or the data's to calibrate).

        Raises
        ------
        BankError
            Items without a document, or map items not among ``items`` (the first few
            named, with the count).
        """
        items = list(items)
        have = set(self.items)
        missing = [i for i in items if i not in have]
        extra = sorted(have - set(items))
        for kind, ids in ((f"{what} items without a document in the map", missing),
                          (f"map items that are not in the {what}", extra)):  # fmt: skip
            if ids:
                shown = ", ".join(repr(i) for i in ids[:5])
                more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
                raise BankError(f"{self.source or 'items map'}: {len(ids)} {kind}: {shown}{more}")

    def lm_eval_ids(self) -> tuple[int, ...]:
        """Document ids as lm-eval's 0-based integer indices.

        Raises
        ------
        BankError
            An id that is not a non-negative integer (named with its item).
        """
        out = []
        for item, doc in zip(self.items, self.doc_ids, strict=True):
            try:
                k = int(doc)
            except ValueError:
                k = -1
            if k < 0 or str(k) != doc.strip():
                raise BankError(
                    f"item {item!r}: document id {doc!r} is not an lm-eval doc_id "
                    "(a 0-based integer index)"
                )
            out.append(k)
        return tuple(out)

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the map: part of the bank's identity."""
        blob = json.dumps([self.items, self.tasks, self.doc_ids]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_frame(self) -> pd.DataFrame:
        """The map as a table with columns ``item, task, doc_id``."""
        return pd.DataFrame({ITEM: self.items, TASK_COLUMN: self.tasks, DOC_COLUMN: self.doc_ids})

    @classmethod
    def from_canonical_ids(cls, items: Iterable[str]) -> DocumentMap:
        """Parse ``<task>/<doc_id>`` item ids (the lm-eval reader's ids).

        Raises
        ------
        BankError
            An id without ``/`` or with an empty task or document part (named).
        """
        items = tuple(items)
        tasks, docs = [], []
        for item in items:
            task, sep, doc = item.rpartition("/")
            if not sep or not task or not doc:
                raise BankError(
                    f"item {item!r} has no harness document: its id is not <task>/<doc_id> "
                    "and the bank has no document map (attach one with "
                    "`fluid-bayes bank map BANK --items-map FILE --out NEW`)"
                )
            tasks.append(task)
            docs.append(doc)
        return cls(items, tuple(tasks), tuple(docs), source="canonical ids")

    @cached_property  # built once per map (a frozen dataclass keeps no other state)
    def _index(self) -> dict[str, int]:
        return {item: k for k, item in enumerate(self.items)}

    @cached_property
    def _by_document(self) -> dict[tuple[str, str], str]:
        return {(t, d): i for i, t, d in zip(self.items, self.tasks, self.doc_ids, strict=True)}


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return unicodedata.normalize("NFC", str(value).strip())


def read_items_map(path: str | Path) -> DocumentMap:
    """Read an ``item,task,doc_id`` CSV (``sample_id`` accepted for ``doc_id``).

    Parameters
    ----------
    path : str or Path
        The map file. Every row names one item; ids are compared after Unicode NFC
        normalization and surrounding white space is ignored.

    Returns
    -------
    DocumentMap
        In the file's row order (:func:`attach_documents` reorders to the bank's).

    Raises
    ------
    DataError
        A missing file or column, an empty field, a duplicated item or a document
        mapped twice within a task, each named with its line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such items-map file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a CSV items map ({exc})") from exc
    cols = {c.strip().lower(): c for c in df.columns}
    doc_col = cols.get(DOC_COLUMN, cols.get("sample_id"))
    missing = [c for c in (ITEM, TASK_COLUMN) if c not in cols] + ([] if doc_col else [DOC_COLUMN])
    if missing:
        raise DataError(
            f"{path}: items map needs columns item, task, doc_id (or sample_id); "
            f"missing {', '.join(missing)} (found {', '.join(map(str, df.columns))})"
        )
    items, tasks, docs = [], [], []
    seen: dict[str, int] = {}
    seen_doc: dict[tuple[str, str], int] = {}
    for k, row in enumerate(df.itertuples(index=False, name=None), start=2):
        vals = dict(zip(df.columns, row, strict=True))
        item = _text(vals[cols[ITEM]])
        task = _text(vals[cols[TASK_COLUMN]])
        doc = _text(vals[doc_col])
        for name, v in ((ITEM, item), (TASK_COLUMN, task), (DOC_COLUMN, doc)):
            if not v:
                raise DataError(f"{path}, line {k}: empty {name}")
        if item in seen:
            raise DataError(f"{path}, line {k}: item {item!r} already mapped on line {seen[item]}")
        if (task, doc) in seen_doc:
            raise DataError(
                f"{path}, line {k}: document {task}/{doc} already mapped to another item on "
                f"line {seen_doc[task, doc]}"
            )
        seen[item] = k
        seen_doc[task, doc] = k
        items.append(item)
        tasks.append(task)
        docs.append(doc)
    if not items:
        raise DataError(f"{path}: items map has no rows")
    return DocumentMap(tuple(items), tuple(tasks), tuple(docs), source=str(path))


def bank_documents(bank: ItemBank) -> DocumentMap:
    """The document of every bank item: the stored map, else the canonical ids.

    Raises
    ------
    BankError
        An item without a document, named with the way to attach a map.
    """
    meta = bank.item_meta
    if TASK_COLUMN in meta.columns and DOC_COLUMN in meta.columns:
        tasks = tuple(_text(v) for v in meta[TASK_COLUMN].reindex(list(bank.items)))
        docs = tuple(_text(v) for v in meta[DOC_COLUMN].reindex(list(bank.items)))
        for item, task, doc in zip(bank.items, tasks, docs, strict=True):
            if not task or not doc:
                raise BankError(f"item {item!r} has no harness document in the bank's map")
        return DocumentMap(bank.items, tasks, docs, source="bank")
    return DocumentMap.from_canonical_ids(bank.items)


def attach_documents(bank: ItemBank, documents: DocumentMap) -> ItemBank:
    """A copy of ``bank`` whose items carry their harness documents.

    Parameters
    ----------
    bank : ItemBank
        Any bank.
    documents : DocumentMap
        Must name every bank item (rows for items the bank lacks are an error too: a
        map meant for another bank).

    Returns
    -------
    ItemBank
        Same draws; item metadata gains ``task`` and ``doc_id``; the configuration
        records the map's fingerprint (``config["documents"]``) and the bank's
        ``config_hash`` is recomputed from it.

    Raises
    ------
    BankError
        Items of the bank missing from the map, or of the map missing from the bank
        (the first few named, with the count).
    """
    documents.require_items(bank.items)
    position = {item: j for j, item in enumerate(documents.items)}
    order = [position[i] for i in bank.items]
    dmap = DocumentMap(
        bank.items,
        tuple(documents.tasks[j] for j in order),
        tuple(documents.doc_ids[j] for j in order),
        source=documents.source,
    )
    meta = bank.item_meta.copy()
    meta[TASK_COLUMN] = list(dmap.tasks)
    meta[DOC_COLUMN] = list(dmap.doc_ids)
    meta.index = pd.Index(list(bank.items), name=ITEM)
    for c in meta.columns:
        if not pd.api.types.is_numeric_dtype(meta[c]):
            meta[c] = meta[c].astype(str)
    groups = {name: node.to_dataset() for name, node in bank.tree.children.items()}
    groups["items"] = xr.Dataset.from_dataframe(meta)
    config = {**bank.meta.config, "documents": dmap.fingerprint()}
    new_meta = dataclasses.replace(
        bank.meta, config=config, config_hash=bank_hash(config, bank.meta.data_fingerprint)
    )
    return ItemBank(tree=xr.DataTree.from_dict(groups), meta=new_meta)
