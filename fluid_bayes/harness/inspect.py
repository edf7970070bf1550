"""Live adaptive evaluation through Inspect AI: one ``inspect_ai.eval`` call per round.

>>> from fluid_bayes.harness.inspect import run                    # doctest: +SKIP
>>> result = run("bank.nc", "my_task.py@mmlu", "openai/gpt-4o-mini",
...              log_dir="logs", session="gpt4o-mini.json")         # doctest: +SKIP

Each round the session proposes ``round_size`` items; :class:`InspectRunner` runs
their samples with ``eval(task, model=<one Model for the whole run>, sample_id=[...],
epochs=1, log_dir=...)`` and reads the score of each sample from the returned log
(``value_to_float``: ``C`` 1, ``I`` 0, ``P`` 0.5, ``N`` 0). The logs stay in
``log_dir``, one per round, as Inspect writes them. The loop, resuming and the result
are :func:`fluid_bayes.harness.loop.run_rounds`'s.

Before anything runs, the task is loaded (a ``file.py@name`` spec, a registered name,
the shipped ``mmlu_redux_local``, or a ``Task``), the model is created (its provider
must be known), the bank's map must name that task, and every bank item's sample id
must be in the task's dataset. Sample ids are passed as ``<task>:<id>`` with the glob
characters ``* ? [`` escaped, since Inspect matches ``sample_id`` with ``fnmatch`` and
reads a ``task:`` prefix as a task selector.

Importing this module does not import Inspect AI; :func:`require_inspect` does, with a
one-line error when the extra ``fluid-bayes[inspect]`` is missing. This module's name
shadows nothing: the package uses absolute imports, so ``import inspect`` elsewhere is
the standard library's.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fluid_bayes.adaptive.results import SessionResult
from fluid_bayes.adaptive.session import SessionConfig
from fluid_bayes.bank import ItemBank
from fluid_bayes.harness.documents import DocumentMap, bank_documents
from fluid_bayes.harness.loop import (
    HarnessError,
    HarnessRunError,
    LiveRun,
    run_rounds,
    session_config,
)

__all__ = [
    "HARNESS",
    "MISSING_EXTRA",
    "SHIPPED_TASKS",
    "InspectRunner",
    "escape_sample_id",
    "load_tasks",
    "require_inspect",
    "run",
    "run_live",
]

#: ``context["harness"]`` of sessions run through Inspect.
HARNESS = "inspect"
#: The error when Inspect AI is not installed.
MISSING_EXTRA = "Inspect AI is not installed: pip install 'fluid-bayes[inspect]'"
#: Tasks that ship with fluid-bayes, found by name: name -> module.
SHIPPED_TASKS = {"mmlu_redux_local": "fluid_bayes.harness.tasks.mmlu_redux_inspect"}
_SIM_PROVIDER = "fluidsim"
_SECRET_WORDS = ("key", "token", "secret", "password")
_EVAL_ARGS_SET = ("model", "model_args", "sample_id", "epochs", "log_dir", "display",
                  "log_level", "score_display", "fail_on_error", "task_args")  # fmt: skip
_SCORE_WORDS = ("c", "i", "p", "n", "yes", "no", "true", "false")


def require_inspect():
    """Import Inspect AI and register the ``fluidsim`` provider.

    Returns
    -------
    module
        ``inspect_ai``.

    Raises
    ------
    HarnessError
        :data:`MISSING_EXTRA` when ``inspect_ai`` cannot be imported.
    """
    try:
        import inspect_ai
    except ImportError:
        raise HarnessError(MISSING_EXTRA) from None
    importlib.import_module("fluid_bayes.harness.inspect_sim")  # @modelapi("fluidsim")
    return inspect_ai


def escape_sample_id(sample_id: str | int) -> str:
    """A sample id as an ``fnmatch`` pattern matching only itself (``*`` -> ``[*]``)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in str(sample_id))


def _key(sample_id: Any) -> str:
    """Inspect's identity of a sample id: ``3``, ``"3"`` and ``"03"`` are one id."""
    text = str(sample_id).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def load_tasks(task: Any, task_args: Mapping[str, Any] | None = None) -> list:
    """Load Inspect tasks without running them.

    Parameters
    ----------
    task : str, Task, callable or sequence of them
        ``"file.py@name"`` (``"file.py"``: every task of the file), a registered task
        name, a name of :data:`SHIPPED_TASKS`, a ``Task``, or a ``@task`` function.
    task_args : mapping, optional
        Arguments of the task function.

    Returns
    -------
    list of inspect_ai.Task

    Raises
    ------
    HarnessError
        Naming the task that does not exist or cannot be loaded.
    """
    inspect_ai = require_inspect()
    args = dict(task_args or {})
    if isinstance(task, Sequence) and not isinstance(task, str):
        return [t for one in task for t in load_tasks(one, args)]
    if isinstance(task, inspect_ai.Task):
        return [task]
    if isinstance(task, str) and task in SHIPPED_TASKS:
        task = getattr(importlib.import_module(SHIPPED_TASKS[task]), task)
    if callable(task):
        try:
            made = task(**args)
        except Exception as exc:
            raise HarnessError(f"Inspect task {getattr(task, '__name__', task)!r} cannot be "
                               f"created ({type(exc).__name__}: {exc})") from None  # fmt: skip
        return load_tasks(made)
    if not isinstance(task, str) or not task.strip():
        raise HarnessError(f"not an Inspect task: {task!r}")
    spec = task
    file, at, name = task.partition("@")
    if file.endswith(".py"):
        if not Path(file).is_file():
            raise HarnessError(f"Inspect task {task!r}: no such file {file}")
        if Path(file).is_absolute():  # Inspect globs a file spec: only relative ones
            spec = os.path.relpath(file) + at + name
    from inspect_ai._eval.loader import load_tasks as inspect_load_tasks

    try:
        tasks = inspect_load_tasks([spec], args)
    except Exception as exc:
        why = _plain(exc)
        raise HarnessError(
            f"Inspect task {task!r} cannot be loaded ({type(exc).__name__}: {why})"
        ) from None
    if not tasks:
        raise HarnessError(f"Inspect task {task!r} not found (give file.py@name, a registered "
                           f"task or one of {', '.join(SHIPPED_TASKS)})")  # fmt: skip
    return tasks


def _scorer_names(task) -> list[str]:
    from inspect_ai._util.registry import registry_unqualified_name

    names = []
    for scorer in task.scorer or []:
        try:
            names.append(registry_unqualified_name(scorer))
        except Exception:  # noqa: BLE001 - an unregistered scorer: its name is unknown here
            names.append("?")
    return names


def _identity(model, model_args: Mapping[str, Any]) -> dict[str, Any]:
    """The model arguments that identify the model (no secrets, no failure switches)."""
    api = model.api
    if type(api).__name__ == "FluidSimAPI":
        return {"bank": str(Path(model_args["bank"]).expanduser().resolve()),
                "theta": api.theta, "seed": api.seed}  # fmt: skip
    return {
        k: v for k, v in sorted(model_args.items())
        if not any(w in k.lower() for w in _SECRET_WORDS)
    }  # fmt: skip


class InspectRunner:
    """Runs a round's documents as samples of Inspect tasks (the loop's ``Runner``).

    Parameters
    ----------
    task : str, Task, callable or sequence of them
        See :func:`load_tasks`.
    model : str or inspect_ai.model.Model
        ``provider/name`` (e.g. ``openai/gpt-4o``, ``fluidsim/theta=0.5``); created
        once with ``get_model`` and used for every round.
    log_dir : str or Path
        Folder of Inspect's logs (one per round and task).
    model_args, task_args : mapping, optional
        Arguments of the model provider and of the task function.
    scorer : str, optional
        Which score of a task with several scorers to read.
    fail_on_error : bool or float
        Passed to ``eval``: ``True`` stops a round at the first failed sample. Any
        failed sample fails the round either way.
    eval_args : mapping, optional
        More keyword arguments of ``inspect_ai.eval`` (``max_samples``, ``time_limit``,
        ...).

    Raises
    ------
    HarnessError
        Inspect AI missing, a task that cannot be loaded, a model whose provider is
        unknown or whose arguments it refuses.
    """

    def __init__(
        self,
        task: Any,
        model: Any,
        *,
        log_dir: str | Path,
        model_args: Mapping[str, Any] | None = None,
        task_args: Mapping[str, Any] | None = None,
        scorer: str | None = None,
        fail_on_error: bool | float = True,
        eval_args: Mapping[str, Any] | None = None,
    ) -> None:
        inspect_ai = require_inspect()
        self._eval = inspect_ai.eval
        self.tasks = load_tasks(task, task_args)
        self.by_name = {t.name: t for t in self.tasks}
        if len(self.by_name) < len(self.tasks):
            raise HarnessError(f"Inspect tasks of one name twice: {[t.name for t in self.tasks]}")
        model_args = dict(model_args or {})
        self.model = _model(model, model_args)
        self.log_dir = str(log_dir)
        self.scorer = scorer
        self.fail_on_error = fail_on_error
        self.eval_args = dict(eval_args or {})
        taken = sorted(set(self.eval_args) & set(_EVAL_ARGS_SET))
        if taken:
            raise HarnessError(f"eval_args {taken}: the driver sets these itself")
        self._ids: dict[str, dict[str, str | int]] = {}
        self.context: dict[str, Any] = {
            "harness": HARNESS,
            "tasks": list(self.by_name),
            "model": str(self.model),
            "model_args": _identity(self.model, model_args),
        }
        if task_args:
            self.context["task_args"] = {k: task_args[k] for k in sorted(task_args)}

    def sample_ids(self, task: str) -> dict[str, str | int]:
        """The samples of a task: Inspect's identity of each id -> the id itself.

        Samples without an id get Inspect's automatic ones (1, 2, ... by position).
        """
        if task not in self._ids:
            ids: dict[str, str | int] = {}
            for k, sample in enumerate(self.by_name[task].dataset):
                sid = k + 1 if sample.id is None else sample.id
                if _key(sid) in ids:
                    raise HarnessError(f"Inspect task {task}: sample id {sid!r} occurs twice")
                ids[_key(sid)] = sid
            self._ids[task] = ids
        return self._ids[task]

    def check(self, documents: DocumentMap) -> None:
        """Verify that the tasks hold every document of the map, before anything runs.

        Raises
        ------
        HarnessError
            A task of the map that is not the Inspect task (both named), an item whose
            sample id the task lacks (item, id and task named), a task with no scorer
            or with several and no ``scorer`` chosen.
        """
        names = ", ".join(self.by_name)
        unknown = [t for t in documents.task_names if t not in self.by_name]
        if unknown:
            raise HarnessError(
                f"the bank's items are documents of task {', '.join(unknown)}, but the "
                f"Inspect task is {names}"
            )
        for task, pairs in documents.lookup(documents.items).items():
            ids = self.sample_ids(task)
            lacking = [(item, doc) for item, doc in pairs if _key(doc) not in ids]
            if lacking:
                item, doc = lacking[0]
                more = f" (and {len(lacking) - 1} more items)" if len(lacking) > 1 else ""
                raise HarnessError(
                    f"item {item!r}: the Inspect task {task} has no sample with id {doc!r}"
                    f"{more}; its {len(ids)} samples have ids such as "
                    f"{', '.join(repr(v) for v in list(ids.values())[:3])}"
                )
            scorers = _scorer_names(self.by_name[task])
            if not scorers:
                raise HarnessError(f"the Inspect task {task} has no scorer")
            if self.scorer is None and len(scorers) > 1:
                raise HarnessError(f"the Inspect task {task} has scorers {', '.join(scorers)}: "
                                   "choose one (scorer=NAME, --scorer NAME)")  # fmt: skip
            if self.scorer is not None and "?" not in scorers and self.scorer not in scorers:
                raise HarnessError(f"the Inspect task {task} has no scorer {self.scorer!r} "
                                   f"(it has {', '.join(scorers)})")  # fmt: skip

    def task_sizes(self) -> dict[str, int]:
        """Number of samples of each task."""
        return {name: len(t.dataset) for name, t in self.by_name.items()}

    def run(self, requests: Mapping[str, list[tuple[str, str]]]) -> dict[str, float]:
        """Run one round: one ``eval`` per task; return ``{item: score}``.

        Raises
        ------
        HarnessRunError
            The evaluation ended with an error, a sample failed, or a requested sample
            came back without a score (item and sample id named); nothing of the round
            is returned.
        """
        scores: dict[str, float] = {}
        for task, pairs in requests.items():
            scores.update(self._run_task(task, pairs))
        return scores

    def _run_task(self, task: str, pairs: list[tuple[str, str]]) -> dict[str, float]:
        from inspect_ai.log import read_eval_log_sample_summaries

        ids = self.sample_ids(task)
        wanted = {_key(doc): item for item, doc in pairs}
        patterns = [f"{task}:{escape_sample_id(ids[k])}" for k in wanted]
        (log,) = self._eval(
            self.by_name[task],
            model=self.model,
            sample_id=patterns,
            epochs=1,
            log_dir=self.log_dir,
            display="none",
            log_level="error",
            score_display=False,
            fail_on_error=self.fail_on_error,
            **self.eval_args,
        )
        where = f"task {task}, log {log.location}"
        samples = read_eval_log_sample_summaries(log.location) if log.location else []
        for s in samples:
            item = wanted.get(_key(s.id))
            if item is None:
                raise HarnessRunError(f"Inspect ran sample {s.id!r}, which the round did not "
                                      f"ask for ({where})")  # fmt: skip
            if s.error:
                message = " ".join(str(s.error).split())[:300]
                raise HarnessRunError(f"item {item!r} (sample {s.id!r}) failed: {message} "
                                      f"({where})")  # fmt: skip
        if log.status != "success":
            message = " ".join(log.error.message.split())[:300] if log.error else "no message"
            raise HarnessRunError(f"Inspect's evaluation ended with status {log.status}: "
                                  f"{message} ({where})")  # fmt: skip
        out: dict[str, float] = {}
        for s in samples:
            item = wanted[_key(s.id)]
            out[item] = self._score(item, s, where)
        for key, item in wanted.items():
            if item not in out:
                raise HarnessRunError(f"Inspect returned no score for item {item!r} (sample "
                                      f"{ids[key]!r}, {where})")  # fmt: skip
        return out

    def _score(self, item: str, sample, where: str) -> float:
        from inspect_ai.scorer import value_to_float

        found = sample.scores or {}
        name = self.scorer or (next(iter(found)) if len(found) == 1 else None)
        if name not in found:
            raise HarnessRunError(f"item {item!r} (sample {sample.id!r}) has no score "
                                  f"{name or ''} (it has {sorted(found)}; {where})")  # fmt: skip
        value = found[name].value
        scalar = isinstance(value, int | float | bool) or (
            isinstance(value, str) and _is_score_text(value)
        )
        if not scalar:
            raise HarnessRunError(f"item {item!r} (sample {sample.id!r}): score {name} is "
                                  f"{value!r}, not a number or C/I/P/N ({where})")  # fmt: skip
        return float(value_to_float()(value))


def _plain(exc: BaseException) -> str:
    """An exception's message on one line, without Inspect's console markup."""
    return " ".join(re.sub(r"\[/?(?:bold|b|italic|i|red|yellow)\]", "", str(exc)).split())


def _is_score_text(value: str) -> bool:
    text = value.strip().lower()
    if text in _SCORE_WORDS:
        return True
    try:
        return float(text) == float(text)  # finite or infinite, not NaN
    except ValueError:
        return False


def _model(model: Any, model_args: dict[str, Any]):
    from inspect_ai.model import Model, get_model

    if isinstance(model, Model):
        return model
    if not isinstance(model, str) or "/" not in model:
        raise HarnessError(f"Inspect model {model!r} is not provider/name "
                           "(e.g. openai/gpt-4o or fluidsim/theta=0.5)")  # fmt: skip
    if "," in model:
        raise HarnessError(f"Inspect model {model!r}: one model per run (no commas; the "
                           "simulated model separates theta and seed with ':')")  # fmt: skip
    try:
        return get_model(model, memoize=False, **model_args)
    except Exception as exc:
        message = _plain(exc)
        if "not recognized" in message:
            message = f"Inspect knows no model provider {model.split('/', 1)[0]!r}"
        raise HarnessError(f"Inspect model {model!r}: {message}") from None


def _bank(bank: Any) -> ItemBank:
    return bank if isinstance(bank, ItemBank) else ItemBank.load(bank)


def run_live(
    bank: ItemBank | str | Path,
    task: Any,
    model: Any,
    *,
    log_dir: str | Path,
    model_args: Mapping[str, Any] | None = None,
    task_args: Mapping[str, Any] | None = None,
    scorer: str | None = None,
    round_size: int | None = None,
    session: str | Path | None = None,
    subject: str | None = None,
    progress: Callable[[str], None] | None = None,
    config: SessionConfig | None = None,
    fail_on_error: bool | float = True,
    eval_args: Mapping[str, Any] | None = None,
    **options: Any,
) -> LiveRun:
    """Evaluate a model adaptively through Inspect AI; return the run with its cost.

    Parameters
    ----------
    bank : ItemBank, str or Path
        The bank (or its file); each item must map to a sample of ``task``.
    task : str, Task, callable or sequence of them
        The Inspect task(s) (:func:`load_tasks`).
    model : str or inspect_ai.model.Model
        ``provider/name``; ``fluidsim/theta=X:seed=N`` with ``model_args={"bank": PATH}``
        is a simulated model of known ability.
    log_dir : str or Path
        Folder of Inspect's logs.
    model_args, task_args : mapping, optional
        Arguments of the model provider and of the task.
    scorer : str, optional
        The score to read when a task has several scorers.
    round_size : int, optional
        Samples per ``eval`` call (>= 1): the session's ``round_size`` (default
        :data:`~fluid_bayes.harness.loop.DEFAULT_ROUND_SIZE`, or ``config``'s).
    session : str or Path, optional
        Session file, saved after every round; an existing one is resumed (refused if
        it was made with another bank, task, model or options).
    subject : str, optional
        The model's label in the result (default: the model's name).
    progress : callable, optional
        Receives one line per round.
    config : SessionConfig, optional
        Session options; else ``method=`` and ``**options`` (its fields).
    fail_on_error : bool or float
        Inspect's ``fail_on_error`` (any failed sample fails the round regardless).
    eval_args : mapping, optional
        More keyword arguments of ``inspect_ai.eval``.
    **options
        ``method=`` and :class:`~fluid_bayes.adaptive.session.SessionConfig` fields
        (``max_items``, ``stop_sd``, ...).

    Returns
    -------
    LiveRun
        ``.result`` (the :class:`SessionResult`), the rounds run now, the answers taken
        from the session file and the documents a full run of the task would take.

    Raises
    ------
    BankError, HarnessError, DataError
        Before anything runs (a bank without documents, a task, sample, model or
        session file that does not fit).
    HarnessRunError
        A round failed; the answers of earlier rounds are in the session file.
    """
    config = session_config(config, round_size, options)  # bad options fail first
    bank = _bank(bank)
    documents = bank_documents(bank)  # a bank without documents fails before Inspect loads
    runner = InspectRunner(
        task, model, log_dir=log_dir, model_args=model_args, task_args=task_args,
        scorer=scorer, fail_on_error=fail_on_error, eval_args=eval_args,
    )  # fmt: skip
    runner.check(documents)
    return run_rounds(
        bank,
        runner,
        config=config,
        subject=runner.context["model"] if subject is None else subject,
        session_path=session,
        progress=progress,
    )


def run(bank: ItemBank | str | Path, task: Any, model: Any, **kwargs: Any) -> SessionResult:
    """Evaluate a model adaptively through Inspect AI; return its :class:`SessionResult`.

    The arguments are :func:`run_live`'s; use that for the harness cost (documents run,
    rounds, seconds).
    """
    return run_live(bank, task, model, **kwargs).result
