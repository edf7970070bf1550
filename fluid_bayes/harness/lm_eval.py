"""Live adaptive evaluation through lm-evaluation-harness: one ``simple_evaluate`` per round.

>>> from fluid_bayes.harness.lm_eval import run                       # doctest: +SKIP
>>> result = run("models/mmlu-redux.nc", "hf", model_args="pretrained=./ckpt",
...              session="runs/ckpt.json", stop_sd="auto")           # doctest: +SKIP

Each round the session proposes ``round_size`` items; :class:`LmEvalRunner` runs their
documents with one call ``simple_evaluate(model=<one LM for the whole run>,
tasks=[<the Task objects, built once>], samples={task: sorted ids}, log_samples=True,
bootstrap_iters=0, use_cache=None, cache_requests=False, random_seed=None,
numpy_random_seed=None, torch_random_seed=None)`` and reads each document's score from
its per-sample record (the metric, ``acc`` by default, under the task's filter). The
loop, resuming and the result are :func:`fluid_bayes.harness.loop.run_rounds`'s.

What lm-eval 0.4.13 does that the runner guards against
-------------------------------------------------------
* ``samples`` runs the listed documents in dataset order but labels the k-th record
  with the k-th listed id, so unsorted or repeated ids pair scores with the wrong
  documents: ids go sorted and unique, and each record is matched by its position in
  that list and checked against the task's document (an inconsistent record fails the
  round).
* An empty id list (or a task left out of ``samples``) runs the whole task: only the
  tasks with chosen documents are passed, each with its ids.
* An id >= the task's size is a bare ``assert`` (gone under ``python -O``) and negative
  ids are dropped silently: every document of the bank's map is checked against its
  task before anything runs.
* ``cache_requests=True`` keys its cache without the sample ids (round 2 would get round
  1's documents) and ``use_cache`` would answer from an earlier model's database: both
  off. The default seeds reseed Python's, numpy's and torch's global generators on
  every call: all ``None``.
* Passing a task by name rebuilds it and reloads its data every call: tasks are loaded
  once per run (:func:`load_tasks`) and the ``Task`` objects passed.

During a round lm-eval is kept quiet and ``simple_evaluate``'s per-call ``git
describe`` and environment report are skipped
(:func:`~fluid_bayes.harness.lm_eval_tasks.quiet_lm_eval`). Importing this module does
not import lm-eval; :func:`require_lm_eval` does, with a one-line error naming the extra
``fluid-bayes[lm-eval]`` when it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fluid_bayes.adaptive.results import SessionResult
from fluid_bayes.adaptive.session import Session, SessionConfig
from fluid_bayes.bank import ItemBank
from fluid_bayes.exceptions import DataError
from fluid_bayes.harness.documents import DocumentMap, bank_documents
from fluid_bayes.harness.lm_eval_tasks import (
    MISSING_EXTRA,
    TASKS_DIR,
    load_tasks,
    quiet_lm_eval,
    require_lm_eval,
    scoring,
)
from fluid_bayes.harness.loop import (
    HarnessError,
    HarnessRunError,
    LiveRun,
    run_rounds,
    session_config,
)

__all__ = [
    "CONTROLLED",
    "HARNESS",
    "MISSING_EXTRA",
    "TASKS_DIR",
    "LmEvalRunner",
    "load_tasks",
    "quiet_lm_eval",
    "require_lm_eval",
    "run",
    "run_live",
]

#: ``context["harness"]`` of sessions run through lm-eval.
HARNESS = "lm-eval"
#: ``simple_evaluate`` arguments the runner sets itself (``eval_args`` may not).
CONTROLLED = frozenset({
    "model", "model_args", "tasks", "task_manager", "samples", "limit", "log_samples",
    "bootstrap_iters", "use_cache", "cache_requests", "rewrite_requests_cache",
    "delete_requests_cache", "random_seed", "numpy_random_seed", "torch_random_seed",
    "predict_only", "check_integrity", "write_out", "verbosity", "evaluation_tracker",
    "batch_size", "max_batch_size", "device",
})  # fmt: skip
_SECRET_WORDS = ("key", "token", "secret", "password")
_NOT_IDENTITY = ("fail_after",)  # model arguments that do not change the answers


def _plain(value: Any) -> Any:
    """A model argument as JSON: numbers, text, booleans and None as they are."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


class LmEvalRunner:
    """Runs a round's documents through lm-evaluation-harness (the loop's ``Runner``).

    Parameters
    ----------
    tasks : sequence of str
        The tasks of the bank's documents.
    model : str or lm_eval.api.model.LM
        An ``LM`` instance (used as is), or a registered model name (``hf``, ``vllm``,
        ``fluid-sim``, ...) created once with
        ``get_model(name).create_from_arg_string(model_args, {batch_size, device})``
        (``create_from_arg_obj`` for a mapping).
    model_args : str or mapping, optional
        The model's arguments (``"pretrained=./ckpt,dtype=bfloat16"``), for a name.
    include_path, task_manager
        Where the tasks are found (:func:`load_tasks`).
    metric : str, optional
        The per-sample field read as the score (default, per task: ``acc`` if the task
        has it, else ``exact_match``, else its first metric), as
        :func:`fluid_bayes.read_lm_eval` reads ``--log_samples`` files.
    filter : str, optional
        Which filter's records to read, for a task with several (required there).
    batch_size, device : optional
        lm-eval's model options, for a name.
    eval_args : mapping, optional
        More ``simple_evaluate`` arguments (``num_fewshot``, ``apply_chat_template``,
        ``system_instruction``, ``gen_kwargs``, ...), not those in :data:`CONTROLLED`.
    quiet : bool
        Silence lm-eval during rounds (:func:`quiet_lm_eval`).
    documents : DocumentMap, optional
        Checked (:meth:`check`) before the model is created.

    Raises
    ------
    HarnessError
        lm-eval missing, a task it does not know, a metric or filter a task lacks, a
        document a task lacks, a model name it does not know, an argument it does not
        take (all before the model is created, but the last).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        model: Any,
        *,
        model_args: str | Mapping[str, Any] | None = None,
        include_path: str | Path | Sequence[str | Path] | None = None,
        task_manager: Any = None,
        metric: str | None = None,
        filter: str | None = None,  # noqa: A002 - lm-eval's own name for it
        batch_size: int | str | None = None,
        device: str | None = None,
        eval_args: Mapping[str, Any] | None = None,
        quiet: bool = True,
        documents: DocumentMap | None = None,
    ) -> None:
        require_lm_eval()
        self.eval_args = dict(eval_args or {})
        refused = sorted(set(self.eval_args) & CONTROLLED)
        if refused:
            raise HarnessError(f"simple_evaluate argument(s) {', '.join(refused)} are the "
                               "driver's (give model, batch size and device directly)")  # fmt: skip
        self.task_manager, self.tasks = load_tasks(
            tasks, include_path=include_path, task_manager=task_manager
        )
        self.quiet = quiet
        self.docs = {name: task.eval_docs for name, task in self.tasks.items()}
        self.scoring = {name: scoring(name, t, metric, filter) for name, t in self.tasks.items()}
        if documents is not None:
            self.check(documents)  # before the model loads
        self.lm, name, identity = self._model(model, model_args, batch_size, device)
        #: The model's label (the default subject).
        self.label = name + "".join(f" {k}={v}" for k, v in identity.items())
        self.context: dict[str, Any] = {
            "harness": HARNESS,
            "tasks": list(self.tasks),
            "model": name,
            "model_args": identity,
            "metric": {t: m for t, (m, _) in self.scoring.items()},
            "filter": {t: f for t, (_, f) in self.scoring.items()},
        }
        if self.eval_args:
            self.context["eval_args"] = {k: _plain(self.eval_args[k])
                                         for k in sorted(self.eval_args)}  # fmt: skip

    def _model(self, model: Any, model_args: Any, batch_size: Any, device: Any):
        """(LM, name, identifying arguments)."""
        from lm_eval.api.model import LM
        from lm_eval.api.registry import get_model
        from lm_eval.utils import simple_parse_args_string

        from fluid_bayes.harness.lm_eval_sim import MODEL_NAME, FluidSimLM

        if isinstance(model, LM):
            if model_args:
                raise HarnessError("model_args are for a model given by name, not an LM")
            lm = model
        elif isinstance(model, str) and model.strip():
            args = (simple_parse_args_string(model_args) if isinstance(model_args, str | None)
                    else dict(model_args))  # fmt: skip
            try:
                cls = get_model(model)
            except (ValueError, KeyError):
                raise HarnessError(f"lm-eval knows no model {model!r} (e.g. hf, vllm, "
                                   f"local-completions, {MODEL_NAME})") from None  # fmt: skip
            except ImportError as exc:
                raise HarnessError(f"lm-eval model {model!r} needs a package that is not "
                                   f"installed ({exc}); see lm-eval's extras "
                                   f"(pip install 'lm_eval[hf]', ...)") from None  # fmt: skip
            extra = {"batch_size": batch_size, "device": device}
            try:
                with quiet_lm_eval(silence=self.quiet):
                    lm = (cls.create_from_arg_string(model_args or "", extra)
                          if isinstance(model_args, str | None)
                          else cls.create_from_arg_obj(args, extra))  # fmt: skip
            except (TypeError, ValueError, OSError, ImportError) as exc:
                why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                raise HarnessError(f"lm-eval model {model!r} ({model_args or 'no args'}): "
                                   f"{why}") from None  # fmt: skip
            if not isinstance(lm, FluidSimLM):
                identity = {k: _plain(v) for k, v in sorted(args.items())
                            if k not in _NOT_IDENTITY
                            and not any(w in k.lower() for w in _SECRET_WORDS)}  # fmt: skip
                return lm, model, identity
        else:
            raise HarnessError(f"not an lm-eval model: {model!r} (give an LM or a model name)")
        if isinstance(lm, FluidSimLM):
            lm.add_tasks(self.tasks)
            return lm, MODEL_NAME, lm.identity()
        path = getattr(getattr(lm, "config", None), "_name_or_path", None)
        return lm, type(lm).__name__, ({} if path is None else {"name_or_path": str(path)})

    def check(self, documents: DocumentMap) -> None:
        """Verify, before anything runs, that the tasks hold every document of the map.

        Raises
        ------
        HarnessError
            A task of the map that the runner was not built with, an item whose
            document id is not an index of its task (item, id and task named).
        BankError
            A document id that is not an integer (:meth:`DocumentMap.lm_eval_ids`).
        """
        unknown = [t for t in documents.task_names if t not in self.tasks]
        if unknown:
            raise HarnessError(f"the bank's items are documents of task {', '.join(unknown)}, "
                               f"but the runner has {', '.join(self.tasks)}")  # fmt: skip
        ids = documents.lm_eval_ids()
        sizes = self.task_sizes()
        for item, task, k in zip(documents.items, documents.tasks, ids, strict=True):
            if k >= sizes[task]:
                n = sizes[task]
                raise HarnessError(f"item {item!r}: lm-eval task {task} has no document {k} "
                                   f"(its {n} documents are 0-{n - 1})")  # fmt: skip

    def task_sizes(self) -> dict[str, int]:
        """Number of documents of each task."""
        return {name: len(docs) for name, docs in self.docs.items()}

    def run(self, requests: Mapping[str, list[tuple[str, str]]]) -> dict[str, float]:
        """Run one round, one ``simple_evaluate`` call; return ``{item: score}``.

        Raises
        ------
        HarnessRunError
            lm-eval returned no records, a record that is not the document asked for or
            a score that is not a number (item named); nothing of the round is returned.
        """
        import lm_eval

        asked = {task: pairs for task, pairs in requests.items() if pairs}
        if not asked:  # (an empty id list would run the whole task)
            return {}
        ids = {task: sorted({int(doc) for _, doc in pairs}) for task, pairs in asked.items()}
        with quiet_lm_eval(evaluator=True, silence=self.quiet):
            res = lm_eval.simple_evaluate(
                model=self.lm,
                tasks=[self.tasks[t] for t in ids],
                task_manager=self.task_manager,
                samples=ids,
                log_samples=True,
                bootstrap_iters=0,
                use_cache=None,
                cache_requests=False,
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
                **self.eval_args,
            )
        if res is None or "samples" not in res:
            raise HarnessRunError("lm-eval returned no per-sample records (not rank 0?)")
        scores: dict[str, float] = {}
        for task, pairs in asked.items():
            scores.update(self.read_scores(task, pairs, res["samples"].get(task) or []))
        return scores

    def read_scores(self, task: str, pairs: list[tuple[str, str]],
                    records: list[dict[str, Any]]) -> dict[str, float]:  # fmt: skip
        """Each document's score from the per-sample records of one ``simple_evaluate``.

        lm-eval writes one record per document and filter, in dataset order, the k-th
        labelled with the k-th requested id; the ids were sorted, so the k-th record of
        the filter is the k-th smallest document asked. Each is checked: its ``doc_id``
        label and its document must be that document's.

        Parameters
        ----------
        task : str
            The task.
        pairs : list of (str, str)
            ``(item, doc_id)`` asked.
        records : list of dict
            ``simple_evaluate(...)["samples"][task]``.

        Returns
        -------
        dict
            ``{item: score}``.

        Raises
        ------
        HarnessRunError
            Records missing or extra, a record of another document, a score missing or
            not a finite number (task, document and item named).
        """
        item_at = {int(doc): item for item, doc in pairs}
        wanted = sorted(item_at)
        metric, filter_ = self.scoring[task]
        mine = [r for r in records if r.get("filter") == filter_]
        if len(mine) != len(wanted):
            raise HarnessRunError(f"lm-eval task {task}: {len(mine)} records under filter "
                                  f"{filter_!r} for the {len(wanted)} documents asked")  # fmt: skip
        docs = self.docs[task]
        out: dict[str, float] = {}
        for k, rec in zip(wanted, mine, strict=True):
            item = item_at[k]
            doc = docs[k]
            same = rec.get("doc") is doc or rec.get("doc") == doc
            if rec.get("doc_id") != k or not same:
                what = f"is labelled {rec.get('doc_id')!r}" + ("" if same else " and holds "
                                                               "another document")  # fmt: skip
                raise HarnessRunError(f"lm-eval task {task}: the record in place of document "
                                      f"{k} (item {item!r}) {what}")  # fmt: skip
            if metric not in rec:
                has = ", ".join(map(str, rec.get("metrics", [])))
                raise HarnessRunError(f"lm-eval task {task}, document {k} (item {item!r}): the "
                                      f"record has no {metric!r} (it has {has})")  # fmt: skip
            value = rec[metric]
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise HarnessRunError(f"lm-eval task {task}, document {k} (item {item!r}): "
                                      f"{metric} is {value!r}, not a document's score")  # fmt: skip
            out[item] = float(value)
        return out


def _precheck_session(path: Path, bank: ItemBank, documents: DocumentMap) -> None:
    """Refuse a session file of another bank, harness or task set before a model loads.

    (:func:`~fluid_bayes.harness.loop.run_rounds` compares the whole context, the model's
    included, once the runner is built.)
    """
    theirs = Session.load(path, bank).context  # another bank: refused here
    for key, ours in (("harness", HARNESS), ("tasks", list(documents.task_names))):
        if theirs.get(key) != ours:
            raise DataError(f"{path}: the session was run with {key} {theirs.get(key)!r}, not "
                            f"{ours!r}; use another --session file to start afresh")  # fmt: skip


def run_live(
    bank: ItemBank | str | Path,
    model: Any,
    *,
    model_args: str | Mapping[str, Any] | None = None,
    include_path: str | Path | Sequence[str | Path] | None = None,
    task_manager: Any = None,
    metric: str | None = None,
    filter: str | None = None,  # noqa: A002 - lm-eval's own name for it
    round_size: int | None = None,
    session: str | Path | None = None,
    subject: str | None = None,
    progress: Callable[[str], None] | None = None,
    config: SessionConfig | None = None,
    batch_size: int | str | None = None,
    device: str | None = None,
    eval_args: Mapping[str, Any] | None = None,
    quiet: bool = True,
    **options: Any,
) -> LiveRun:
    """Evaluate a model adaptively through lm-evaluation-harness; return the run and its cost.

    Parameters
    ----------
    bank : ItemBank, str or Path
        The bank (or its file); each item must map to a document of an lm-eval task
        (:func:`~fluid_bayes.harness.documents.bank_documents`).
    model : str or lm_eval.api.model.LM
        An ``LM`` loaded once by the caller, or a model name (``hf``, ``fluid-sim``,
        ...) loaded once here from ``model_args``.
    model_args : str or mapping, optional
        The model's arguments, for a name (``"pretrained=./ckpt"``;
        ``"bank=BANK.nc,theta=0.5,seed=1"`` for the simulated ``fluid-sim``).
    include_path, task_manager : optional
        Where the tasks are found (:func:`load_tasks`); the shipped ``mmlu_redux_local``
        always is.
    metric, filter : str, optional
        The per-sample score read (:class:`LmEvalRunner`); the session's
        ``threshold`` (or the bank's) binarizes a score that is not 0/1.
    round_size : int, optional
        Documents per ``simple_evaluate`` call (>= 1): the session's ``round_size``
        (default :data:`~fluid_bayes.harness.loop.DEFAULT_ROUND_SIZE`, or ``config``'s).
    session : str or Path, optional
        Session file, saved after every round; an existing one is resumed (refused if
        it was made with another bank, harness, task set, metric, model or options).
    subject : str, optional
        The model's label in the result (default: its name and arguments).
    progress : callable, optional
        Receives one line per round.
    config : SessionConfig, optional
        Session options; else ``method=`` and ``**options`` (its fields).
    batch_size, device : optional
        lm-eval's model options, for a model name.
    eval_args : mapping, optional
        More ``simple_evaluate`` arguments (``num_fewshot``, ``apply_chat_template``...).
    quiet : bool
        Silence lm-eval's log and progress bars during rounds.
    **options
        ``method=`` and :class:`~fluid_bayes.adaptive.session.SessionConfig` fields
        (``max_items``, ``stop_sd``, ...).

    Returns
    -------
    LiveRun
        ``.result`` (the :class:`SessionResult`: ability on the bank's theta scale,
        expected accuracy over every bank item), the rounds run now, the answers taken
        from the session file and the documents a full run of the tasks would take.

    Raises
    ------
    BankError, HarnessError, DataError, OptionError
        Before anything runs: a bank without documents, a task, document, metric or
        model lm-eval does not have, a session file of another bank, harness or tasks,
        bad options.
    HarnessRunError
        A round failed; the answers of earlier rounds are in the session file.
    """
    config = session_config(config, round_size, options)  # bad options fail first
    require_lm_eval()
    bank = bank if isinstance(bank, ItemBank) else ItemBank.load(bank)
    documents = bank_documents(bank)  # a bank without documents fails before lm-eval loads
    if session is not None and Path(session).exists():
        _precheck_session(Path(session), bank, documents)
    runner = LmEvalRunner(
        documents.task_names, model, model_args=model_args, include_path=include_path,
        task_manager=task_manager, metric=metric, filter=filter, batch_size=batch_size,
        device=device, eval_args=eval_args, quiet=quiet, documents=documents,
    )  # fmt: skip
    return run_rounds(
        bank,
        runner,
        config=config,
        subject=runner.label if subject is None else subject,
        session_path=session,
        progress=progress,
    )


def run(bank: ItemBank | str | Path, model: Any, **kwargs: Any) -> SessionResult:
    """Evaluate a model adaptively through lm-evaluation-harness; return its result.

    The arguments are :func:`run_live`'s; use that for the harness cost (documents run,
    rounds, seconds).
    """
    return run_live(bank, model, **kwargs).result
