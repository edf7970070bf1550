"""Adaptive evaluation sessions: ask, record, stop, report; save and resume as JSON.

>>> session = Session(bank, subject="my-checkpoint")          # doctest: +SKIP
>>> while (item := session.next_item()) is not None:           # doctest: +SKIP
...     session.record(item, run_my_model(item))
>>> print(session.result())                                    # doctest: +SKIP

Methods (``method=``: ``bayes``, ``paper``, ``eap``, ``random``) are presets of an
estimator (:mod:`fluid_bayes.adaptive.estimators`) and a selection rule
(:mod:`fluid_bayes.adaptive.selection`); :class:`SessionConfig` and the table of presets
are in :mod:`fluid_bayes.adaptive.options`. ``next_items(k)`` proposes rounds of ``k``
items (:mod:`fluid_bayes.adaptive.rounds`).

Random choices (``random``, randomesque) draw from a generator seeded by
``(seed, crc32(subject), step)``, so a resumed session and a replay make the same
choices as an uninterrupted session.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fluid_bayes.adaptive.ability import (
    AbilitySummary,
    GridState,
    MapState,
    normal_log_prior,
)
from fluid_bayes.adaptive.estimators import ESTIMATOR_RULES
from fluid_bayes.adaptive.options import METHODS, SessionConfig
from fluid_bayes.adaptive.results import SessionResult, Step, Trajectory
from fluid_bayes.adaptive.rounds import plan_round
from fluid_bayes.adaptive.selection import SELECTION_RULES, BankArrays
from fluid_bayes.adaptive.session_file import (
    SESSION_FORMAT,
    SESSION_VERSION,
    checksum,
    read_session_file,
)
from fluid_bayes.adaptive.stopping import StopRule, auto_sd_threshold
from fluid_bayes.exceptions import DataError

__all__ = [
    "METHODS",
    "Session",
    "SessionConfig",
    "SessionResult",
    "Step",
    "Trajectory",
    "run_session",
]


def session_rng(seed: int, subject: str, step: int) -> np.random.Generator:
    """Generator of one selection step (independent of interruptions)."""
    return np.random.default_rng([int(seed), zlib.crc32(subject.encode()), int(step)])


def binarize(answer: Any, threshold: float | None, *, item: str) -> int:
    """0/1 from an answer: 0/1 (or bool) as is, a score in [0, 1] by ``threshold``."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise DataError(f"answer {answer!r} to item {item!r} is not a number") from None
    if not np.isfinite(value) or value < 0.0 or value > 1.0:
        raise DataError(f"answer {answer!r} to item {item!r} is not 0/1 or a score in [0, 1]")
    if value in (0.0, 1.0):
        return int(value)
    if threshold is None:
        raise DataError(
            f"answer {answer!r} to item {item!r} is a score, not 0/1, and neither the "
            "session nor the bank has a binarization threshold; pass threshold="
        )
    return int(value >= threshold)


class Session:
    """An adaptive evaluation of one subject against an item bank.

    Parameters
    ----------
    bank : ItemBank
        The calibrated bank (kept as is; the session holds its own state).
    config : SessionConfig, optional
        Options; default ``SessionConfig.for_method(method, **options)``.
    subject : str
        Label of the evaluated model (also keys the random choices).
    arrays : BankArrays, optional
        Precomputed bank arrays, to share tables between many sessions.
    autosave : str or Path, optional
        Save the session to this JSON file after every recorded answer.
    method : str
        Preset used when ``config`` is not given.
    **options
        :class:`SessionConfig` fields.
    """

    def __init__(
        self,
        bank,
        config: SessionConfig | None = None,
        *,
        subject: str = "",
        arrays: BankArrays | None = None,
        autosave: str | Path | None = None,
        context: dict[str, Any] | None = None,
        method: str = "bayes",
        **options: Any,
    ) -> None:
        self.bank = bank
        #: Free-form JSON description of where the answers come from (e.g. the harness,
        #: its tasks and the model of a live run); saved with the session and checked by
        #: whoever resumes it.
        self.context: dict[str, Any] = dict(context or {})
        self.config = config or SessionConfig.for_method(method, **options)
        self.subject = str(subject)
        self.arrays = arrays or BankArrays.from_bank(bank)
        self.autosave = None if autosave is None else Path(autosave)
        cfg = self.config
        self._index = {item: k for k, item in enumerate(self.arrays.items)}
        unknown = [i for i in cfg.exclude if i not in self._index]
        if unknown:
            raise DataError(f"excluded item id(s) not in the bank: {unknown[:5]}")
        subj = bank.subjects
        calib = subj["theta_mean"].to_numpy() if "theta_mean" in subj else np.array([])
        sd = auto_sd_threshold(calib) if cfg.stop_sd == "auto" else cfg.stop_sd
        self.stop_rule = StopRule(cfg.max_items, cfg.min_items, sd)
        default_start = float(np.mean(calib)) if calib.size else cfg.prior_mean
        self.start_ability = default_start if cfg.start_ability is None else cfg.start_ability
        self.threshold = cfg.threshold
        if self.threshold is None:
            self.threshold = bank.meta.data_report.get("threshold")
        self._unavailable = np.zeros(self.arrays.n_items, dtype=bool)
        for item in cfg.exclude:
            self._unavailable[self._index[item]] = True
        self.estimator = ESTIMATOR_RULES[cfg.estimator]
        self._item_a, self._item_b = self.estimator.item_params(self.arrays)
        self._state: MapState | GridState = self.estimator.new_state(
            self.arrays, prior_mean=cfg.prior_mean, prior_sd=cfg.prior_sd,
            start=self.start_ability, integration=cfg.integration,
        )  # fmt: skip
        self._steps: list[Step] = []
        self._raw: list[Any] = []
        self._pending: list[int] = []  # the round in progress: proposed, not answered
        self._reason: str | None = None
        self._apply_stop_rule()

    # ---------------------------------------------------------------- state
    @property
    def n_items(self) -> int:
        """Answers recorded so far."""
        return len(self._steps)

    @property
    def done(self) -> bool:
        """True once a stopping rule fired."""
        return self._reason is not None

    @property
    def stop_reason(self) -> str | None:
        """Why the session stopped (``None`` while it runs)."""
        return self._reason

    def estimate(self) -> AbilitySummary:
        """Current ability estimate (the prior before any answer)."""
        return self._state.summary()

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The current ability posterior on the grid.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Nodes (ability scale) and normalized weights, shape ``(G,)`` each; for the
            ``map`` estimator the normal (Laplace) approximation at the MAP.
        """
        return self.arrays.nodes, self._grid_weights()

    @property
    def available(self) -> np.ndarray:
        """Boolean mask over ``arrays.items``: items that may still be asked (a copy)."""
        return ~self._unavailable

    def withhold(self, item_ids) -> None:
        """Items this subject cannot be asked (say, a replay's items without an answer).

        They are never proposed, like ``config.exclude``, and the session is exhausted
        when only they are left; a round in progress that holds one is dropped.

        Raises
        ------
        DataError
            An id not in the bank.
        """
        js = []
        for item in item_ids:
            if item not in self._index:
                raise DataError(f"item {item!r} is not in the bank")
            js.append(self._index[item])
        self._unavailable[js] = True
        if set(js) & set(self._pending):
            self._pending = []
        if not self._pending and not self.done:
            self._apply_stop_rule()

    def _apply_stop_rule(self) -> None:
        """Ask the stop rule now (no SD before the first answer)."""
        sd = self.estimate().sd if self.n_items else np.inf
        self._reason = self.stop_rule.reason(self.n_items, sd, int((~self._unavailable).sum()))

    def _point(self) -> float:
        if self.n_items == 0:
            return self.start_ability
        return self.estimate().mean

    # ------------------------------------------------------------- protocol
    def next_item(self) -> str | None:
        """The item to ask next, or ``None`` when the session has stopped.

        Calling it again before :meth:`record` returns the same item (while a round of
        :meth:`next_items` is in progress, its first unanswered item).
        """
        items = self.next_items(1)
        return items[0] if items else None

    def next_items(self, k: int | None = None) -> list[str]:
        """The next round: up to ``k`` items to ask at once (empty once stopped).

        The items are chosen together by ``config.round_rule``
        (:mod:`fluid_bayes.adaptive.rounds`), never more than the budget left
        (``max_items`` less the answers recorded) nor more than are left to ask. Their
        answers may be recorded in any order. The stopping rule is applied when the
        round is answered, not within it (every answer of a round is taken: an SD stop
        may come up to ``k - 1`` items after the SD target was met, never past
        ``max_items``). Until then the round is pending: calling again returns its
        unanswered items (the first ``k`` of them), and :meth:`save` stores them.

        Parameters
        ----------
        k : int, optional
            Round size (>= 1; default ``config.round_size``). ``next_items(1)`` is
            ``[next_item()]``.

        Returns
        -------
        list of str
            Distinct item ids, in the order chosen.
        """
        k = self.config.round_size if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if self.done:
            return []
        if not self._pending:
            random = SELECTION_RULES[self.config.select].random  # no ability to choose at
            rule = "top" if random else self.config.round_rule
            self._pending = plan_round(
                rule, min(int(k), self.stop_rule.max_items - self.n_items),
                choose=self._choose, believe=self._believe, state=self._state,
                theta=self._point(), sd=self.estimate().sd, unavailable=self._unavailable,
                step=self.n_items,
            )  # fmt: skip
        return [self.arrays.items[j] for j in self._pending[:k]]

    def _choose(self, state, theta: float | None, unavailable: np.ndarray, step: int) -> int:
        """Bank index of the rule's item for ``state`` at ``theta`` (None: its mean); -1: none."""
        cfg = self.config
        rule = SELECTION_RULES[cfg.select]
        theta = state.summary().mean if theta is None else theta
        weights = self._grid_weights(state) if rule.uses_posterior else None
        rng = session_rng(cfg.seed, self.subject, step) if rule.needs_rng(cfg.randomesque) else None
        return rule.choose(self.arrays, theta, unavailable, weights=weights, rng=rng,
                           randomesque=cfg.randomesque,
                           state=state if rule.uses_state else None)  # fmt: skip

    def _params(self, j: int) -> tuple:
        """Item ``j``'s parameters as the state takes them: draws ``(S,)``, or the point."""
        if not self.estimator.grid:
            return self.arrays.a_point[j], self.arrays.b_point[j]
        return self._item_a[:, j], self._item_b[:, j]

    def _believe(self, state, j: int, fractional: bool):
        """A copy of ``state`` updated with the expected answer to item ``j`` (a fantasy)."""
        a, b = self._params(j)
        p = state.predictive(a, b)
        new = state.copy()
        new.update(a, b, p if fractional else float(p >= 0.5))
        return new

    def _grid_weights(self, state=None) -> np.ndarray:
        state = self._state if state is None else state
        if isinstance(state, GridState):
            return state.marginal()
        est = state.summary()
        return np.exp(normal_log_prior(self.arrays.nodes, est.mean, est.sd))

    def record(self, item_id: str, answer: Any) -> None:
        """Record the subject's answer to ``item_id`` (0/1, or a score in [0, 1]).

        Any bank item not yet asked may be recorded, not only the suggested ones; one
        outside the round in progress (:meth:`next_items`) ends that round (its other
        items were chosen without this answer).

        Raises
        ------
        DataError
            Unknown item, item already answered or excluded, answer not 0/1 (or a
            score without a threshold), or the session has stopped.
        """
        item_id = str(item_id)
        if item_id not in self._index:
            raise DataError(f"item {item_id!r} is not in the bank {self.bank.config_hash}")
        j = self._index[item_id]
        if self._unavailable[j]:
            if item_id in self.config.exclude:
                raise DataError(f"item {item_id!r} is excluded from this session")
            raise DataError(f"item {item_id!r} was already answered in this session")
        if self.done:
            raise DataError(f"the session has stopped ({self._reason}); no more answers")
        y = binarize(answer, self.threshold, item=item_id)
        self._state.update(*self._params(j), float(y))
        self._unavailable[j] = True
        if j in self._pending:
            self._pending.remove(j)
        else:
            self._pending = []
        est = self.estimate()
        self._steps.append(Step(item_id, y, est.mean, est.sd))
        plain = isinstance(answer, (int, float)) and not isinstance(answer, bool)
        self._raw.append(answer if plain else float(answer))  # JSON keeps the number
        if not self._pending:  # stop between rounds
            self._apply_stop_rule()
        if self.autosave is not None:
            self.save(self.autosave)

    # --------------------------------------------------------------- result
    def result(self) -> SessionResult:
        """The ability and expected-accuracy summary with the trajectory."""
        est = self.estimate()
        mean, low, high = self.estimator.expected_accuracy(self._state, self.arrays)
        return SessionResult(
            subject=self.subject,
            bank=self.bank.config_hash,
            estimator=self.config.estimator,
            select=self.config.select,
            theta=est,
            accuracy_mean=mean,
            accuracy_low=low,
            accuracy_high=high,
            stop_reason=self._reason or "not stopped",
            steps=tuple(self._steps),
        )

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """The saved form: bank identity, options and every recorded answer."""
        body = {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "bank": self.bank.config_hash,
            "subject": self.subject,
            "config": self.config.to_dict(),
            "context": self.context,
            "records": [
                {
                    "item": s.item,
                    "answer": raw,
                    "y": s.answer,
                    "theta_mean": s.theta_mean,
                    "theta_sd": s.theta_sd,
                }
                for s, raw in zip(self._steps, self._raw, strict=True)
            ],
            "pending": [self.arrays.items[j] for j in self._pending],
        }
        return {**body, "checksum": checksum(body)}

    def save(self, path: str | Path) -> Path:
        """Write the session as JSON atomically (write a temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, bank, *, arrays: BankArrays | None = None) -> Session:
        """Resume a saved session against ``bank`` (the same bank it was created with).

        The file is trusted only as far as it can be checked: its structure (every key
        and type), its checksum, its bank, and its records, which are replayed against
        the bank: each stored 0/1 must be what the answer gives, and each stored
        estimate what the replay gives. An edit that leaves a consistent session (with
        the checksum recomputed) cannot be told from a real one; any other edit is
        refused with the record and key that differ.

        Raises
        ------
        DataError
            The file is not a session file, was edited (checksum, structure or a
            replayed record differs), belongs to another bank, or holds an invalid
            record.
        """
        path = Path(path)
        d = read_session_file(path)
        if d["bank"] != bank.config_hash:
            raise DataError(
                f"{path}: the session was run against bank {d['bank']}, not {bank.config_hash}"
            )
        try:
            config = SessionConfig(**{**d["config"], "exclude": tuple(d["config"]["exclude"])})
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: invalid session options ({exc})") from None
        try:
            session = cls(
                bank, config, subject=d["subject"], arrays=arrays, context=d.get("context", {})
            )
        except (DataError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from None
        pending = d.get("pending", [])
        # the recorded items and the pending ones as one round: the stop rule waits
        # for its end, as it did for the rounds of the saved session
        index = session._index
        session._pending = [index[r["item"]] for r in d["records"] if r["item"] in index]
        session._pending += [index.get(i, -1) for i in pending]
        for k, rec in enumerate(d["records"]):
            where = f"{path}: record {k + 1} (item {rec['item']!r})"
            try:
                session.record(rec["item"], rec["answer"])
            except DataError as exc:
                raise DataError(f"{path}: record {k + 1}: {exc}") from None
            step = session._steps[-1]
            if step.answer != rec["y"]:
                raise DataError(f"{where}: stored y = {rec['y']!r}, but answer "
                                f"{rec['answer']!r} gives {step.answer}: the file was "
                                "edited")  # fmt: skip
            for key in ("theta_mean", "theta_sd") if "theta_mean" in rec else ():
                replayed, stored = getattr(step, key), rec[key]
                if not abs(replayed - stored) <= 1e-9 * max(1.0, abs(replayed)):
                    raise DataError(f"{where}: stored {key} = {stored!r}, but replaying the "
                                    f"answers gives {replayed!r}: the file was edited")  # fmt: skip
        js = session._pending  # now the pending items alone
        left = session.stop_rule.max_items - session.n_items
        valid = all(j >= 0 and not session._unavailable[j] for j in js)
        if not valid or len(set(js)) < len(js) or len(js) > left:
            raise DataError(f"{path}: pending items {pending} are not distinct items of the "
                            "bank left to ask within max_items")  # fmt: skip
        return session


def run_session(
    bank,
    responder: Callable[[str], Any],
    *,
    subject: str = "",
    arrays: BankArrays | None = None,
    **options: Any,
) -> SessionResult:
    """Run a whole session against a callable ``item_id -> 0/1 or score``.

    Parameters
    ----------
    bank : ItemBank
        The bank.
    responder : callable
        Answers an item id (e.g. runs the model on it and scores it).
    subject : str
        Label of the evaluated model.
    arrays : BankArrays, optional
        Shared precomputed bank arrays.
    **options
        ``method=`` and :class:`SessionConfig` fields.

    Returns
    -------
    SessionResult
    """
    session = Session(bank, subject=subject, arrays=arrays, **options)
    while items := session.next_items():  # rounds of config.round_size items
        for item in items:
            session.record(item, responder(item))
    return session.result()
