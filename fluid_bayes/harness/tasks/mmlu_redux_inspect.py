r"""Inspect AI task ``mmlu_redux_local``: the shipped MMLU-Redux questions, offline.

Each row ``k`` (0-based) of ``fluid_bayes/data/mmlu_redux_helm/questions.csv``
(``item_id,subject,question,choices,answer``; ``choices`` a JSON list, ``answer`` the
0-based index of the right choice) is the sample with id ``k`` (an int, set
explicitly: Inspect would number samples from 1), so one document map,
``task=mmlu_redux_local, doc_id=k``, serves this task and the lm-eval task of the same
name (whose ``doc_id`` is the row index too). The solver is ``multiple_choice()``,
the scorer ``choice()`` (``C``/``I``).

Run it from Inspect's command line with the file path::

    inspect eval fluid_bayes/harness/tasks/mmlu_redux_inspect.py@mmlu_redux_local \
        --model fluidsim/theta=0.5 -M bank=models/mmlu-redux.nc --sample-id 0,1,2

or through fluid-bayes (``fluid-bayes run inspect --task mmlu_redux_local ...``, which
finds the shipped task by its name).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import choice
from inspect_ai.solver import multiple_choice

__all__ = ["QUESTIONS", "TASK_NAME", "mmlu_redux_local", "read_samples"]

#: The shipped question texts (CC BY 4.0; see ``fluid_bayes/data/README.md``).
QUESTIONS = Path(__file__).resolve().parents[2] / "data" / "mmlu_redux_helm" / "questions.csv"
#: The task's name, also the ``task`` of the bank's document map.
TASK_NAME = "mmlu_redux_local"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def read_samples(path: str | Path = QUESTIONS) -> list[Sample]:
    """Read the questions as Inspect samples, one per row, id = the 0-based row index.

    Parameters
    ----------
    path : str or Path
        A CSV with columns ``item_id, subject, question, choices, answer``.

    Returns
    -------
    list of inspect_ai.dataset.Sample
        ``id=k``, ``input`` the question, ``choices`` the options, ``target`` the
        letter of the right one, ``metadata`` ``item_id`` and ``subject``.

    Raises
    ------
    ValueError
        A row whose choices are not a JSON list or whose answer is not one of them
        (named with its row).
    """
    samples = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for k, row in enumerate(csv.DictReader(fh)):
            try:
                options = json.loads(row["choices"])
                answer = int(row["answer"])
                if not isinstance(options, list) or not 0 <= answer < len(options):
                    raise ValueError(f"answer {answer} is not one of {len(options)} choices")
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"{path}: row {k} ({row.get('item_id')!r}): {exc}") from None
            samples.append(
                Sample(
                    id=k,
                    input=row["question"],
                    choices=[str(c) for c in options],
                    target=_LETTERS[answer],
                    metadata={"item_id": row["item_id"], "subject": row["subject"]},
                )
            )
    return samples


@task
def mmlu_redux_local(questions: str | None = None) -> Task:
    """MMLU-Redux multiple choice from a local CSV (default: the shipped questions).

    Parameters
    ----------
    questions : str, optional
        Another CSV of the same layout (``-T questions=FILE``).

    Returns
    -------
    inspect_ai.Task
        Named ``mmlu_redux_local``; sample ids are the 0-based row indices.
    """
    path = Path(questions) if questions else QUESTIONS
    dataset = MemoryDataset(read_samples(path), name=TASK_NAME, location=str(path))
    return Task(dataset=dataset, solver=multiple_choice(), scorer=choice(), name=TASK_NAME)
