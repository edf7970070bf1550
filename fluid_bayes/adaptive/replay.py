"""Replay adaptive evaluation over precomputed answers of many subjects at once.

The paper's protocol offline: every subject (model, checkpoint) already answered the
whole benchmark; each is evaluated as if adaptively, the session asking items and
reading the stored answers. Subjects are processed together:

- ``paper`` (``map`` + ``mfi``): a compiled kernel runs all subjects, in parallel
  threads, each step a warm-started safeguarded Newton MAP and a pruned exact argmax
  (:func:`fluid_bayes.adaptive.paper_kernels.replay_paper`);
- everything else (``bayes``, ``eap``, other rules, rounds of ``round_size`` > 1
  items): one :class:`~fluid_bayes.adaptive.session.Session` per subject reading its
  stored answers, a round at a time (:meth:`~fluid_bayes.adaptive.session.Session.next_items`,
  answers recorded in the order proposed); each step is vectorized over item draws x
  ability nodes (a compiled kernel on the posterior's window of the grid) and the
  bank's tables are shared by all subjects.

Both paths give the same items and estimates as :class:`~fluid_bayes.adaptive.session.Session`.

Missing answers: an item in the bank that a subject did not answer is unavailable to
that subject; when the rule wants it, the subject gets the next best item it answered.
Items of the data that are not in the bank are ignored. Both are reported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fluid_bayes.adaptive import paper_kernels
from fluid_bayes.adaptive.ability import (
    THETA_RANGE,
    AbilitySummary,
)
from fluid_bayes.adaptive.estimators import ESTIMATOR_RULES
from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.adaptive.session import Session, SessionConfig, SessionResult, Trajectory
from fluid_bayes.adaptive.workers import Workers, check_workers, using_workers
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.exceptions import DataError

__all__ = [
    "COMPILED_REPLAYS",
    "ReplayReport",
    "ReplayResult",
    "align_to_bank",
    "observed_accuracy",
    "replay",
    "score_all",
]


@dataclass(frozen=True)
class ReplayReport:
    """How the data met the bank.

    Attributes
    ----------
    n_subjects : int
        Subjects replayed.
    extra_items : tuple of str
        Items in the data but not in the bank (ignored).
    missing : dict
        Subject -> number of bank items it has no answer for (only subjects with some).
    """

    n_subjects: int
    extra_items: tuple[str, ...]
    missing: dict[str, int]

    def __str__(self) -> str:
        lines = [f"replayed {self.n_subjects} subject(s)"]
        if self.extra_items:
            show = ", ".join(self.extra_items[:5])
            more = f" and {len(self.extra_items) - 5} more" if len(self.extra_items) > 5 else ""
            lines.append(f"{len(self.extra_items)} item(s) not in the bank ignored: {show}{more}")
        if self.missing:
            worst = sorted(self.missing.items(), key=lambda kv: -kv[1])[:5]
            lines.append(
                f"{len(self.missing)} subject(s) lack answers to some bank items (never "
                "asked those): " + ", ".join(f"{s} ({n})" for s, n in worst)
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ReplayResult:
    """Results of a replay: one :class:`SessionResult` per subject, and the report."""

    results: tuple[SessionResult, ...]
    report: ReplayReport
    observed_accuracy: dict[str, float]

    @property
    def trace(self) -> pd.DataFrame:
        """Tidy table: ``subject, step, item, answer, theta_mean, theta_sd`` (step from 1)."""
        rows = [
            (r.subject, k + 1, s.item, s.answer, s.theta_mean, s.theta_sd)
            for r in self.results
            for k, s in enumerate(r.steps)
        ]
        cols = ["subject", "step", "item", "answer", "theta_mean", "theta_sd"]
        return pd.DataFrame(rows, columns=cols)

    @property
    def summary(self) -> pd.DataFrame:
        """Per subject: items used, ability, expected and observed accuracy, stop reason."""
        rows = []
        for r in self.results:
            d = r.to_dict()
            del d["trajectory"], d["items"]
            d["observed_accuracy"] = self.observed_accuracy[r.subject]
            rows.append(d)
        return pd.DataFrame(rows).set_index("subject")


def align_to_bank(
    bank_items: tuple[str, ...], data: ResponseMatrix
) -> tuple[np.ndarray, ReplayReport]:
    """Return the answers of ``data`` in the bank's item order, and how the two met.

    Parameters
    ----------
    bank_items : tuple of str
        The bank's item ids, in its order.
    data : ResponseMatrix
        Answers; items are matched to the bank by id.

    Returns
    -------
    answers : numpy.ndarray
        Shape ``(n_subjects, len(bank_items))``: 1 right, 0 wrong, NaN where a subject
        has no answer to a bank item (or the data lacks the item).
    report : ReplayReport
        The data's items not in the bank and the subjects' counts of missing bank items.

    Raises
    ------
    DataError
        If no item of the data is in the bank.
    """
    col = {item: k for k, item in enumerate(data.items)}
    answers = np.full((data.n_subjects, len(bank_items)), np.nan)
    present = [(j, col[i]) for j, i in enumerate(bank_items) if i in col]
    if not present:
        raise DataError(f"{data.report.source}: no item of the data is in the bank")
    bj, dj = (np.array(x) for x in zip(*present, strict=True))
    answers[:, bj] = data.values[:, dj]
    bank_set = set(bank_items)
    extra = tuple(i for i in data.items if i not in bank_set)
    n_missing = np.isnan(answers).sum(axis=1)
    missing = {s: int(n) for s, n in zip(data.subjects, n_missing, strict=True) if n}
    return answers, ReplayReport(data.n_subjects, extra, missing)


def replay(
    bank,
    data: ResponseMatrix,
    *,
    config: SessionConfig | None = None,
    method: str = "bayes",
    subjects: list[str] | None = None,
    arrays: BankArrays | None = None,
    workers: int | str | Workers = 1,
    scheduler: str | None = None,
    progress: bool | Callable[[int, int], None] = False,
    **options,
) -> ReplayResult:
    """Replay adaptive sessions for every subject of ``data``.

    Parameters
    ----------
    bank : ItemBank
        The bank.
    data : ResponseMatrix
        Full answers (subjects x items); items are matched to the bank by id.
    config : SessionConfig, optional
        Session options (default: ``SessionConfig.for_method(method, **options)``).
    method : str
        Preset when ``config`` is not given.
    subjects : list of str, optional
        Replay only these subjects.
    arrays : BankArrays, optional
        Precomputed bank arrays.
    workers : int, "auto" or Workers
        Worker processes the sessions are spread over (1: here, serially; see
        :class:`~fluid_bayes.adaptive.workers.Workers`), or a pool shared between calls.
        The compiled replay of all subjects at once (``paper``) runs here, on this
        machine's cores, unless a ``scheduler`` is given. Results are the same, in the
        same order, whatever the workers.
    scheduler : str, optional
        Address of an existing Dask scheduler to send the sessions to.
    progress : bool or callable
        Print ``replay: done/total subjects`` to stderr after each batch of sessions, or
        call ``progress(done, total)``.

    Returns
    -------
    ReplayResult
    """
    if not isinstance(workers, Workers):
        check_workers(workers, scheduler)  # before any work
    config = config or SessionConfig.for_method(method, **options)
    if subjects is not None:
        data = data.select(subjects=subjects)
    arrays = arrays or BankArrays.from_bank(bank)
    answers, report = align_to_bank(arrays.items, data)
    probe = Session(bank, config, arrays=arrays)  # validates options, resolves defaults
    observed = dict(zip(data.subjects, observed_accuracy(answers).tolist(), strict=True))
    compiled = COMPILED_REPLAYS.get((config.estimator, config.select))
    compiled = compiled if config.randomesque == 1 and config.round_size == 1 else None
    if progress is True:
        progress = _print_progress
    with using_workers(workers, scheduler) as pool:
        if compiled is not None and not pool.external:  # one pass, this machine's cores
            results = compiled(probe, arrays, answers, data.subjects)
        else:
            shared = (bank, config, arrays, compiled)
            pieces = list(zip(answers, data.subjects, strict=True))
            results = pool.map(_replay_batch, shared, pieces, progress=progress or None)
    return ReplayResult(tuple(results), report, observed)


def _replay_batch(shared, pieces) -> list[SessionResult]:
    """Sessions of ``pieces`` (answers, subject), compiled all at once when possible."""
    bank, config, arrays, compiled = shared
    if compiled is not None:
        probe = Session(bank, config, arrays=arrays)
        rows = np.array([row for row, _ in pieces])
        return compiled(probe, arrays, rows, [s for _, s in pieces])
    return [_replay_one(bank, config, arrays, row, s) for row, s in pieces]


def _print_progress(done: int, total: int) -> None:
    print(f"replay: {done}/{total} subjects", file=sys.stderr, flush=True)


def _replay_one(bank, config, arrays, row, subject) -> SessionResult:
    session = Session(bank, config, subject=subject, arrays=arrays)
    session.withhold(np.asarray(arrays.items)[np.isnan(row)])  # no answer: never asked
    answers = dict(zip(arrays.items, row.tolist(), strict=True))
    while items := session.next_items():  # rounds of config.round_size items
        for item in items:
            session.record(item, answers[item])
    return session.result()


def _replay_paper(probe: Session, arrays: BankArrays, answers, subjects) -> list[SessionResult]:
    cfg, rule = probe.config, probe.stop_rule
    excluded = ~probe.available
    items, theta, se = paper_kernels.replay_paper(
        answers, arrays.a_point, arrays.b_point, arrays.order, arrays.mfi_ranking, excluded,
        np.full(len(subjects), probe.start_ability), *rule.kernel_args(),
        cfg.prior_mean, cfg.prior_sd**-2, *THETA_RANGE,
    )  # fmt: skip
    ids = arrays.items
    n_done = (items >= 0).sum(axis=1)
    n_avail = (~excluded[None, :] & ~np.isnan(answers)).sum(axis=1) - n_done
    ests = [
        AbilitySummary.normal(theta[k, n - 1], se[k, n - 1]) if n else probe.estimate()
        for k, n in enumerate(n_done.tolist())
    ]
    acc = arrays.point_accuracy(np.array([(e.mean, e.hdi_low, e.hdi_high) for e in ests]))
    out = []
    for k, subject in enumerate(subjects):
        n, est = int(n_done[k]), ests[k]
        js = items[k, :n]
        steps = Trajectory(ids, js, answers[k, js], theta[k, :n], se[k, :n])
        reason = rule.reason(n, est.sd, int(n_avail[k])) or "not stopped"
        out.append(SessionResult(subject, probe.bank.config_hash, "map", "mfi", est,
                                 *map(float, acc[k]), reason, steps))  # fmt: skip
    return out


#: compiled replays of all subjects at once, by (estimator, selection rule): the same
#: rules as the session's (the stop rule through the same compiled ``stop_code``), for
#: ``randomesque=1`` and rounds of one item; the rest replays session by session
COMPILED_REPLAYS = {("map", "mfi"): _replay_paper}


def score_all(
    bank,
    data: ResponseMatrix,
    *,
    estimator: str = "bayes",
    arrays: BankArrays | None = None,
    prior_mean: float = 0.0,
    prior_sd: float = 1.0,
) -> pd.DataFrame:
    """Ability of every subject from *all* its answers to bank items (no selection).

    The full-benchmark ability that adaptive estimates are compared with.

    Parameters
    ----------
    bank : ItemBank
        The bank.
    data : ResponseMatrix
        Answers; items are matched to the bank by id, missing answers skipped.
    estimator : {"bayes", "eap", "map"}
        As in :mod:`fluid_bayes.adaptive.ability`.
    arrays : BankArrays, optional
        Precomputed bank arrays.
    prior_mean, prior_sd : float
        Normal prior of ability.

    Returns
    -------
    pandas.DataFrame
        Index ``subject``; ``theta_mean, theta_sd, theta_hdi_low, theta_hdi_high,
        n_answered, observed_accuracy``.
    """
    arrays = arrays or BankArrays.from_bank(bank)
    answers, _ = align_to_bank(arrays.items, data)
    observed = observed_accuracy(answers)
    if estimator not in ESTIMATOR_RULES:
        names = ", ".join(ESTIMATOR_RULES)
        raise ValueError(f"unknown estimator {estimator!r}; choose from {names}")
    rule = ESTIMATOR_RULES[estimator]
    rows = []
    for k in range(data.n_subjects):
        m = ~np.isnan(answers[k])
        est = rule.score_answers(arrays, answers[k, m], m, prior_mean=prior_mean,
                                 prior_sd=prior_sd)  # fmt: skip
        rows.append({"subject": data.subjects[k], "theta_mean": est.mean, "theta_sd": est.sd,
                     "theta_hdi_low": est.hdi_low, "theta_hdi_high": est.hdi_high,
                     "n_answered": int(m.sum()),
                     "observed_accuracy": observed[k]})  # fmt: skip
    return pd.DataFrame(rows).set_index("subject")


def observed_accuracy(answers: np.ndarray) -> np.ndarray:
    """Return each subject's share correct over the bank items it answered.

    Parameters
    ----------
    answers : numpy.ndarray
        Shape ``(n_subjects, n_items)``, 1/0 with NaN for no answer
        (:func:`align_to_bank`).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_subjects,)``, accuracy in [0, 1]; NaN for a subject with no answer.
    """
    n = (~np.isnan(answers)).sum(axis=1)
    right = np.nansum(answers, axis=1)
    return np.where(n > 0, right / np.maximum(n, 1), np.nan)
