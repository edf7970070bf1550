"""A simulated examinee of known ability, for testing live runs through real harnesses.

:class:`SimulatedAbility` answers item ``j`` correctly with the bank's posterior
predictive probability at ability ``theta``: the 2PL probability
``logistic(a_j (theta - b_j))`` averaged over the posterior draws of ``(a_j, b_j)``. So the
model's expected accuracy over the full task is exactly the bank's expected accuracy at
``theta`` (what a session reports as the expected full-benchmark accuracy), and a live
run's estimate can be compared with the model's full-task result without a Jensen gap
(at the posterior means instead, the model would score above the bank's expectation
wherever discriminations are uncertain). Each
answer is a deterministic function of ``(seed, item)``: the same model answers the same
item the same way in every round, every rerun and every harness, so a live run can be
compared answer for answer with :func:`fluid_bayes.replay` over
:meth:`SimulatedAbility.answers`.

The harness adapters (an lm-eval ``LM`` registered as ``fluid-sim``, an Inspect model
provider ``fluidsim``) wrap this class; they are real models to their harness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from scipy.special import expit

from fluid_bayes.dims import CHAIN, DRAW, ITEM
from fluid_bayes.exceptions import DataError

__all__ = ["SimulatedAbility"]


class SimulatedAbility:
    """Answers a bank's items like a model of ability ``theta``.

    Parameters
    ----------
    bank : ItemBank
        Item parameters (every posterior draw of ``a`` and ``b``).
    theta : float
        The model's ability, on the bank's scale.
    seed : int
        Seeds every answer (>= 0).
    """

    def __init__(self, bank, theta: float, seed: int = 0) -> None:
        theta = float(theta)
        if not np.isfinite(theta):
            raise DataError(f"simulated ability must be finite, got {theta}")
        if int(seed) < 0:
            raise DataError(f"simulated model seed must be >= 0, got {seed}")
        self.theta = theta
        self.seed = int(seed)
        self.items = tuple(bank.items)
        a = bank.a.stack(sample=(CHAIN, DRAW)).transpose(ITEM, "sample").values
        b = bank.b.stack(sample=(CHAIN, DRAW)).transpose(ITEM, "sample").values
        p = expit(a * (theta - b)).mean(axis=1)  # posterior predictive, per item
        self._p = dict(zip(self.items, p.tolist(), strict=True))
        #: How often each item was asked (a live run must ask each at most once).
        self.asked: dict[str, int] = {}

    def probability(self, item: str) -> float:
        """P(correct) for ``item``."""
        try:
            return self._p[item]
        except KeyError:
            raise DataError(f"item {item!r} is not in the simulated model's bank") from None

    def uniform(self, item: str) -> float:
        """The answer's uniform draw in [0, 1): a hash of the seed and the item id."""
        h = hashlib.sha256(f"{self.seed}\0{item}".encode()).digest()
        return int.from_bytes(h[:8], "little") / 2.0**64

    def correct(self, item: str) -> bool:
        """Whether the model answers ``item`` correctly (counted in :attr:`asked`)."""
        self.asked[item] = self.asked.get(item, 0) + 1
        return self.uniform(item) < self.probability(item)

    def answers(self, items: Iterable[str] | None = None) -> dict[str, int]:
        """The 0/1 answer to every item (or to ``items``), without counting them."""
        return {i: int(self.uniform(i) < self.probability(i)) for i in (items or self.items)}
