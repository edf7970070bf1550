"""What the calibration population itself would show: the reference of the refit advice.

The refit triggers of :func:`fluid_bayes.upkeep.advice.advise` count new models (at the
ceiling, beyond the calibrated range). A count means something only against what the
bank's own population would produce in a set of the same size: with 1,000 new models
from the calibration population a few are expected at the top by chance. This module
gives that reference, a **posterior predictive distribution of the counts**:

1. A *world* per reference set: one posterior draw of the items (drawn from the draws
   that do not score the models when there are enough, as the new answers come from the
   unknown true items, not from the draws that evaluate them) and of the population.
2. ``n`` abilities from the bank's ability population, ``n`` the size of the observed
   set. ``"calibration"`` (the default): the world's draw of the calibration subjects'
   abilities, smoothed: a subject chosen at random plus ``N(0, h^2)`` noise, ``h``
   Silverman's robust bandwidth ``0.9 min(SD, IQR / 1.34) N^(-1/5)`` of the ``N``
   abilities. A new model from the population the calibration models came from is above
   all ``N`` of them with probability ``1 / (N + 1)`` whatever its shape; the smoothed
   abilities come close (on the shipped ChemBench banks, P(above the best) 0.048, 0.063,
   0.079 against 1 / (N + 1) = 0.043, 0.053, 0.067 for N = 22, 18, 14), where the
   model's own ``N(0, 1)`` does not (0.19-0.25: the real calibration abilities are
   skewed, the top compressed). ``"normal"``: that ``N(0, 1)``, standardized by a
   calibration sample redrawn once per set, ``theta = (z - mean(z_cal)) / sd(z_cal)``
   (the joint fit puts the calibration abilities at mean 0, SD 1 in every draw). A bank
   without calibration abilities gets plain ``N(0, 1)``.
3. Their answers to the items the observed models answered (the ``k``-th simulated
   model of a set answers the items the ``k``-th observed model answered).
4. The same per-model statistics as the observed models (:class:`PosteriorScorer`):
   ``P(ability > t)`` for the thresholds of the triggers, under the ability posterior
   that mixes the same item draws, and the hardest-decile accuracy.

The tail probability of an observed count ``c`` among ``R`` reference sets is
``(1 + #{sets with count >= c}) / (R + 1)`` (:func:`tail_probability`): under the
reference it is a valid p-value for any ``R`` (``P(p <= alpha) <= alpha``), as the
observed set, if it is from the population, is one more set exchangeable with the ``R``.

:class:`PosteriorScorer` computes a model's ability posterior from two sufficient
statistics per item draw: ``log p(y | theta, draw d) = theta S1_d - S2_d + C_d(theta)``
with ``S1_d = sum_j y_j a_dj``, ``S2_d = sum_j y_j a_dj b_dj`` (one matrix product for
all models) and ``C_d(theta) = sum_j log logistic(-a_dj (theta - b_dj))``, the same for
every model with the same answered items (tabulated once: on 161 knots with its
slope, Hermite-interpolated to a fine grid). A compiled
kernel then walks the grid around each model's posterior only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numba import njit, prange

from fluid_bayes.adaptive.ability import normal_log_prior
from fluid_bayes.exceptions import OptionError
from fluid_bayes.ranges import SEED, Range

__all__ = [
    "POPULATIONS",
    "REFERENCE_SETS",
    "CountTest",
    "PosteriorScorer",
    "Reference",
    "binomial_test",
    "check_reference_options",
    "count_test",
    "simulate_reference",
    "tail_probability",
    "window_posteriors",
]

#: Reference sets simulated by default: (1 + #) / 200 resolves p-values in steps of 0.005.
REFERENCE_SETS = 199
#: Ability populations of the reference (see the module docstring).
POPULATIONS = ("calibration", "normal")
_SETS_RANGE = Range(int, 1, 100_000)
_HALF_WIDTH = 8.0  # the scoring grid spans [-8, 8] like the coarse grid of newmodels
_KNOTS = np.linspace(-8.0, 8.0, 161)  # C_d is tabulated here, Hermite-interpolated between
_STOP = 30.0  # a posterior's walk ends this many nats below its maximum
_CHUNK_CELLS = 4_000_000  # simulated answers (models x items) held at once
_QUANTILES = (0.5, 0.9, 0.95, 0.99)


# ----------------------------------------------------------------------- kernel
@njit(cache=True, inline="always")
def _log_mix(s1, s2, ctab, theta, g, step):
    """Log-sum-exp of ``theta s1_d - s2_d + C[d, g]`` over the draws ``0, step, 2 step, ...``."""
    n_d = s1.size
    top = -np.inf
    for d in range(0, n_d, step):
        v = theta * s1[d] - s2[d] + ctab[d, g]
        top = max(top, v)
    acc = 0.0
    for d in range(0, n_d, step):
        acc += math.exp(theta * s1[d] - s2[d] + ctab[d, g] - top)
    return top + math.log(acc)


@njit(cache=True, parallel=True)
def window_posteriors(s1, s2, ctab, lprior, nodes, thresholds, stride, locate):
    """Mean, SD and ``P(theta > t)`` of each model's mixture posterior on the grid.

    Parameters
    ----------
    s1, s2 : ndarray, shape (M, D)
        Sufficient statistics per model and item draw.
    ctab : ndarray, shape (D, G)
        ``C_d(theta_g)`` of the models' answered items.
    lprior : ndarray, shape (G,)
        Log prior on ``nodes`` (equally spaced).
    thresholds : ndarray, shape (T,)
        Abilities ``t``; a node's cell ``[theta_g - h/2, theta_g + h/2]`` counts by its
        share above ``t``.
    stride, locate : int
        The posterior is located on every ``stride``-th node with every ``locate``-th
        draw, then walked node by node with all draws until ``_STOP`` nats below its
        maximum on both sides.

    Returns
    -------
    mean, sd : ndarray, shape (M,)
    above : ndarray, shape (M, T)
    """
    n_m = s1.shape[0]
    n_g = nodes.size
    h = nodes[1] - nodes[0]
    mean = np.empty(n_m)
    sd = np.empty(n_m)
    above = np.zeros((n_m, thresholds.size))
    for i in prange(n_m):
        best, g0 = -np.inf, 0
        for g in range(0, n_g, stride):
            v = _log_mix(s1[i], s2[i], ctab, nodes[g], g, locate) + lprior[g]
            if v > best:
                best, g0 = v, g
        lw = np.empty(n_g)
        top = -np.inf
        hi = g0
        while hi < n_g:
            lw[hi] = _log_mix(s1[i], s2[i], ctab, nodes[hi], hi, 1) + lprior[hi]
            top = max(top, lw[hi])
            hi += 1
            if lw[hi - 1] < top - _STOP:
                break
        lo = g0 - 1
        while lo >= 0:
            lw[lo] = _log_mix(s1[i], s2[i], ctab, nodes[lo], lo, 1) + lprior[lo]
            top = max(top, lw[lo])
            if lw[lo] < top - _STOP:
                break
            lo -= 1
        lo = max(lo, 0)
        tot = m1 = m2 = 0.0
        for g in range(lo, hi):
            w = math.exp(lw[g] - top)
            tot += w
            m1 += w * nodes[g]
            m2 += w * nodes[g] * nodes[g]
            for k in range(thresholds.size):
                share = (nodes[g] + 0.5 * h - thresholds[k]) / h
                above[i, k] += w * min(1.0, max(0.0, share))
        mean[i] = m1 / tot
        sd[i] = math.sqrt(max(m2 / tot - mean[i] * mean[i], 0.0))
        for k in range(thresholds.size):
            above[i, k] /= tot
    return mean, sd, above


@njit(cache=True, parallel=True)
def wrong_loglik_knots(a, b, knots):
    """``C_d(t) = sum_j log logistic(-a_dj (t - b_dj))`` and its slope on ``knots``.

    Returns
    -------
    c, slope : ndarray, shape (D, K)
        The log-likelihood of answering every item wrong, and ``-sum_j a_dj p_dj(t)``.
    """
    n_d, n_j = a.shape
    n_k = knots.size
    c = np.empty((n_d, n_k))
    slope = np.empty((n_d, n_k))
    for cell in prange(n_d * n_k):
        d = cell // n_k
        k = cell % n_k
        acc = 0.0
        acc1 = 0.0
        for j in range(n_j):
            x = a[d, j] * (knots[k] - b[d, j])
            if x > 0:
                e = math.exp(-x)
                acc -= x + math.log1p(e)
                acc1 -= a[d, j] / (1.0 + e)
            else:
                e = math.exp(x)
                acc -= math.log1p(e)
                acc1 -= a[d, j] * e / (1.0 + e)
        c[d, k] = acc
        slope[d, k] = acc1
    return c, slope


def _hermite(knots: np.ndarray, c: np.ndarray, slope: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation of ``(D, K)`` values and slopes on ``knots`` to ``nodes``."""
    h = knots[1] - knots[0]
    k = np.clip(((nodes - knots[0]) // h).astype(int), 0, knots.size - 2)
    t = (nodes - knots[k]) / h
    t2, t3 = t * t, t * t * t
    h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2
    return (h00 * c[:, k] + h10 * h * slope[:, k] + h01 * c[:, k + 1]
            + h11 * h * slope[:, k + 1])  # fmt: skip


# ----------------------------------------------------------------------- scorer
class PosteriorScorer:
    """Ability posteriors of many answer vectors against fixed item draws, vectorized.

    Prior ``N(0, 1)`` and a mixture over the draws, as
    :func:`~fluid_bayes.upkeep.newmodels.check_new_models`; the grid spans ``[-8, 8]``
    in steps of ``h`` (a quarter of the narrowest posterior SD the items allow, ``1 /
    sqrt(max test information)``, within ``[0.002, 0.05]``).

    Parameters
    ----------
    a, b : ndarray, shape (D, J)
        Item draws that score the models.
    info_max : float
        The bank's maximum test information (sets the grid step).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, info_max: float):
        self.a = np.ascontiguousarray(a, dtype=np.float64)
        self.b = np.ascontiguousarray(b, dtype=np.float64)
        self.ab = self.a * self.b
        step = min(0.05, max(0.002, 0.25 / math.sqrt(max(info_max, 1e-12))))
        n = int(round(2 * _HALF_WIDTH / step)) + 1
        self.nodes = np.linspace(-_HALF_WIDTH, _HALF_WIDTH, n)
        self.lprior = normal_log_prior(self.nodes)
        self._full: np.ndarray | None = None
        self._tables: dict[bytes, np.ndarray] = {}

    def _c_table(self, answered: np.ndarray) -> np.ndarray:
        """``C_d(theta_g)`` for the items ``answered`` (bool ``(J,)``), cached."""
        key = np.packbits(answered).tobytes()
        if key in self._tables:
            return self._tables[key]

        def part(cols):
            a, b = np.ascontiguousarray(self.a[:, cols]), np.ascontiguousarray(self.b[:, cols])
            return _hermite(_KNOTS, *wrong_loglik_knots(a, b, _KNOTS), self.nodes)

        missing = ~answered
        if missing.sum() * 4 < answered.sum():  # few missing: the full table minus them
            if self._full is None:
                self._full = part(np.ones(answered.size, bool))
            table = self._full - part(missing) if missing.any() else self._full
        else:
            table = part(answered)
        self._tables[key] = table
        return table

    def score(self, y: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
        """Posterior mean, SD and ``P(ability > t)`` per row of ``y``.

        Parameters
        ----------
        y : ndarray, shape (M, J)
            Answers, 1.0 / 0.0, NaN where not answered.
        thresholds : ndarray, shape (T,)

        Returns
        -------
        dict
            ``theta_mean, theta_sd`` ``(M,)`` and ``above`` ``(M, T)``.
        """
        thresholds = np.asarray(thresholds, dtype=np.float64)
        answered = ~np.isnan(y)
        y0 = np.where(answered, y, 0.0)
        s1, s2 = y0 @ self.a.T, y0 @ self.ab.T
        n_m = y.shape[0]
        out = {"theta_mean": np.empty(n_m), "theta_sd": np.empty(n_m),
               "above": np.empty((n_m, thresholds.size))}  # fmt: skip
        patterns, inverse = _patterns(answered)
        stride = max(1, self.nodes.size // 200)
        locate = max(1, self.a.shape[0] // 10)
        for k, mask in enumerate(patterns):
            rows = np.flatnonzero(inverse == k)
            mean, sd, above = window_posteriors(
                np.ascontiguousarray(s1[rows]), np.ascontiguousarray(s2[rows]),
                self._c_table(mask), self.lprior, self.nodes, thresholds, stride, locate,
            )  # fmt: skip
            out["theta_mean"][rows], out["theta_sd"][rows], out["above"][rows] = mean, sd, above
        return out


def _patterns(answered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a bool matrix and each row's pattern (rows packed to bytes)."""
    if answered.all():
        return answered[:1], np.zeros(answered.shape[0], dtype=np.intp)
    packed = np.ascontiguousarray(np.packbits(answered, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return answered[first], inverse.ravel()


# -------------------------------------------------------------------- reference
@dataclass(frozen=True, eq=False)
class Reference:
    """Per-model statistics of simulated new-model sets (:func:`simulate_reference`).

    Attributes
    ----------
    set_index : ndarray of int, shape (R * n,)
        The reference set of each simulated model.
    p_above_info, p_above_calibration, hard_accuracy : ndarray, shape (R * n,)
        The statistics of :class:`~fluid_bayes.upkeep.newmodels.NewModelsCheck`'s table,
        computed alike (``p_above_calibration`` NaN without calibration abilities).
    n_sets, set_size : int
        ``R`` and ``n``.
    population : str
        Where the abilities came from (``"normal"`` also for ``"calibration"`` on a bank
        without calibration abilities).
    n_calibration : int
        Calibration subjects ``N`` (0: none).
    seed : int
        Seed of the simulation.
    key : str
        What it was made for (bank, seed, draws, answered items), checked on reuse.
    """

    set_index: np.ndarray
    p_above_info: np.ndarray
    p_above_calibration: np.ndarray
    hard_accuracy: np.ndarray
    n_sets: int
    set_size: int
    population: str
    n_calibration: int
    seed: int
    key: str = ""

    def counts(self, flags: np.ndarray) -> np.ndarray:
        """Number of flagged models per reference set, ``(R,)``."""
        return np.bincount(self.set_index, weights=flags.astype(float), minlength=self.n_sets)

    def to_dict(self) -> dict[str, Any]:
        """How the reference was made (the distributions are in the advice's tests)."""
        return {"n_sets": self.n_sets, "set_size": self.set_size, "population": self.population,
                "n_calibration": self.n_calibration, "seed": self.seed}  # fmt: skip


def check_reference_options(reference_sets: int, population: str, seed: int) -> None:
    """Raise a one-line ``OptionError`` for a bad ``reference_sets``, ``population`` or ``seed``."""
    _SETS_RANGE.check(reference_sets, name="reference_sets")
    SEED.check(seed, name="seed")
    if population not in POPULATIONS:
        raise OptionError(f"population must be one of {', '.join(POPULATIONS)}, got {population!r}")


def simulate_reference(
    scorer: PosteriorScorer,
    *,
    a_true: np.ndarray,
    b_true: np.ndarray,
    answered: np.ndarray,
    hard: np.ndarray,
    theta_info_high: float,
    calibration_theta_max: float,
    calibration_theta: np.ndarray | None,
    n_sets: int = REFERENCE_SETS,
    population: Literal["calibration", "normal"] = "calibration",
    seed: int = 0,
    key: str = "",
) -> Reference:
    """Simulate ``n_sets`` new-model sets from the bank's own population and score them.

    Parameters
    ----------
    scorer : PosteriorScorer
        The scorer of the observed models (same draws, grid and prior).
    a_true, b_true : ndarray, shape (W, J)
        Posterior draws the worlds are drawn from (one per set, uniformly).
    answered : ndarray of bool, shape (n, J)
        Which items each observed model answered; sets have ``n`` models.
    hard : ndarray of bool, shape (J,)
        The hardest decile.
    theta_info_high, calibration_theta_max : float
        The thresholds of ``p_above_info`` and ``p_above_calibration`` (NaN: none).
    calibration_theta : ndarray, shape (W, N), optional
        The calibration abilities of each world's draw; None: ``N(0, 1)``.
    n_sets : int
        ``R``.
    population : {"calibration", "normal"}
        See the module docstring.
    seed : int
        Seed.
    key : str
        Recorded as :attr:`Reference.key`.

    Returns
    -------
    Reference
    """
    check_reference_options(n_sets, population, seed)
    rng = np.random.default_rng([seed, 19])
    n, n_j = answered.shape
    n_cal = 0 if calibration_theta is None else calibration_theta.shape[1]
    world = rng.integers(0, a_true.shape[0], n_sets)
    if population == "calibration" and n_cal >= 2:
        cal = calibration_theta[world]
        q75, q25 = np.percentile(cal, [75, 25], axis=1)
        spread = np.minimum(cal.std(axis=1), (q75 - q25) / 1.34)
        h = 0.9 * np.where(spread > 0, spread, cal.std(axis=1)) * n_cal**-0.2
        pick = rng.integers(0, n_cal, (n_sets, n))
        noise = h[:, None] * rng.standard_normal((n_sets, n))
        theta = np.take_along_axis(cal, pick, axis=1) + noise
    else:
        population = "normal"
        theta = rng.standard_normal((n_sets, n))
        if n_cal >= 2:
            zc = rng.standard_normal((n_sets, n_cal))
            theta = (theta - zc.mean(axis=1, keepdims=True)) / zc.std(axis=1, keepdims=True)
    has_cal = not math.isnan(calibration_theta_max)
    thresholds = np.array([theta_info_high, calibration_theta_max if has_cal else 0.0])
    total = n_sets * n
    theta, world_of = theta.ravel(), np.repeat(world, n)
    p_info, p_cal, hard_acc = np.empty(total), np.empty(total), np.empty(total)
    chunk = max(1, _CHUNK_CELLS // n_j)
    for lo in range(0, total, chunk):
        sl = slice(lo, min(total, lo + chunk))
        w = world_of[sl]
        x = a_true[w] * (theta[sl, None] - b_true[w])
        y = (rng.random(x.shape) < 1.0 / (1.0 + np.exp(-x))).astype(float)
        mask = answered[np.arange(sl.start, sl.stop) % n]
        y[~mask] = np.nan
        res = scorer.score(y, thresholds)
        p_info[sl], p_cal[sl] = res["above"][:, 0], res["above"][:, 1]
        hm = mask & hard
        with np.errstate(invalid="ignore", divide="ignore"):
            hard_acc[sl] = np.where(hm, y, 0.0).sum(axis=1) / hm.sum(axis=1)
    if not has_cal:
        p_cal[:] = np.nan
    return Reference(
        set_index=np.repeat(np.arange(n_sets), n),
        p_above_info=p_info,
        p_above_calibration=p_cal,
        hard_accuracy=hard_acc,
        n_sets=n_sets,
        set_size=n,
        population=population,
        n_calibration=n_cal,
        seed=seed,
        key=key,
    )


# ------------------------------------------------------------------------ tests
def tail_probability(observed: float, reference_counts: np.ndarray) -> float:
    """``(1 + #{reference counts >= observed}) / (R + 1)``: a valid Monte Carlo p-value."""
    ref = np.asarray(reference_counts)
    return float((1 + np.count_nonzero(ref >= observed)) / (ref.size + 1))


@dataclass(frozen=True)
class CountTest:
    """An observed count of new models against its reference distribution.

    Attributes
    ----------
    trigger : str
        ``"ceiling"``, ``"beyond"`` or ``"misfit"``.
    observed : int
        Flagged new models.
    needed : int
        The least count that may fire (the trigger's minimum size).
    tail_probability : float
        ``P(count >= observed)`` under the reference (:func:`tail_probability`).
    level : float
        The trigger fires when ``tail_probability <= level`` and ``observed >= needed``.
    fired : bool
    reference : str
        ``"simulated"`` (``n_sets`` posterior predictive sets) or ``"binomial"``
        (``Binomial(n, rate)``, the misfit trigger).
    n_sets : int
        Reference sets (0 for the binomial).
    mean : float
        Mean reference count.
    quantiles : dict
        Reference count quantiles ``{"0.5": ..., "0.9": ..., "0.95": ..., "0.99": ...,
        "max": ...}``.
    """

    trigger: str
    observed: int
    needed: int
    tail_probability: float
    level: float
    fired: bool
    reference: str
    n_sets: int
    mean: float
    quantiles: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}

    def describe(self) -> str:
        """One line: the observed count against its reference."""
        q = self.quantiles
        src = (f"{self.n_sets} simulated sets" if self.reference == "simulated"
               else "binomial")  # fmt: skip
        return (f"reference ({src}): mean {self.mean:.2f}, median {q['0.5']:g}, 95% "
                f"{q['0.95']:g}, 99% {q['0.99']:g}, max {q['max']:g}; P(count >= "
                f"{self.observed}) = {self.tail_probability:.4f}, level "
                f"{self.level:g}")  # fmt: skip


def count_test(
    trigger: str, observed: int, needed: int, level: float, reference_counts: np.ndarray
) -> CountTest:
    """Test ``observed`` against simulated reference counts (see :class:`CountTest`)."""
    ref = np.asarray(reference_counts, dtype=float)
    p = tail_probability(observed, ref)
    quantiles = {str(q): float(np.quantile(ref, q, method="higher")) for q in _QUANTILES}
    quantiles["max"] = float(ref.max())
    return CountTest(trigger=trigger, observed=int(observed), needed=int(needed),
                     tail_probability=p, level=float(level),
                     fired=bool(observed >= needed and p <= level), reference="simulated",
                     n_sets=int(ref.size), mean=float(ref.mean()), quantiles=quantiles)  # fmt: skip


def binomial_test(trigger: str, observed: int, needed: int, level: float, n: int,
                  rate: float) -> CountTest:  # fmt: skip
    """Test ``observed`` against ``Binomial(n, rate)`` (see :class:`CountTest`)."""
    from scipy.stats import binom

    p = float(binom.sf(observed - 1, n, rate))
    quantiles = {str(q): float(binom.ppf(q, n, rate)) for q in _QUANTILES}
    quantiles["max"] = float(n)
    return CountTest(trigger=trigger, observed=int(observed), needed=int(needed),
                     tail_probability=p, level=float(level),
                     fired=bool(observed >= needed and p <= level), reference="binomial",
                     n_sets=0, mean=float(n * rate), quantiles=quantiles)  # fmt: skip
