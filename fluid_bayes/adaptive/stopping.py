"""Stopping rules of an adaptive session, combinable, with the reason reported.

A session stops at the first of: the bank has no item left for it; ``max_items``
answered; the posterior SD of ability below ``sd`` once at least ``min_items`` were
answered. ``sd="auto"`` is the paper's rule: the mean ability gap between rank-adjacent
calibration subjects of the bank (stop once the estimate is finer than the spacing of
the leaderboard it was calibrated on).

The rule itself is one compiled function, :func:`stop_code`: :meth:`StopRule.reason`
calls it after every answer of a :class:`~fluid_bayes.adaptive.session.Session`, and the
compiled replay of the paper's procedure
(:func:`fluid_bayes.adaptive.paper_kernels.replay_paper`) calls the same function
inside its loop, so the two cannot stop differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["GO_ON", "STOP_REASONS", "StopRule", "auto_sd_threshold", "stop_code"]

#: the reason of each :func:`stop_code` (0: go on)
STOP_REASONS = (None, "sd", "max_items", "exhausted")
GO_ON = 0


@njit(cache=True)
def stop_code(n_items, sd, n_available, max_items, min_items, sd_target):
    """Whether a session stops now, as an index into :data:`STOP_REASONS`.

    Parameters
    ----------
    n_items : int
        Answers recorded.
    sd : float
        Current posterior SD (standard error) of ability.
    n_available : int
        Items the session may still ask.
    max_items, min_items : int
        Most answers; fewest before the SD criterion may stop.
    sd_target : float
        Stop once ``sd`` is below it (after at least ``max(min_items, 1)`` answers);
        0 disables.

    Returns
    -------
    int
        0 go on, 1 ``"sd"``, 2 ``"max_items"``, 3 ``"exhausted"`` (checked in that order).
    """
    if sd_target > 0.0 and n_items >= max(min_items, 1) and sd < sd_target:
        return 1
    if n_items >= max_items:
        return 2
    if n_available == 0:
        return 3
    return 0


def auto_sd_threshold(theta_means: np.ndarray) -> float:
    """Mean gap between rank-adjacent abilities (ability units).

    Parameters
    ----------
    theta_means : array_like
        Calibration subjects' ability posterior means (at least two).

    Returns
    -------
    float
        ``mean(diff(sort(theta_means)))``.
    """
    t = np.sort(np.asarray(theta_means, dtype=np.float64))
    t = t[np.isfinite(t)]
    if t.size < 2:
        raise ValueError("the auto SD threshold needs at least two calibration abilities")
    return float(np.mean(np.diff(t)))


@dataclass(frozen=True)
class StopRule:
    """When a session stops.

    Attributes
    ----------
    max_items : int
        Stop after this many answers (default 100).
    min_items : int
        Never stop on the SD criterion before this many answers (default 0).
    sd : float, optional
        Stop once the ability posterior SD is below it (ability units); ``None``
        disables. Resolve ``"auto"`` with :func:`auto_sd_threshold` before building.
    """

    max_items: int = 100
    min_items: int = 0
    sd: float | None = None

    def __post_init__(self) -> None:
        if self.max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {self.max_items}")
        if self.min_items < 0:
            raise ValueError(f"min_items must be >= 0, got {self.min_items}")
        if self.min_items > self.max_items:
            raise ValueError(f"min_items ({self.min_items}) exceeds max_items ({self.max_items})")
        if self.sd is not None and not self.sd > 0:
            raise ValueError(f"the SD threshold must be positive, got {self.sd}")

    def reason(self, n_items: int, sd: float, n_available: int) -> str | None:
        """Why the session stops now, or ``None`` to go on.

        Parameters
        ----------
        n_items : int
            Answers recorded.
        sd : float
            Current posterior SD of ability.
        n_available : int
            Items the session may still ask.

        Returns
        -------
        str or None
            ``"max_items"``, ``"sd"`` or ``"exhausted"``.
        """
        code = stop_code(int(n_items), float(sd), int(n_available), *self.kernel_args())
        return STOP_REASONS[code]

    def kernel_args(self) -> tuple[int, int, float]:
        """``(max_items, min_items, sd_target)`` as :func:`stop_code` takes them."""
        return self.max_items, self.min_items, 0.0 if self.sd is None else float(self.sd)

    def describe(self, reason: str | None) -> str:
        """A readable sentence for a stop reason."""
        return {
            None: "not stopped",
            "sd": f"posterior SD below {self.sd:.4g}" if self.sd else "posterior SD",
            "max_items": f"reached {self.max_items} items",
            "exhausted": "no item left to ask",
        }[reason]
