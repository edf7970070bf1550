"""Adaptive evaluation sessions: ask, record, stop, report; save and resume as JSON.

>>> session = Session(bank, subject="my-checkpoint")          # doctest: +SKIP
>>> while (item := session.next_item()) is not None:           # doctest: +SKIP
...     session.record(item, run_my_model(item))
>>> print(session.result())                                    # doctest: +SKIP

Methods (:class:`SessionConfig`, ``method=``; both defined in
:mod:`fluid_bayes.adaptive.options`) are presets of an estimator
(:mod:`fluid_bayes.adaptive.ability`) and a selection rule (:mod:`fluid_bayes.adaptive.selection`):

========== ========= =============
method     estimator selection
========== ========= =============
``bayes``  bayes     expected-fi
``paper``  map       mfi
``eap``    eap       mfi
``random`` bayes     random
========== ========= =============

Random choices (``random``, randomesque) draw from a generator seeded by
``(seed, crc32(subject), step)``, so a resumed session and a replay make the same
choices as an uninterrupted session.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
    weighted_hdi,
)
from fluid_bayes.adaptive.options import METHODS, SessionConfig
from fluid_bayes.adaptive.results import SessionResult, Step, Trajectory
from fluid_bayes.adaptive.selection import (
    BankArrays,
    criterion,
    expected_fi_fast,
    mfi_fast,
    pick,
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

SESSION_FORMAT = "fluid-bayes-session"
#: 2: each record also stores the estimate after it (checked on load); 1 is still read
SESSION_VERSION = 2
_BODY_KEYS = ("format", "version", "bank", "subject", "config", "records")
_RECORD_KEYS = ("item", "answer", "y", "theta_mean", "theta_sd")


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
        method: str = "bayes",
        **options: Any,
    ) -> None:
        self.bank = bank
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
        if cfg.estimator == "map":
            self._state: MapState | GridState = MapState(
                prior_mean=cfg.prior_mean, prior_sd=cfg.prior_sd, start=self.start_ability
            )
        else:
            self._item_a, self._item_b = self.arrays.item_params(cfg.estimator)
            log_prior = normal_log_prior(self.arrays.nodes, cfg.prior_mean, cfg.prior_sd)
            self._state = GridState(
                self.arrays.nodes, log_prior, self._item_a.shape[0], cfg.integration
            )
        self._steps: list[Step] = []
        self._raw: list[Any] = []
        self._pending: int | None = None
        self._reason = self.stop_rule.reason(0, np.inf, int((~self._unavailable).sum()))

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

    def _point(self) -> float:
        if self.n_items == 0:
            return self.start_ability
        return self.estimate().mean

    # ------------------------------------------------------------- protocol
    def next_item(self) -> str | None:
        """The item to ask next, or ``None`` when the session has stopped.

        Calling it again before :meth:`record` returns the same item.
        """
        if self.done:
            return None
        if self._pending is None:
            self._pending = self._choose()
        return self.arrays.items[self._pending]

    def _choose(self) -> int:
        cfg = self.config
        theta = self._point()
        if cfg.select == "mfi" and cfg.randomesque == 1:
            return mfi_fast(self.arrays, theta, self._unavailable)
        if cfg.select == "expected-fi" and cfg.randomesque == 1:
            return expected_fi_fast(self.arrays, theta, self._unavailable)
        weights = None
        if cfg.select == "mpwi":
            weights = self._grid_weights()[None, :]
        scores = criterion(cfg.select, self.arrays, theta=np.array([theta]), weights=weights)
        rng = None
        if cfg.select == "random" or cfg.randomesque > 1:
            rng = session_rng(cfg.seed, self.subject, self.n_items)
        j = pick(
            cfg.select, self.arrays, scores, self._unavailable[None, :],
            theta=np.array([theta]), rngs=None if rng is None else [rng],
            randomesque=cfg.randomesque,
        )[0]  # fmt: skip
        return int(j)

    def _grid_weights(self) -> np.ndarray:
        if isinstance(self._state, GridState):
            return self._state.marginal()
        est = self.estimate()
        return np.exp(normal_log_prior(self.arrays.nodes, est.mean, est.sd))

    def record(self, item_id: str, answer: Any) -> None:
        """Record the subject's answer to ``item_id`` (0/1, or a score in [0, 1]).

        Any bank item not yet asked may be recorded, not only the suggested one.

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
        arr = self.arrays
        if isinstance(self._state, MapState):
            self._state.update(arr.a_point[j], arr.b_point[j], float(y))
        else:
            self._state.update(self._item_a[:, j], self._item_b[:, j], float(y))
        self._unavailable[j] = True
        self._pending = None
        est = self.estimate()
        self._steps.append(Step(item_id, y, est.mean, est.sd))
        self._raw.append(answer if isinstance(answer, (int, float)) else float(answer))
        self._reason = self.stop_rule.reason(self.n_items, est.sd, int((~self._unavailable).sum()))
        if self.autosave is not None:
            self.save(self.autosave)

    # --------------------------------------------------------------- result
    def result(self) -> SessionResult:
        """The ability and expected-accuracy summary with the trajectory."""
        est = self.estimate()
        arr = self.arrays
        if self.config.estimator == "bayes":
            w = self._state.joint()
            acc = arr.accuracy_table
            mean = float(np.sum(w * acc))
            low, high = weighted_hdi(acc, w)
        elif self.config.estimator == "eap":
            w = self._state.marginal()
            acc = arr.point_accuracy(arr.nodes)
            mean = float(w @ acc)
            low, high = weighted_hdi(acc, w)
        else:
            mean, low, high = (float(v) for v in arr.point_accuracy(
                np.array([est.mean, est.hdi_low, est.hdi_high])))  # fmt: skip
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
        }
        return {**body, "checksum": _checksum(body)}

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
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a readable session file ({exc})") from None
        if not isinstance(d, dict) or d.get("format") != SESSION_FORMAT:
            raise DataError(f"{path}: not a fluid-bayes session file")
        if d.get("version") not in (1, SESSION_VERSION):
            raise DataError(f"{path}: session format version {d.get('version')!r} is not "
                            f"{SESSION_VERSION}")  # fmt: skip
        body = {k: v for k, v in d.items() if k != "checksum"}
        if d.get("checksum") != _checksum(body):
            raise DataError(f"{path}: checksum mismatch: the session file was edited or "
                            "corrupted after it was saved")  # fmt: skip
        _check_structure(d, path)
        if d["bank"] != bank.config_hash:
            raise DataError(
                f"{path}: the session was run against bank {d['bank']}, not {bank.config_hash}"
            )
        try:
            config = SessionConfig(**{**d["config"], "exclude": tuple(d["config"]["exclude"])})
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: invalid session options ({exc})") from None
        try:
            session = cls(bank, config, subject=d["subject"], arrays=arrays)
        except (DataError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from None
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
        return session


def _check_structure(d: dict[str, Any], path: Path) -> None:
    """Every key and type of a session file's body (before anything is built from it).

    Raises
    ------
    DataError
        Naming the missing, unknown or mistyped key (and record).
    """
    version = d["version"]

    def keys(obj: Any, expected: tuple[str, ...], where: str) -> None:
        if not isinstance(obj, dict):
            raise DataError(f"{path}: {where} is not a JSON object")
        missing = [k for k in expected if k not in obj]
        extra = [k for k in obj if k not in expected]
        if missing or extra:
            raise DataError(f"{path}: {where}: " + "; ".join(
                ([f"missing key(s) {missing}"] if missing else [])
                + ([f"unknown key(s) {extra}"] if extra else [])))  # fmt: skip

    keys(d, (*_BODY_KEYS, "checksum"), "the session")
    for key in ("bank", "subject"):
        if not isinstance(d[key], str):
            raise DataError(f"{path}: {key} must be a string, got {d[key]!r}")
    names = tuple(f.name for f in dataclasses.fields(SessionConfig))
    keys(d["config"], names, "config")
    exclude = d["config"]["exclude"]
    if not isinstance(exclude, list) or not all(isinstance(i, str) for i in exclude):
        raise DataError(f"{path}: config: exclude must be a list of item ids")
    if not isinstance(d["records"], list):
        raise DataError(f"{path}: records must be a list")
    expected = _RECORD_KEYS if version >= 2 else _RECORD_KEYS[:3]
    for k, rec in enumerate(d["records"]):
        where = f"record {k + 1}"
        keys(rec, expected, where)
        if not isinstance(rec["item"], str):
            raise DataError(f"{path}: {where}: item must be a string, got {rec['item']!r}")
        if rec["y"] not in (0, 1) or isinstance(rec["y"], bool):
            raise DataError(f"{path}: {where}: y must be 0 or 1, got {rec['y']!r}")
        numbers = [rec["answer"]] + [rec[x] for x in expected[3:]]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
            raise DataError(f"{path}: {where}: answer and estimates must be numbers")


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


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
    while (item := session.next_item()) is not None:
        session.record(item, responder(item))
    return session.result()
