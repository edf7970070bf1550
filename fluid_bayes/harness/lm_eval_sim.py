"""The lm-evaluation-harness model ``fluid-sim``: a simulated examinee of known ability.

Importing this module registers the model (``@register_model("fluid-sim")``), so
``simple_evaluate(model="fluid-sim", model_args="bank=BANK.nc,theta=0.5,seed=1")`` and
``fluid-bayes run lm-eval --model fluid-sim --model-args bank=BANK.nc,theta=0.5`` find
it; :mod:`fluid_bayes.harness.lm_eval` imports it. To lm-eval it is a real ``LM``: it
gets the requests of the documents lm-eval builds and returns log-likelihoods, which the
task's own metric scores.

Model arguments
---------------
``bank`` (required)
    Path of the item bank whose items the model answers (or, from Python, the bank
    itself); its document map (:func:`~fluid_bayes.harness.documents.bank_documents`)
    says which item a document of a task is.
``theta``, ``seed``
    Ability (default 0) and seed (default 0) of the
    :class:`~fluid_bayes.harness.simulated.SimulatedAbility` that decides each answer.
``fail_after``
    Answer this many documents, then fail every call that would take the model past
    them (before answering any document of that call, as a model fails on a batch): to
    test a failure mid-run.
``include_path``
    A folder of task YAMLs besides the shipped ones, where the model finds the tasks of
    the documents it is asked (lm-eval's built-in tasks are found too).

Answers
-------
A request's document is identified by its content (``Instance.doc``; lm-eval's
``Instance.doc_id`` is the document's position among the documents of this call, not
its index in the task): the model looks the document up among the documents of its task,
built once (or handed over by the driver, :meth:`FluidSimLM.add_tasks`). For a
multiple-choice document the right choice gets the highest
log-likelihood exactly when :meth:`SimulatedAbility.correct` says so (called once per
document, not per choice, so ``.simulated.asked`` counts documents), otherwise a wrong
choice fixed by a hash of the seed and the item; a ``generate_until`` document gets the
target text or nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401 - lm-eval's own models first: get_model looks them up
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

__all__ = ["MODEL_NAME", "FluidSimLM"]

#: The name lm-eval knows the model by.
MODEL_NAME = "fluid-sim"
_RIGHT, _WRONG, _OTHER = -0.1, -5.0, -0.01  # log-likelihoods: chosen, others, per index


def _doc_key(doc: Any) -> str:
    """A document's identity: its content as canonical JSON."""
    return json.dumps(doc, sort_keys=True, default=str, ensure_ascii=False)


@register_model(MODEL_NAME)
class FluidSimLM(LM):
    """lm-eval model answering like a model of ability ``theta`` on a bank's items.

    Parameters
    ----------
    bank : str, Path or ItemBank
        The bank (with a document map) or its file.
    theta : float
        Ability on the bank's scale.
    seed : int
        Seed of the answers (>= 0).
    fail_after : int, optional
        Documents answered before every further call fails.
    include_path : str or Path, optional
        Folder of task YAMLs besides the shipped ones.
    **config
        lm-eval's ``batch_size``, ``max_batch_size`` and ``device`` (ignored).

    Raises
    ------
    ValueError
        No bank file, a bank without documents, a bad theta, seed or fail_after.
    """

    def __init__(
        self,
        bank: Any,
        theta: float = 0.0,
        seed: int = 0,
        fail_after: int | None = None,
        include_path: str | Path | None = None,
        **config: Any,
    ) -> None:
        super().__init__()
        from fluid_bayes.bank import ItemBank
        from fluid_bayes.exceptions import FluidBayesError
        from fluid_bayes.harness.documents import bank_documents
        from fluid_bayes.harness.simulated import SimulatedAbility

        unknown = sorted(set(config) - {"batch_size", "max_batch_size", "device"})
        if unknown:
            raise ValueError(f"{MODEL_NAME}: unknown model argument(s) {', '.join(unknown)} "
                             "(it takes bank, theta, seed, fail_after, include_path)")  # fmt: skip
        if fail_after is not None and (isinstance(fail_after, bool) or int(fail_after) < 0):
            raise ValueError(f"{MODEL_NAME}: fail_after must be an integer >= 0")
        try:
            if isinstance(bank, str | Path):
                path = Path(bank).expanduser()
                if not path.is_file():
                    raise ValueError(f"{MODEL_NAME}: no bank file {bank}")
                bank = ItemBank.load(path)
            self.documents = bank_documents(bank)
            #: Decides each answer and counts the documents asked (``.asked``).
            self.simulated = SimulatedAbility(bank, float(theta), int(seed))
        except FluidBayesError as exc:
            raise ValueError(f"{MODEL_NAME}: {exc}") from None
        d = self.documents
        self._item_of = dict(zip(zip(d.tasks, d.doc_ids, strict=True), d.items, strict=True))
        self.bank_hash = bank.config_hash
        self.fail_after = None if fail_after is None else int(fail_after)
        self.include_path = include_path
        #: The items of each call, in the order asked.
        self.calls: list[list[str]] = []
        self._tasks: dict[str, Any] = {}
        self._index: dict[str, dict[str, int]] = {}

    @property
    def theta(self) -> float:
        """The simulated ability."""
        return self.simulated.theta

    @property
    def seed(self) -> int:
        """The seed of the answers."""
        return self.simulated.seed

    @property
    def answered(self) -> int:
        """Documents answered so far (every call of this instance)."""
        return sum(len(c) for c in self.calls)

    def identity(self) -> dict[str, Any]:
        """The arguments that decide the answers: bank (its config hash), theta, seed."""
        return {"bank": self.bank_hash, "theta": self.theta, "seed": self.seed}

    # ---------------------------------------------------------------- documents
    def add_tasks(self, tasks: dict[str, Any]) -> None:
        """Look documents up in these built tasks (``{name: Task}``) instead of loading them.

        The driver hands over the tasks it built, so that the model finds the tasks of
        any include path and no task is built twice; the documents are still
        identified by their content.
        """
        for name, task in tasks.items():
            if name not in self._tasks:
                self._tasks[name] = task
                self._index[name] = {}
                for k, doc in enumerate(task.eval_docs):
                    self._index[name].setdefault(_doc_key(doc), k)

    def _task(self, name: str):
        if name not in self._tasks:
            from fluid_bayes.harness.lm_eval_tasks import load_tasks

            self.add_tasks(load_tasks([name], include_path=self.include_path)[1])
        return self._tasks[name]

    def _item(self, task_name: str, doc: Any) -> str:
        self._task(task_name)
        doc_id = self._index[task_name].get(_doc_key(doc))
        if doc_id is None:
            raise RuntimeError(f"{MODEL_NAME}: a document that task {task_name} does not have")
        item = self._item_of.get((task_name, str(doc_id)))
        if item is None:
            raise RuntimeError(f"{MODEL_NAME}: document {doc_id} of task {task_name} is no "
                               "item of the bank")  # fmt: skip
        return item

    def _gold(self, task_name: str, doc: Any) -> tuple[int, int]:
        """(index of the right choice, number of choices) of a multiple-choice document."""
        task = self._task(task_name)
        if task.OUTPUT_TYPE != "multiple_choice":
            return 0, 0
        choices = list(task.doc_to_choice(doc))
        gold = task.doc_to_target(doc)
        if isinstance(gold, list):
            gold = gold[0]
        if isinstance(gold, str):
            gold = choices.index(gold)
        return int(gold), len(choices)

    def _answers(self, requests: Sequence[Any]) -> list[tuple[str, bool, int, int]]:
        """``(item, correct, gold, choices)`` of each request's document (one answer each)."""
        keys, docs = [], {}
        seen: dict[int, str] = {}  # id(doc) -> key: the requests of a document share it
        for inst in requests:
            key = seen.get(id(inst.doc))
            if key is None:
                key = seen[id(inst.doc)] = _doc_key(inst.doc)
            keys.append((inst.task_name, key))
            docs.setdefault((inst.task_name, key), inst.doc)
        items = {k: self._item(k[0], doc) for k, doc in docs.items()}
        if self.fail_after is not None and self.answered + len(items) > self.fail_after:
            raise RuntimeError(f"{MODEL_NAME}: failing as asked (fail_after={self.fail_after}"
                               f"; {self.answered} answered, {len(items)} more asked)")  # fmt: skip
        self.calls.append(list(items.values()))
        answers = {}
        for k, item in items.items():
            gold, n = self._gold(k[0], docs[k])
            answers[k] = (item, self.simulated.correct(item), gold, n)
        return [answers[k] for k in keys]

    def _choice(self, item: str, correct: bool, gold: int, n_choices: int) -> int:
        if correct or n_choices < 2:
            return gold
        wrong = [i for i in range(n_choices) if i != gold]
        h = hashlib.sha256(f"{self.seed}\0{item}\0wrong".encode()).digest()
        return wrong[int.from_bytes(h[:8], "little") % len(wrong)]

    # ---------------------------------------------------------------- LM API
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``(log-likelihood, is greedy)`` per request: the chosen choice wins."""
        out = []
        for inst, (item, correct, gold, n) in zip(requests, self._answers(requests), strict=True):
            win = inst.idx == self._choice(item, correct, gold, n)
            out.append((_RIGHT if win else _WRONG + _OTHER * inst.idx, win))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """The target text when the answer is right, else nothing."""
        out = []
        for inst, (_, correct, _, _) in zip(requests, self._answers(requests), strict=True):
            task = self._task(inst.task_name)
            target = task.doc_to_target(inst.doc)
            if isinstance(target, int) and task.config.doc_to_choice is not None:
                target = task.doc_to_choice(inst.doc)[target]
            out.append(str(target) if correct else "")
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        """Not simulated (perplexity tasks have no right answer)."""
        raise NotImplementedError(f"{MODEL_NAME} answers multiple-choice and generation "
                                  "requests, not loglikelihood_rolling")  # fmt: skip
