"""lm-evaluation-harness tasks for live runs: found, built once, scored, and kept quiet.

* :func:`require_lm_eval`: import lm-eval (the extra ``fluid-bayes[lm-eval]``) and
  register the simulated model ``fluid-sim``.
* :func:`load_tasks`: build tasks by name from the shipped folder :data:`TASKS_DIR`
  (``mmlu_redux_local``), the caller's include path and, only for names not found
  there, lm-eval's own tasks (whose index takes ~11 s to build).
* :func:`scoring`: which per-sample metric and filter score a task's documents.
* :func:`quiet_lm_eval`: silence lm-eval's log and progress bars for a block, skip
  ``simple_evaluate``'s per-call ``git describe`` and environment report (torch's
  ``collect_env`` when torch is installed: seconds per round) and keep the global
  random states; all restored after it.

Importing this module does not import lm-eval.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fluid_bayes.harness.loop import HarnessError

__all__ = [
    "MISSING_EXTRA",
    "TASKS_DIR",
    "load_tasks",
    "quiet_lm_eval",
    "require_lm_eval",
    "scoring",
]

#: The error when lm-eval is not installed.
MISSING_EXTRA = "lm-evaluation-harness is not installed: pip install 'fluid-bayes[lm-eval]'"
#: The task YAMLs shipped with fluid-bayes (``mmlu_redux_local``), always searched.
TASKS_DIR = Path(__file__).resolve().parent / "tasks"
_DEFAULT_METRICS = ("acc", "exact_match")  # as fluid_bayes.read_lm_eval


def require_lm_eval():
    """Import lm-eval and register the simulated model ``fluid-sim``.

    Returns
    -------
    module
        ``lm_eval``.

    Raises
    ------
    HarnessError
        :data:`MISSING_EXTRA` when ``lm_eval`` cannot be imported.
    """
    try:
        import lm_eval
        import lm_eval.evaluator  # noqa: F401
    except ImportError:
        raise HarnessError(MISSING_EXTRA) from None
    import fluid_bayes.harness.lm_eval_sim  # noqa: F401 - @register_model("fluid-sim")

    return lm_eval


@contextlib.contextmanager
def quiet_lm_eval(*, evaluator: bool = False, silence: bool = True) -> Iterator[io.StringIO]:
    """Silence lm-eval while the block runs; everything is restored afterwards.

    Parameters
    ----------
    evaluator : bool
        Skip ``simple_evaluate``'s ``git describe`` subprocess and its environment
        report (``lm_eval.evaluator.get_git_commit_hash`` and ``add_env_info``).
    silence : bool
        Raise the ``lm_eval`` logger to ERROR and capture ``sys.stderr`` (where lm-eval's
        and the model's progress bars go).

    Yields
    ------
    io.StringIO
        What was written to ``sys.stderr`` meanwhile (empty without ``silence``).

    Notes
    -----
    Python's and numpy's global random states are put back too: lm-eval 0.4.13 draws
    eight numbers from Python's generator whenever it reads a task's name
    (``Task.task_name`` evaluates ``random_task_id()`` as a ``getattr`` default), so
    every round would shift the caller's random stream.
    """
    import numpy as np

    logger = logging.getLogger("lm_eval")
    level = logger.level
    rng_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    patched: list[tuple[Any, str, Any]] = []
    if evaluator:
        import lm_eval.evaluator as ev

        for name, stub in (("get_git_commit_hash", lambda: None),
                           ("add_env_info", lambda storage: None)):  # fmt: skip
            patched.append((ev, name, getattr(ev, name)))
            setattr(ev, name, stub)
    sink = io.StringIO()
    try:
        if silence:
            logger.setLevel(logging.ERROR)
            with contextlib.redirect_stderr(sink):
                yield sink
        else:
            yield sink
    finally:
        random.setstate(rng_state)
        np.random.set_state(np_state)  # noqa: NPY002
        logger.setLevel(level)
        for module, name, value in patched:
            setattr(module, name, value)


def load_tasks(
    names: Sequence[str],
    *,
    include_path: str | Path | Sequence[str | Path] | None = None,
    task_manager: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Build lm-eval tasks once, without running them.

    Parameters
    ----------
    names : sequence of str
        Task names (not groups or tags: bank items are documents of single tasks).
    include_path : str, Path or sequence of them, optional
        Folders of task YAMLs, searched with the shipped :data:`TASKS_DIR`; lm-eval's
        built-in tasks (an index that takes ~11 s to build) are searched only for names
        not found there.
    task_manager : lm_eval.tasks.TaskManager, optional
        Use this one instead (``include_path`` is then ignored).

    Returns
    -------
    (TaskManager, dict)
        The task manager and ``{name: Task}``.

    Raises
    ------
    HarnessError
        A folder that does not exist, a name lm-eval does not know or that is a group or
        tag, a task that cannot be built (each named).
    """
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    names = list(dict.fromkeys(names))
    if task_manager is None:
        extra = [] if include_path is None else (
            [include_path] if isinstance(include_path, str | Path) else list(include_path)
        )  # fmt: skip
        for folder in extra:
            if not Path(folder).is_dir():
                raise HarnessError(f"lm-eval include path {folder}: no such folder")
        paths = [str(TASKS_DIR)] + [str(Path(p).resolve()) for p in extra]
        with quiet_lm_eval():
            task_manager = TaskManager(include_path=paths, include_defaults=False)
            if any(n not in task_manager.all_tasks for n in names):
                task_manager = TaskManager(include_path=paths)  # lm-eval's own tasks too
    groups = set(task_manager.all_groups) | set(task_manager.all_tags)
    for name in names:
        if name in groups:
            raise HarnessError(f"lm-eval name {name!r} is a group of tasks, not a task: map "
                               "the bank's items to documents of its single tasks")  # fmt: skip
        if name not in task_manager.all_subtasks:
            where = ", ".join(map(str, task_manager.include_path or [])) or "no include path"
            raise HarnessError(f"lm-eval knows no task {name!r} (searched {where} and "
                               "lm-eval's built-in tasks; give its folder with "
                               "--include-path / include_path=)")  # fmt: skip
    try:
        with quiet_lm_eval():
            loaded = task_manager.load(names)["tasks"]
    except Exception as exc:
        why = " ".join(str(exc).split())
        raise HarnessError(f"lm-eval cannot build task(s) {', '.join(names)} "
                           f"({type(exc).__name__}: {why})") from None  # fmt: skip
    return task_manager, {name: loaded[name] for name in names}


def _metric_names(task) -> list[str]:
    listed = task.config.metric_list
    if listed:
        out = []
        for m in listed:
            name = m.get("metric")
            out.append(name if isinstance(name, str) else getattr(name, "__name__", str(name)))
        return out
    return list(task.aggregation())


def _filter_names(task) -> list[str]:
    listed = task.config.filter_list
    return [f["name"] for f in listed] if listed else ["none"]


def scoring(task_name: str, task, metric: str | None, filter_: str | None) -> tuple[str, str]:
    """The metric and filter whose per-sample value scores a task's documents.

    Parameters
    ----------
    task_name : str
        The task's name (for messages).
    task : lm_eval.api.task.Task
        The built task.
    metric : str, optional
        Asked for; default ``acc`` if the task has it, else ``exact_match``, else the
        task's first metric (as :func:`fluid_bayes.read_lm_eval` reads logs).
    filter_ : str, optional
        Asked for; needed only when the task has several filters.

    Returns
    -------
    (str, str)
        Metric and filter.

    Raises
    ------
    HarnessError
        A metric the task's ``metric_list`` lacks, several filters and none chosen, a
        filter the task lacks.
    """
    metrics = _metric_names(task)
    if metric is None:
        metric = next((m for m in _DEFAULT_METRICS if m in metrics), metrics[0] if metrics
                      else None)  # fmt: skip
    if metric not in metrics:
        raise HarnessError(f"lm-eval task {task_name} does not score metric {metric!r} (its "
                           f"metrics: {', '.join(metrics) or 'none'}); choose one with "
                           "metric= / --metric")  # fmt: skip
    filters = _filter_names(task)
    if len(filters) == 1:
        return metric, filters[0]
    if filter_ is None:
        raise HarnessError(f"lm-eval task {task_name} scores each document under several "
                           f"filters ({', '.join(filters)}); choose one with filter= / "
                           "--filter")  # fmt: skip
    if filter_ not in filters:
        raise HarnessError(f"lm-eval task {task_name} has no filter {filter_!r} (its "
                           f"filters: {', '.join(filters)})")  # fmt: skip
    return metric, filter_
