"""Ability inference for a new subject from the answers so far.

Three estimators, all on the bank's ability scale (for LM banks: the calibration
sample's scale, calibration abilities mean 0 and SD 1):

``map``
    The paper's estimator on point item parameters (posterior means, or an imported
    point bank): the maximum of the posterior under a ``N(mu0, sigma0)`` prior on
    ``[-4, 4]`` with D = 1, found by safeguarded Newton (:mod:`fluid_bayes.adaptive.kernels`).
    Its SD is the asymptotic standard error ``1 / sqrt(information + 1 / sigma0^2)``
    and its interval the normal one (a Laplace approximation).
``eap``
    The posterior of ability on a grid, on the same point parameters: mean, SD and
    94% HDI of the grid posterior. Ignores item-parameter uncertainty.
``bayes`` (default)
    The posterior of ability *integrating over the item-parameter posterior*, over the
    joint draws ``s`` of all item parameters (each draw keeps all items on one common
    scale, which the per-item expected likelihood ``prod_j E_s[p(y_j | theta)]`` would
    forget: it treats items as independent):

        p(theta | y) = sum_s w_s p(theta | y, a_s, b_s),
        p(theta | y, a_s, b_s) ∝ prod_j p(y_j | theta, a_sj, b_sj) N(theta; mu0, sigma0)

    With ``integration="weighted"`` (the default) the new answers re-weight the draws,
    ``w_s ∝ p(y | a_s, b_s)``: the exact posterior if the calibration posterior is the
    item prior. With ``"mixture"`` every draw keeps ``w_s = 1/S``; that estimate is
    shrunk toward the prior mean (errors in the item parameters attenuate it, as in a
    regression on noisy covariates): in the simulation of ``benchmarks/selection_study.py``
    (45 calibration subjects, 1,000 items) the slope of the estimate on the true
    ability was 0.95 with all 1,000 answers (0.98 weighted; study 0), and over 10 studies
    its RMSE against the truth after 30 and 100 adaptive items was worse than the
    paper's rule beyond the paired bootstrap interval (0.208 vs 0.201, 0.139 vs 0.131),
    the weighted one not (0.202, 0.134). The weighted posterior is an importance
    sampler whose effective number of draws falls as answers accumulate (measured on
    ChemBench: 8 of 400 draws left after 100 items, 1 after 300;
    :attr:`GridState.draw_ess`), after which it integrates less of the item uncertainty.
    Coverage study (``tests/test_slow.py``: 30 calibration subjects, 40-item sessions,
    8 calibrations x 100 subjects): 90% intervals cover 89.8% (weighted), 87.8%
    (mixture), 76.9% (``eap``), measured 2026-12-04 with ``epv`` selection (before
    ``epv``: 89.8%, 88.9%, 84.6%).

The grid (:func:`ability_grid`) is equally spaced on ``[-6, 6]`` (241 nodes, spacing
0.05): the trapezoid rule on a smooth, unimodal posterior is then accurate to far below
Monte Carlo error while the posterior SD exceeds ~0.03 (about 1e-6 relative error in the
SD at 0.03). Scoring on all of a benchmark's answers (SD below that) refines the grid
around the posterior (:func:`fluid_bayes.adaptive.replay.score_all`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from fluid_bayes.adaptive import grid_kernels, kernels, paper_kernels
from fluid_bayes.adaptive.options import ESTIMATORS, INTEGRATIONS
from fluid_bayes.dims import HDI_PROB

__all__ = [
    "ESTIMATORS",
    "AbilitySummary",
    "INTEGRATIONS",
    "GridState",
    "MapState",
    "THETA_RANGE",
    "ability_grid",
    "grid_spacing",
    "grid_summary",
    "joint_weights",
    "map_ability",
    "normal_log_prior",
    "weighted_hdi",
]

GRID_HALF_WIDTH = 6.0
GRID_POINTS = 241
#: the paper's ability range for ``map``
THETA_RANGE = (-4.0, 4.0)
_Z94 = 1.880793608151251  # N(0, 1) quantile of 0.97: central 94% interval


@dataclass(frozen=True)
class AbilitySummary:
    """Ability estimate after some answers (ability scale).

    Attributes
    ----------
    mean, sd : float
        Posterior mean and SD (``map``: the MAP and its standard error).
    hdi_low, hdi_high : float
        94% highest-density interval (``map``: normal interval).
    """

    mean: float
    sd: float
    hdi_low: float
    hdi_high: float

    @classmethod
    def normal(cls, mean: float, sd: float) -> AbilitySummary:
        """A normal (Laplace) summary: ``mean +- 1.88 sd`` as the 94% interval."""
        mean, sd = float(mean), float(sd)
        return cls(mean, sd, mean - _Z94 * sd, mean + _Z94 * sd)

    def __str__(self) -> str:
        return (
            f"theta {self.mean:+.3f} +- {self.sd:.3f} [{self.hdi_low:+.3f}, {self.hdi_high:+.3f}]"
        )


def ability_grid(n_points: int = GRID_POINTS, half_width: float = GRID_HALF_WIDTH) -> np.ndarray:
    """Equally spaced ability nodes on ``[-half_width, half_width]``."""
    return np.linspace(-half_width, half_width, n_points)


def grid_spacing(nodes: np.ndarray) -> float:
    """The nodes' spacing if they are equally spaced (to 1e-12 relative), else 0.

    The compiled kernels carry ``exp`` from node to node on equally spaced nodes
    (:func:`fluid_bayes.adaptive.grid_kernels.exp_along_grid`); 0 tells them not to.
    """
    h = np.diff(np.asarray(nodes, dtype=np.float64))
    equal = h.size and np.allclose(h, h[0], rtol=1e-12, atol=0)
    return float(h[0]) if equal else 0.0


def normal_log_prior(nodes: np.ndarray, mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    """Normalized log weights of ``N(mean, sd)`` on the grid nodes."""
    if not sd > 0:
        raise ValueError(f"prior sd must be positive, got {sd}")
    lw = -0.5 * ((nodes - mean) / sd) ** 2
    return lw - logsumexp(lw)


def map_ability(
    answers: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    prior_mean: float = 0.0,
    prior_sd: float = 1.0,
    theta_range: tuple[float, float] = THETA_RANGE,
    start: float | None = None,
) -> tuple[float, float]:
    """The paper's MAP ability and its standard error.

    Parameters
    ----------
    answers : array_like
        0/1 answers aligned with ``a`` and ``b``; NaN = not asked.
    a, b : array_like
        Point item parameters.
    prior_mean, prior_sd : float
        Normal prior on ability.
    theta_range : (float, float)
        Range the estimate is confined to.
    start : float, optional
        Newton start (default ``prior_mean``); the result does not depend on it.

    Returns
    -------
    (float, float)
        MAP (ability scale) and ``1 / sqrt(information + 1 / prior_sd**2)`` at the MAP.
    """
    y = np.asarray(answers, dtype=np.float64)
    m = ~np.isnan(y)
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64)[m])
    b = np.ascontiguousarray(np.asarray(b, dtype=np.float64)[m])
    y = np.ascontiguousarray(y[m])
    lo, hi = map(float, theta_range)
    theta, h = kernels.map_newton(
        a, b, y, y.size, prior_mean, prior_sd**-2, lo, hi,
        prior_mean if start is None else float(start),
    )  # fmt: skip
    return float(theta), float(1.0 / np.sqrt(h))


class MapState:
    """Running MAP estimate for one session (``map`` estimator)."""

    def __init__(
        self,
        *,
        prior_mean: float = 0.0,
        prior_sd: float = 1.0,
        theta_range: tuple[float, float] = THETA_RANGE,
        start: float = 0.0,
        capacity: int = 64,
    ) -> None:
        self.prior_mean, self.prior_prec = float(prior_mean), float(prior_sd) ** -2
        self.lo, self.hi = map(float, theta_range)
        self._abc = np.empty((3, capacity))
        self._series = paper_kernels.series_state(float(start))
        self.n = 0
        self.theta = float(start)
        self.se = float(prior_sd)

    def update(self, a: float, b: float, y: float) -> None:
        """Add one answer ``y`` to an item with point parameters ``(a, b)``."""
        if self.n == self._abc.shape[1]:
            self._abc = np.concatenate([self._abc, np.empty_like(self._abc)], axis=1)
        self._abc[:, self.n] = (a, b, y)
        self.n += 1
        theta, h = paper_kernels.series_map_step(
            self._series, self._abc[0], self._abc[1], self._abc[2], self.n,
            self.prior_mean, self.prior_prec, self.lo, self.hi, self.theta,
        )  # fmt: skip
        self.theta, self.se = float(theta), float(1.0 / np.sqrt(h))

    def summary(self) -> AbilitySummary:
        """MAP, standard error and normal 94% interval (start, prior SD before answers)."""
        return AbilitySummary.normal(self.theta, self.se)

    def copy(self) -> MapState:
        """An independent copy (updating it leaves this state as it is)."""
        new = copy.copy(self)
        new._abc, new._series = self._abc.copy(), self._series.copy()
        return new

    def predictive(self, a: float, b: float) -> float:
        """Probability of a right answer to an item ``(a, b)`` at the MAP (plug-in)."""
        return float(expit(a * (self.theta - b)))


def joint_weights(loglik: np.ndarray, log_prior: np.ndarray, integration: str) -> np.ndarray:
    """Posterior weights over (draw, node) from grid log-likelihoods.

    Parameters
    ----------
    loglik : numpy.ndarray
        Log-likelihood of the answers, shape ``(..., S, G)``.
    log_prior : numpy.ndarray
        Log prior on the nodes, shape ``(G,)``.
    integration : {"mixture", "weighted"}
        ``mixture``: every draw keeps weight ``1 / S`` (the ability posterior of each
        draw, averaged); ``weighted``: draws weighted by their marginal likelihood of
        the answers (see the module docstring).

    Returns
    -------
    numpy.ndarray
        Shape ``(..., S, G)``, summing to 1 over the last two axes.
    """
    lw = loglik + log_prior
    if integration == "mixture":
        lw = lw - lw.max(axis=-1, keepdims=True)
        w = np.exp(lw)
        w /= w.sum(axis=-1, keepdims=True) * w.shape[-2]
    elif integration == "weighted":
        lw = lw - lw.max(axis=(-2, -1), keepdims=True)
        w = np.exp(lw)
        w /= w.sum(axis=(-2, -1), keepdims=True)
    else:
        raise ValueError(f"integration must be one of {INTEGRATIONS}, got {integration!r}")
    return w


#: nodes this far (nats) below every draw's posterior maximum are dropped from updates
WINDOW_NATS = 40.0
#: a window edge this close (nats) to some draw's maximum triggers a full recomputation
EDGE_NATS = 25.0
_WINDOW, _EDGE = float(np.exp(-WINDOW_NATS)), float(np.exp(-EDGE_NATS))


class GridState:
    """Running grid posterior for one session (``eap``: one draw; ``bayes``: many).

    Holds the posterior weight of every (draw, node), each draw's row scaled to a
    maximum of 1 with its log scale kept aside, and multiplies each new answer's
    likelihood in (no logarithm per cell; the posterior over the nodes and the rows'
    sums come out of the same pass:
    :func:`fluid_bayes.adaptive.grid_kernels.grid_weight_step`, so the normalized
    weights of a few draws, :meth:`window_rows`, cost only those rows).
    Updates touch only a window of nodes: those within ``WINDOW_NATS`` of some draw's
    maximum (plus two nodes each side); the rest carry less than ``exp(-40)`` of any
    draw's mass. If the posterior later moves so that a window edge comes within
    ``EDGE_NATS`` of a draw's maximum, the whole grid is recomputed in log space from
    the recorded answers, so the result equals the full-grid computation to far below
    the precision of the summaries (tested to 1e-12).

    Parameters
    ----------
    nodes : numpy.ndarray
        Ability grid, shape ``(G,)``.
    log_prior : numpy.ndarray
        Normalized log prior on the nodes, shape ``(G,)``.
    n_draws : int
        Item-parameter draws ``S`` (1 for ``eap``).
    integration : {"mixture", "weighted"}
        How draws are combined (:func:`joint_weights`).
    """

    def __init__(
        self,
        nodes: np.ndarray,
        log_prior: np.ndarray,
        n_draws: int,
        integration: str = "mixture",
    ) -> None:
        if integration not in INTEGRATIONS:
            raise ValueError(f"integration must be one of {INTEGRATIONS}, got {integration!r}")
        self.nodes = nodes
        self.log_prior = log_prior
        self.integration = integration
        self.lo, self.hi = 0, nodes.size
        self.n_rebuilds = 0
        self._answers: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._step = grid_spacing(nodes)  # equal spacing: exp carried from node to node
        self._set_prior(n_draws)
        self._summary: AbilitySummary | None = None

    def _set_prior(self, n_draws: int) -> None:
        """Weights before any answer: every draw's row is the prior's (one exp per node)."""
        lw = 0.0 + self.log_prior  # as _set_loglik(zeros): the same numbers, computed once
        scale = lw.max()
        self._log_scale = np.full(n_draws, scale)
        self._w = np.repeat(np.exp(lw - scale)[None, :], n_draws, axis=0)
        self._wj = None
        self._marg = None
        self._rows: np.ndarray | None = None
        self.lo, self.hi = 0, self.nodes.size

    def _set_loglik(self, loglik: np.ndarray) -> None:
        """Weights from log-likelihoods on the whole grid; resets the window."""
        lw = loglik + self.log_prior
        self._log_scale = lw.max(axis=1)
        self._w = np.exp(lw - self._log_scale[:, None])
        self._wj: np.ndarray | None = None
        self._marg: np.ndarray | None = None
        self._rows = None
        self.lo, self.hi = 0, self.nodes.size

    def update(self, a: np.ndarray, b: np.ndarray, y: float) -> None:
        """Add answer ``y`` to an item with draws ``a, b`` (shape ``(S,)``)."""
        a = np.ascontiguousarray(a, dtype=np.float64)
        b = np.ascontiguousarray(b, dtype=np.float64)
        self._answers.append((a, b, float(y)))
        lo, rebuilds = self.lo, self.n_rebuilds
        # the marginal and the rows' sums come out of the same pass over the weights
        marg, rows = np.zeros(self.hi - lo), np.empty(self._w.shape[0])
        best = grid_kernels.grid_weight_step(self._w, self._log_scale, lo, self.hi, a, b,
                                              float(y), self.nodes, self._step, marg, rows,
                                              self.integration == "weighted")  # fmt: skip
        self._wj = self._marg = self._rows = self._summary = None
        if best.size == 0:  # a likelihood underflowed: recompute in log space
            self._rebuild()
            return
        self._refresh_window(best)
        if self.n_rebuilds == rebuilds:
            # nodes the window dropped hold under exp(-40) of every draw's mass
            self._marg = marg[self.lo - lo : self.hi - lo]
            self._rows = rows

    def _refresh_window(self, best: np.ndarray | None = None) -> None:
        """Shrink the window to the nodes that matter, or rebuild when it must grow.

        ``best`` is, per window node, the largest scaled weight over draws.
        """
        lo, hi, n = self.lo, self.hi, self.nodes.size
        if best is None:
            best = self._w[:, lo:hi].max(axis=0)
        if (lo > 0 and best[0] > _EDGE) or (hi < n and best[-1] > _EDGE):
            self._rebuild()
            return
        active = np.flatnonzero(best > _WINDOW)
        # shrink only (nodes outside the window are stale), keeping two nodes of margin
        self.lo = max(lo + int(active[0]) - 2, lo)
        self.hi = min(lo + int(active[-1]) + 3, hi)

    def _rebuild(self) -> None:
        """Recompute the whole grid in log space from every recorded answer."""
        a = np.stack([x[0] for x in self._answers], axis=1)
        b = np.stack([x[1] for x in self._answers], axis=1)
        y = np.array([x[2] for x in self._answers])
        self._set_loglik(kernels.grid_loglik_sum(a, b, y, self.nodes))
        self.n_rebuilds += 1
        self._refresh_window()

    def _window_joint(self) -> np.ndarray:
        if self._wj is None:  # as joint_weights(), in one compiled pass
            self._wj, marg = grid_kernels.grid_window_weights(
                self._w, self._log_scale, self.lo, self.hi, self.integration == "mixture"
            )
            if self._marg is None:
                self._marg = marg
        return self._wj

    def window_weights(self) -> tuple[int, int, np.ndarray]:
        """The posterior weights on the window: ``(lo, hi, w)``, ``w`` of shape ``(S, hi - lo)``.

        The cells of :meth:`joint` that can be non-zero, without the zeros around them
        (a view of the state's cache: do not modify it).
        """
        return self.lo, self.hi, self._window_joint()

    def window_rows(self, draws: np.ndarray) -> tuple[int, int, np.ndarray]:
        """The rows ``draws`` of :meth:`window_weights`: ``(lo, hi, w)``, ``w`` (len(draws), W).

        A new array. After an update it is computed from those rows alone (their
        normalization from the rows' sums of the update's pass), else taken from the
        whole window's weights.
        """
        draws = np.asarray(draws, dtype=np.int64)
        if self._wj is not None or self._rows is None:
            return self.lo, self.hi, self._window_joint()[draws]
        rows = self._rows
        if self.integration == "mixture":
            factor = 1.0 / (rows[draws] * rows.size)
        else:
            rel = np.exp(self._log_scale - self._log_scale.max())
            factor = rel[draws] / np.sum(rel * rows)
        return self.lo, self.hi, self._w[draws, self.lo : self.hi] * factor[:, None]

    def joint(self) -> np.ndarray:
        """Normalized posterior weights over (draw, node), shape ``(S, G)``."""
        out = np.zeros_like(self._w)
        out[:, self.lo : self.hi] = self._window_joint()
        return out

    def marginal(self) -> np.ndarray:
        """Posterior weights over the nodes, shape ``(G,)``."""
        out = np.zeros(self.nodes.size)
        if self._marg is None:
            self._window_joint()
        out[self.lo : self.hi] = self._marg
        return out

    @property
    def n_draws(self) -> int:
        """Item-parameter draws ``S`` (rows of the weights)."""
        return self._w.shape[0]

    @property
    def draw_ess(self) -> float:
        """Kish effective sample size of the draws' weights (``S`` for ``mixture``)."""
        w = self._window_joint().sum(axis=1)
        return float(1.0 / np.sum(w**2))

    def copy(self) -> GridState:
        """An independent copy (updating it leaves this state as it is)."""
        new = copy.copy(self)
        new._w, new._log_scale = self._w.copy(), self._log_scale.copy()
        new._answers = list(self._answers)
        return new

    def predictive(self, a: np.ndarray, b: np.ndarray) -> float:
        """Posterior predictive probability of a right answer to an item.

        Parameters
        ----------
        a, b : numpy.ndarray
            The item's draws, shape ``(S,)`` (aligned with the state's draws).

        Returns
        -------
        float
            ``sum_{s, g} w_sg logistic(a_s (theta_g - b_s))`` over the posterior weights.
        """
        w = self._window_joint()
        nodes = self.nodes[self.lo : self.hi]
        a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[:, None]
        x = a * (nodes[None, :] - b)
        return float(np.sum(w * expit(x)))

    def summary(self) -> AbilitySummary:
        """Posterior mean, SD and 94% HDI of ability."""
        if self._summary is None:
            self._summary = grid_summary(self.nodes, self.marginal()[None, :])[0]
        return self._summary


def grid_summary(
    nodes: np.ndarray, weights: np.ndarray, prob: float = HDI_PROB
) -> list[AbilitySummary]:
    """Mean, SD and 94% HDI of grid posteriors.

    Parameters
    ----------
    nodes : numpy.ndarray
        Equally spaced nodes, shape ``(G,)``.
    weights : numpy.ndarray
        Normalized weights, shape ``(B, G)`` (one posterior per row).

    Returns
    -------
    list of AbilitySummary
        One per row. The HDI is the shortest interval of ``prob`` (default 94%) mass
        of the piecewise constant density with one cell per node (the shortest of 241
        intervals by lower tail mass; :func:`fluid_bayes.adaptive.kernels.grid_summaries`).
    """
    w = np.ascontiguousarray(np.atleast_2d(weights), dtype=np.float64)
    mean, sd, lo, hi = kernels.grid_summaries(np.asarray(nodes, np.float64), w, prob, 241)
    return [AbilitySummary(*map(float, row)) for row in zip(mean, sd, lo, hi, strict=True)]


def weighted_hdi(
    values: np.ndarray, weights: np.ndarray, prob: float = HDI_PROB
) -> tuple[float, float]:
    """Shortest interval holding ``prob`` of a weighted discrete distribution.

    Parameters
    ----------
    values, weights : numpy.ndarray
        Support points and their (normalized) probabilities, any matching shape.

    Returns
    -------
    (float, float)
        Interval ends, in the units of ``values``: the narrowest run of the sorted
        support holding ``prob`` of the weight (points of weight 1e-15 or less left out);
        one stable sort, then :func:`fluid_bayes.adaptive.kernels.sorted_weighted_hdi`.
    """
    v = np.ravel(np.asarray(values, dtype=np.float64))
    order = np.argsort(v, kind="stable")
    w = np.ascontiguousarray(np.ravel(weights), dtype=np.float64)
    low, high = kernels.sorted_weighted_hdi(v[order], order, w, prob)
    return float(low), float(high)
