"""Helpers of the lm-eval task ``mmlu_redux_local`` (``!function utils.<name>`` in its YAML).

lm-eval loads this file by path from the YAML's folder, as a module of its own (not as
part of ``fluid_bayes``), so it imports only the standard library and ``datasets`` (a
dependency of lm-eval).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["RowList", "description", "doc_to_text", "load_rows", "read_rows"]

_FIELDS = ("item_id", "subject", "question", "choices", "answer")


def description(subject: str) -> str:
    """The description lm-eval's MMLU gives a subject's questions."""
    return (
        "The following are multiple choice questions (with answers) about "
        f"{' '.join(subject.split('_'))}.\n\n"
    )


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The documents: one dict per CSV row, in file order.

    Each has the CSV's ``item_id``, ``subject``, ``question``, ``choices`` (the JSON
    list parsed) and ``answer`` (the index of the right choice, an int), and the
    subject's ``description``.

    Raises
    ------
    ValueError
        A missing column, a row whose choices are not a JSON list of four or whose
        answer is not an index into them (named with its line).
    """
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _FIELDS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            try:
                choices = json.loads(row["choices"])
                answer = int(row["answer"])
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if not isinstance(choices, list) or len(choices) != 4 or not 0 <= answer < 4:
                raise ValueError(f"{where}: expected four choices and an answer 0-3")
            rows.append({
                "item_id": row["item_id"],
                "subject": row["subject"],
                "question": row["question"],
                "choices": [str(c) for c in choices],
                "answer": answer,
                "description": description(row["subject"]),
            })  # fmt: skip
    return rows


class RowList(list):
    """A list of documents that lm-eval takes for a ``datasets.Dataset`` split.

    lm-eval 0.4.13 indexes, iterates and sizes a split, and reads
    ``split.features.keys()`` once (to tell a field name from a template); a list does
    the rest faster than Arrow, which decodes every row whenever lm-eval scans the
    split for the chosen documents.
    """

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(rows)
        import datasets

        self.features = datasets.Features({
            "item_id": datasets.Value("string"),
            "subject": datasets.Value("string"),
            "question": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.Value("int64"),
            "description": datasets.Value("string"),
        })  # fmt: skip


def load_rows(csv_path: str = "", **metadata: Any) -> dict[str, RowList]:
    """The task's dataset (``custom_dataset``): ``{"test": RowList}``.

    Parameters
    ----------
    csv_path : str
        The questions file; a relative path is resolved against this file's folder
        (lm-eval passes the YAML's ``metadata`` as keyword arguments).
    **metadata
        The rest of the task's metadata (``version``), ignored.
    """
    path = Path(csv_path or "../../../data/mmlu_redux_helm/questions.csv")
    if not path.is_absolute():
        path = Path(__file__).resolve().parent / path
    return {"test": RowList(read_rows(path))}


def doc_to_text(doc: dict[str, Any]) -> str:
    """lm-eval MMLU's ``doc_to_text`` template, in Python."""
    c = doc["choices"]
    return f"{doc['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"
