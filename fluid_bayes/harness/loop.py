"""The live-evaluation loop shared by every harness driver.

One round: the session proposes ``round_size`` items (:meth:`Session.next_items`), the
driver's :class:`Runner` runs their documents through the harness in one call and returns
the score of each, the session records them and is saved. The loop knows nothing about a
particular harness; :mod:`fluid_bayes.harness.lm_eval` and :mod:`fluid_bayes.harness.inspect`
are runners.

Resuming
--------
With ``session_path`` the session is saved after every round (atomically). Rerunning with
the same file resumes it: every recorded answer is kept and its document is never run
again. A round whose harness call fails records nothing (a harness returns a round's
scores together); its documents are asked again on resume. A session file made against
another bank, harness, task set or model is refused before anything runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fluid_bayes.adaptive.results import SessionResult
from fluid_bayes.adaptive.session import Session, SessionConfig
from fluid_bayes.exceptions import DataError, FluidBayesError
from fluid_bayes.harness.documents import DocumentMap, bank_documents

__all__ = [
    "DEFAULT_ROUND_SIZE",
    "HarnessError",
    "HarnessRunError",
    "LiveRun",
    "Round",
    "Runner",
    "run_rounds",
    "session_config",
]

#: Items asked per harness call unless told otherwise, by measurement (benchmarks/README.md):
#: a harness call has a fixed cost (Inspect: 111 ms for 1 document, 286 ms for 5, 630 ms
#: for 20; lm-eval 2-4 ms, 3-7 ms, 8-14 ms; a real model adds its per-call batching and
#: set-up), while rounds of 5 (spread rule) cost about 2-4% more posterior SD than one
#: item at a time and rank as well (benchmarks/rounds.py); rounds of 20 cost +11%, +22%
#: at a 20-item budget.
DEFAULT_ROUND_SIZE = 5


class HarnessError(DataError):
    """The harness cannot run what the bank needs (unknown task, document or metric)."""


class HarnessRunError(FluidBayesError, RuntimeError):
    """The harness or the model failed during a round; answers so far are saved."""


class Runner(Protocol):
    """What a harness driver gives the loop.

    ``context`` identifies the run (harness, tasks, model) and is stored in the session
    file; ``check`` verifies, before anything runs, that the harness has every
    document of the map (and the metric to score it); ``task_sizes`` gives the number
    of documents of each task; ``run`` runs one round and returns each item's score.
    """

    context: dict[str, Any]

    def check(self, documents: DocumentMap) -> None:
        """Raise :class:`HarnessError` naming what the harness lacks."""
        ...

    def task_sizes(self) -> dict[str, int]:
        """Number of documents of each task."""
        ...

    def run(self, requests: Mapping[str, list[tuple[str, str]]]) -> dict[str, float]:
        """Run ``{task: [(item, doc_id), ...]}``; return ``{item: score}``."""
        ...


@dataclass(frozen=True)
class Round:
    """One harness call: which items it asked and how long it took."""

    index: int
    items: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class LiveRun:
    """The outcome of a live evaluation.

    Attributes
    ----------
    result : SessionResult
        Ability, expected full-benchmark accuracy and trajectory.
    rounds : tuple of Round
        The harness calls of this run (not those of an earlier, resumed run).
    resumed_items : int
        Answers taken from the session file instead of the harness.
    task_documents : dict
        Documents of each task the bank uses: what a full run would cost.
    session_path : Path or None
        Where the session is saved.
    """

    result: SessionResult
    rounds: tuple[Round, ...]
    resumed_items: int
    task_documents: dict[str, int]
    session_path: Path | None

    @property
    def documents_run(self) -> int:
        """Documents this run asked the harness for."""
        return sum(len(r.items) for r in self.rounds)

    @property
    def full_task_documents(self) -> int:
        """Documents a full run of the bank's tasks would ask for."""
        return sum(self.task_documents.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the session result plus the harness cost)."""
        return {
            **self.result.to_dict(),
            "documents_run": self.documents_run,
            "documents_resumed": self.resumed_items,
            "full_task_documents": self.full_task_documents,
            "rounds": len(self.rounds),
            "harness_seconds": round(sum(r.seconds for r in self.rounds), 3),
        }

    def __str__(self) -> str:
        th = self.result.theta
        return (
            f"{self.result.subject or 'model'}: ability {th.mean:.3f} +- {th.sd:.3f} "
            f"[{th.hdi_low:.3f}, {th.hdi_high:.3f}], expected full-benchmark accuracy "
            f"{self.result.accuracy_mean:.3f} [{self.result.accuracy_low:.3f}, "
            f"{self.result.accuracy_high:.3f}]; {self.result.n_items} questions "
            f"({self.documents_run} run now, {self.resumed_items} from the session file) "
            f"of {self.full_task_documents:,} documents; stopped: {self.result.stop_reason}"
        )


def session_config(
    config: SessionConfig | None, round_size: int | None, options: dict[str, Any]
) -> SessionConfig:
    """The options of a live run: ``config``, or ``method=`` and ``**options``.

    Parameters
    ----------
    config : SessionConfig, optional
        The session's options, given whole.
    round_size : int, optional
        Items per harness call; replaces ``config.round_size`` when given; without
        either, :data:`DEFAULT_ROUND_SIZE`.
    options : dict
        ``method`` and :class:`SessionConfig` fields (consumed); only without ``config``.

    Raises
    ------
    OptionError
        An option out of its range (``round_size`` included).
    TypeError
        Both ``config`` and keyword options.
    """
    if config is None:
        k = DEFAULT_ROUND_SIZE if round_size is None else round_size
        return SessionConfig.for_method(options.pop("method", "bayes"), round_size=k, **options)
    if options:
        raise TypeError(f"give session options in config or as keywords, not both: {options}")
    if round_size is not None and round_size != config.round_size:
        return dataclasses.replace(config, round_size=round_size)
    return config


def _resume(path: Path, bank, runner: Runner, config: SessionConfig, subject: str) -> Session:
    session = Session.load(path, bank)
    theirs, ours = session.context, runner.context
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise DataError(
                f"{path}: the session was run with {key} {theirs.get(key)!r}, not "
                f"{ours.get(key)!r}; use another --session file to start afresh"
            )
    if session.config.to_dict() != config.to_dict():
        raise DataError(
            f"{path}: the session was started with other options ({session.config.to_dict()}); "
            "rerun with the same options, or use another --session file"
        )
    if subject and session.subject != subject:
        raise DataError(f"{path}: the session is of {session.subject!r}, not {subject!r}")
    return session


def run_rounds(
    bank,
    runner: Runner,
    *,
    config: SessionConfig | None = None,
    subject: str = "",
    round_size: int | None = None,
    session_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> LiveRun:
    """Evaluate a live model adaptively, ``round_size`` documents per harness call.

    Parameters
    ----------
    bank : ItemBank
        The bank; each item must map to a harness document
        (:func:`~fluid_bayes.harness.documents.bank_documents`).
    runner : Runner
        The harness driver.
    config : SessionConfig, optional
        Session options; else built from ``method=`` and ``**options``.
    subject : str
        Label of the model in the result.
    round_size : int, optional
        Items per harness call (>= 1); given, it replaces ``config.round_size`` (the
        session's round size, which a resumed session must share); else, without
        ``config``, :data:`DEFAULT_ROUND_SIZE`.
    session_path : str or Path, optional
        Session file, saved after every round; an existing one is resumed.
    progress : callable, optional
        Receives one line per round.

    Returns
    -------
    LiveRun

    Raises
    ------
    HarnessError, DataError
        Before anything runs: an item without a document, a document or task the
        harness lacks, a session file of another bank, harness or model.
    HarnessRunError
        The harness failed in a round (the answers before it are in the session file).
    """
    config = session_config(config, round_size, options)
    documents = bank_documents(bank)
    runner.check(documents)
    sizes = runner.task_sizes()
    path = None if session_path is None else Path(session_path)
    if path is not None and path.exists():
        session = _resume(path, bank, runner, config, subject)
    else:
        session = Session(bank, config, subject=subject, context=runner.context)
        if path is not None:
            session.save(path)  # the folder is writable, before any model runs
    resumed = session.n_items
    say = progress or (lambda line: None)
    if resumed:
        say(f"resumed {path}: {resumed} answers kept, none run again")
    rounds: list[Round] = []
    while not session.done:
        items = tuple(session.next_items())
        if not items:
            break
        requests = documents.lookup(items)
        t0 = time.perf_counter()
        try:
            scores = runner.run(requests)
        except FluidBayesError:
            raise
        except Exception as exc:  # the harness's or the model's failure, not ours
            where = f"; {session.n_items} answers are saved in {path}" if path else ""
            raise HarnessRunError(
                f"the harness failed in round {len(rounds) + 1} "
                f"({type(exc).__name__}: {exc}){where}"
            ) from exc
        seconds = time.perf_counter() - t0
        missing = [i for i in items if i not in scores]
        if missing:
            task, doc = next((t, d) for t, pairs in requests.items() for i, d in pairs
                             if i == missing[0])  # fmt: skip
            raise HarnessRunError(
                f"the harness returned no score for item {missing[0]!r} (task {task}, "
                f"document {doc}) and {len(missing) - 1} other(s)"
            )
        for item in items:
            session.record(item, scores[item])
        if path is not None:
            session.save(path)
        rounds.append(Round(len(rounds) + 1, items, seconds))
        est = session.estimate()
        say(
            f"round {len(rounds)}: {len(items)} documents in {seconds:.2f} s; "
            f"{session.n_items} answered; ability {est.mean:.3f} +- {est.sd:.3f}"
        )
    return LiveRun(
        result=session.result(),
        rounds=tuple(rounds),
        resumed_items=resumed,
        task_documents={t: sizes[t] for t in documents.task_names if t in sizes},
        session_path=path,
    )
