"""The ability estimators of the adaptive loop, one object each.

:data:`ESTIMATOR_RULES` holds one :class:`Estimator` per name of
:data:`~fluid_bayes.adaptive.options.ESTIMATORS`; the
:class:`~fluid_bayes.adaptive.session.Session` (hence replay, the experiments and the
CLI) and :func:`~fluid_bayes.adaptive.replay.score_all` reach an estimator only through
it. An estimator says which state it keeps (:mod:`fluid_bayes.adaptive.ability`: the
paper's MAP, or the posterior on the ability grid), which item parameters that state
integrates over (every posterior draw, or the point estimates as one draw), how the
expected full-benchmark accuracy follows from the state, and how all of a subject's
answers are scored at once:

========= ============= ===================== =====================================
name      state         item parameters       expected accuracy
========= ============= ===================== =====================================
``bayes`` ``GridState`` every posterior draw  over the joint (draw, node) posterior
``eap``   ``GridState`` point estimates       over the grid posterior, point items
``map``   ``MapState``  point estimates       at the MAP and its normal interval
========= ============= ===================== =====================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fluid_bayes.adaptive import kernels
from fluid_bayes.adaptive.ability import (
    AbilitySummary,
    GridState,
    MapState,
    grid_summary,
    joint_weights,
    map_ability,
    normal_log_prior,
    weighted_hdi,
)
from fluid_bayes.adaptive.options import ESTIMATORS
from fluid_bayes.dims import HDI_PROB

__all__ = ["ESTIMATOR_RULES", "Estimator"]


@dataclass(frozen=True)
class Estimator:
    """One ability estimator.

    Attributes
    ----------
    name : str
        One of :data:`~fluid_bayes.adaptive.options.ESTIMATORS`.
    grid : bool
        The state is the posterior on the ability grid (:class:`GridState`); else the
        paper's MAP (:class:`MapState`).
    draws : bool
        Items enter with every posterior draw; else with their point estimates.
    """

    name: str
    grid: bool
    draws: bool

    def item_params(self, arrays) -> tuple[np.ndarray, np.ndarray]:
        """The item parameters the state integrates over, each shape ``(S', N)``.

        Every draw (``S' = S``), or the point estimates as one draw (``S' = 1``).
        """
        if self.draws:
            return arrays.a, arrays.b
        return arrays.a_point[None, :], arrays.b_point[None, :]

    def new_state(
        self, arrays, *, prior_mean: float, prior_sd: float, start: float, integration: str
    ) -> MapState | GridState:
        """The state before any answer (``start``: where the MAP's search begins)."""
        if not self.grid:
            return MapState(prior_mean=prior_mean, prior_sd=prior_sd, start=start)
        log_prior = normal_log_prior(arrays.nodes, prior_mean, prior_sd)
        n_draws = self.item_params(arrays)[0].shape[0]
        return GridState(arrays.nodes, log_prior, n_draws, integration)

    def expected_accuracy(self, state, arrays) -> tuple[float, float, float]:
        """Expected accuracy over every bank item: mean and 94% interval."""
        if self.grid and self.draws:  # the cells sorted once per bank, not per session
            w = state.joint()
            acc = arrays.accuracy_table
            mean = float(np.sum(w * acc))
            order, values = arrays.accuracy_order
            low, high = kernels.sorted_weighted_hdi(values, order, w.ravel(), HDI_PROB)
            return mean, float(low), float(high)
        if self.grid:
            w = state.marginal()
            acc = arrays.point_accuracy(arrays.nodes)
            mean = float(w @ acc)
        else:
            est = state.summary()
            points = np.array([est.mean, est.hdi_low, est.hdi_high])
            mean, low, high = (float(v) for v in arrays.point_accuracy(points))
            return mean, low, high
        low, high = weighted_hdi(acc, w)
        return mean, low, high

    def score_answers(
        self,
        arrays,
        y: np.ndarray,
        answered: np.ndarray,
        *,
        prior_mean: float = 0.0,
        prior_sd: float = 1.0,
    ) -> AbilitySummary:
        """The ability from all of a subject's answers at once (no selection).

        Parameters
        ----------
        arrays : BankArrays
            The bank.
        y : numpy.ndarray
            The answers to the ``answered`` items, in bank order.
        answered : numpy.ndarray
            Boolean ``(N,)``: the items answered.
        prior_mean, prior_sd : float
            Normal prior of ability.

        Returns
        -------
        AbilitySummary
            A grid estimate is refined on 241 nodes around the posterior when its SD is
            below 0.1 (the grid's spacing would show). ``bayes`` combines the draws as
            the equal-weight mixture: re-weighted by hundreds or thousands of answers,
            the weights would rest on one draw (:mod:`fluid_bayes.adaptive.ability`).
        """
        if not self.grid:
            th, se = map_ability(y, arrays.a_point[answered], arrays.b_point[answered],
                                 prior_mean=prior_mean, prior_sd=prior_sd)  # fmt: skip
            return AbilitySummary.normal(th, se)
        a_all, b_all = self.item_params(arrays)
        a = np.ascontiguousarray(a_all[:, answered])
        b = np.ascontiguousarray(b_all[:, answered])
        nodes = arrays.nodes
        est = _grid_estimate(a, b, y, nodes, prior_mean, prior_sd)
        if est.sd < 0.1:  # refine: 241 nodes over the posterior's neighbourhood
            half = max(12 * est.sd, 0.25)
            fine = np.linspace(est.mean - half, est.mean + half, nodes.size)
            est = _grid_estimate(a, b, y, fine, prior_mean, prior_sd)
        return est


def _grid_estimate(a, b, y, nodes, prior_mean, prior_sd) -> AbilitySummary:
    ll = kernels.grid_loglik_sum(a, b, np.ascontiguousarray(y), nodes)
    w = joint_weights(ll, normal_log_prior(nodes, prior_mean, prior_sd), "mixture")
    return grid_summary(nodes, w.sum(axis=0)[None, :])[0]


#: every estimator, by name (the names of ESTIMATORS, in that order)
ESTIMATOR_RULES = {
    e.name: e
    for e in (
        Estimator("bayes", grid=True, draws=True),
        Estimator("eap", grid=True, draws=False),
        Estimator("map", grid=False, draws=False),
    )
}
assert tuple(ESTIMATOR_RULES) == ESTIMATORS
