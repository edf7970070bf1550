"""What a session reports: its steps (:class:`Step`, :class:`Trajectory`) and result.

:class:`Trajectory` holds a replayed session's steps as arrays and reads as the tuple of
:class:`Step` that a live :class:`~fluid_bayes.adaptive.session.Session` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from fluid_bayes.adaptive.ability import AbilitySummary

__all__ = ["SessionResult", "Step", "Trajectory"]


class Step(NamedTuple):
    """One administered item and the estimate after it (ability scale)."""

    item: str
    answer: int
    theta_mean: float
    theta_sd: float


def _frozen(x, dtype) -> np.ndarray:
    """A read-only copy (results must not change with the arrays they came from)."""
    out = np.array(x, dtype=dtype)
    out.flags.writeable = False
    return out


class Trajectory(Sequence):
    """A session's steps held as arrays; reads as a tuple of :class:`Step`.

    Replays build one per subject from the kernel's output without creating a Python
    object per step; a :class:`Step` is made when one is read. It compares, hashes,
    concatenates and pickles as that tuple; ``dataclasses.asdict`` keeps it as it is
    (use ``SessionResult.to_dict`` or ``tuple(steps)`` for JSON).

    Parameters
    ----------
    ids : sequence of str
        Item ids of the bank.
    index : numpy.ndarray
        Bank indices of the administered items, in order.
    answers, theta_mean, theta_sd : numpy.ndarray
        Per step: the answer (0/1) and the estimate after it.
    """

    __slots__ = ("_ids", "_index", "_answers", "_mean", "_sd")

    def __init__(self, ids, index, answers, theta_mean, theta_sd) -> None:
        self._ids = ids
        self._index = _frozen(index, np.int64)
        self._answers = _frozen(answers, np.int64)
        self._mean = _frozen(theta_mean, np.float64)
        self._sd = _frozen(theta_sd, np.float64)

    def __len__(self) -> int:
        return self._index.size

    def __getitem__(self, k):
        if isinstance(k, slice):
            return tuple(self)[k]
        k = range(len(self))[k]  # negative indices; IndexError past the end
        return Step(self._ids[int(self._index[k])], int(self._answers[k]),
                    float(self._mean[k]), float(self._sd[k]))  # fmt: skip

    def __iter__(self):
        ids = self._ids
        return map(Step, [ids[j] for j in self._index.tolist()], self._answers.tolist(),
                   self._mean.tolist(), self._sd.tolist())  # fmt: skip

    def __eq__(self, other) -> bool:
        if isinstance(other, (tuple, Trajectory)):
            return len(self) == len(other) and tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other):
        return tuple(self) + tuple(other) if isinstance(other, (tuple, Trajectory)) else (
            NotImplemented)  # fmt: skip

    def __radd__(self, other):
        return tuple(other) + tuple(self) if isinstance(other, tuple) else NotImplemented

    def __reduce__(self):
        return tuple, (tuple(self),)  # pickles (and copies) as the plain tuple it reads as

    def __repr__(self) -> str:
        return repr(tuple(self))

    @property
    def items(self) -> tuple[str, ...]:
        """Administered item ids in order."""
        ids = self._ids
        return tuple(ids[j] for j in self._index.tolist())


@dataclass(frozen=True)
class SessionResult:
    """What an adaptive session measured.

    Attributes
    ----------
    subject : str
        Who was evaluated.
    bank : str
        Config hash of the bank.
    estimator, select : str
        Ability inference and selection rule.
    theta : AbilitySummary
        Ability (bank scale): mean, SD, 94% interval.
    accuracy_mean, accuracy_low, accuracy_high : float
        Expected accuracy over all bank items (0-1) with its 94% interval.
    stop_reason : str
        ``"sd"``, ``"max_items"``, ``"exhausted"`` or ``"not stopped"``.
    steps : sequence of Step
        Items in order, answers and the provisional estimates (a tuple, or a
        :class:`Trajectory` from a replay).
    """

    subject: str
    bank: str
    estimator: str
    select: str
    theta: AbilitySummary
    accuracy_mean: float
    accuracy_low: float
    accuracy_high: float
    stop_reason: str
    steps: Sequence[Step] = field(default=())

    @property
    def n_items(self) -> int:
        """Number of answers."""
        return len(self.steps)

    @property
    def items(self) -> tuple[str, ...]:
        """Administered item ids in order."""
        if isinstance(self.steps, Trajectory):
            return self.steps.items
        return tuple(s.item for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of ``fluid-bayes evaluate --json``."""
        return {
            "subject": self.subject,
            "bank": self.bank,
            "estimator": self.estimator,
            "select": self.select,
            "n_items": self.n_items,
            "items": list(self.items),
            "theta_mean": self.theta.mean,
            "theta_sd": self.theta.sd,
            "theta_hdi_low": self.theta.hdi_low,
            "theta_hdi_high": self.theta.hdi_high,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_low": self.accuracy_low,
            "accuracy_high": self.accuracy_high,
            "stop_reason": self.stop_reason,
            "trajectory": [s._asdict() for s in self.steps],
        }

    def __str__(self) -> str:
        return (
            f"{self.subject or 'session'}: {self.n_items} items ({self.estimator}/"
            f"{self.select}), {self.theta}, expected accuracy {self.accuracy_mean:.3f} "
            f"[{self.accuracy_low:.3f}, {self.accuracy_high:.3f}], stopped: {self.stop_reason}"
        )
