"""The array core of :mod:`fluid_bayes.upkeep.drift`: linking constants and drift flags.

Pure functions on numpy arrays: linking constants from paired anchor draws (one row per
posterior draw, ``theta_old = A theta_new + B``), and the Bayesian false-discovery-rate
choice of the flagged items from their drift probabilities. :mod:`fluid_bayes.upkeep.drift`
pairs the banks' draws, purifies the anchors and reports.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from fluid_bayes.exceptions import BankError

__all__ = ["drift_probabilities", "fdr_flags", "mean_sigma", "pair_draws", "stocking_lord"]

#: Abilities of the old scale at which Stocking-Lord compares the test characteristic
#: curves, and the square roots of their N(0, 1) weights.
_GRID = np.linspace(-4.0, 4.0, 41)
_SQRT_W = np.exp(-0.25 * _GRID**2) / np.sqrt(np.exp(-0.5 * _GRID**2).sum())


def mean_sigma(b_old: np.ndarray, b_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-sigma linking constants from anchor difficulties.

    Parameters
    ----------
    b_old, b_new : array_like, shape ``(..., n_anchors)``
        Paired difficulty draws of the anchors on the old and new scale.

    Returns
    -------
    A, B : numpy.ndarray, shape ``(...)``
        ``A = sd(b_old) / sd(b_new)`` (population SDs), ``B = mean(b_old) - A
        mean(b_new)``, so that ``theta_old = A theta_new + B``.
    """
    b_old, b_new = np.asarray(b_old, float), np.asarray(b_new, float)
    sd_new = b_new.std(axis=-1)
    if np.any(sd_new <= 0):
        raise BankError("the anchor difficulties of the new bank have no spread; cannot link")
    A = b_old.std(axis=-1) / sd_new
    return A, b_old.mean(axis=-1) - A * b_new.mean(axis=-1)


def stocking_lord(
    a_old: np.ndarray, b_old: np.ndarray, a_new: np.ndarray, b_new: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Stocking-Lord linking constants, one fit per row (draw).

    Parameters
    ----------
    a_old, b_old, a_new, b_new : array_like, shape ``(n_draws, n_anchors)`` or ``(n_anchors,)``
        Paired anchor parameters on the old and the new scale.

    Returns
    -------
    A, B : numpy.ndarray, shape ``(n_draws,)``
        Minimizers of the N(0, 1)-weighted squared gap of the test characteristic
        curves on the old scale, started from the mean-sigma values.
    """
    a_old, b_old, a_new, b_new = map(np.atleast_2d, (a_old, b_old, a_new, b_new))
    A, B = mean_sigma(b_old, b_new)
    for s in range(len(A)):
        t_old = expit(a_old[s] * (_GRID[:, None] - b_old[s])).sum(-1)
        start = [math.log(A[s]), B[s]] if np.isfinite(A[s]) and A[s] > 0 else [0.0, 0.0]
        A[s], B[s] = _tcc_fit(t_old, a_new[s], b_new[s], start)
    return A, B


def _tcc_fit(t_old: np.ndarray, a: np.ndarray, b: np.ndarray, start: list) -> tuple[float, float]:
    """``(A, B)`` of one draw: ``t_old`` against the new items' curve on the old scale."""

    def parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = (_GRID - x[1]) / math.exp(x[0])  # old-scale abilities on the new scale
        p = expit(a * (u[:, None] - b))
        return u, p.sum(-1), (a * p * (1 - p)).sum(-1)

    def resid(x: np.ndarray) -> np.ndarray:
        return _SQRT_W * (t_old - parts(x)[1])

    def jac(x: np.ndarray) -> np.ndarray:
        u, _, slope = parts(x)
        return np.column_stack([_SQRT_W * u * slope, _SQRT_W * slope / math.exp(x[0])])

    fit = least_squares(resid, start, jac=jac, method="lm", xtol=1e-10, ftol=1e-12)
    return math.exp(fit.x[0]), float(fit.x[1])


def fdr_flags(p: np.ndarray, fdr: float) -> np.ndarray:
    """The largest set of items whose posterior expected false-discovery share is <= ``fdr``.

    Item ``j`` is a true discovery with posterior probability ``p[j]``, a false one with
    ``1 - p[j]``; flagging a set ``S`` makes ``sum(1 - p[S])`` false flags in expectation
    and the expected share ``mean(1 - p[S])``. For a given size the smallest share is
    that of the most probable items, and the mean of the ascending ``1 - p`` can only
    grow with the size, so the largest admissible set is the longest admissible run of
    the items ranked by ``p`` (ties kept in their given order).

    Parameters
    ----------
    p : array_like, shape ``(n,)``
        Posterior probabilities that the items drifted, in [0, 1].
    fdr : float
        Largest accepted posterior expected share of false flags, in (0, 1).

    Returns
    -------
    numpy.ndarray of bool, shape ``(n,)``
        The flagged items (none when even the most probable has ``1 - p > fdr``).
    """
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    false = np.cumsum(1.0 - p[order])  # expected false flags of the top k, k = 1..n
    ok = np.flatnonzero(false <= fdr * np.arange(1, p.size + 1))
    k = int(ok[-1]) + 1 if ok.size else 0
    flags = np.zeros(p.size, dtype=bool)
    flags[order[:k]] = True
    return flags


def pair_draws(n_old: int, n_new: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened draw indices of two banks, paired in order.

    Parameters
    ----------
    n_old, n_new : int
        Draws (chains x draws) of the old and the new bank.
    seed : int
        Seed of the subsampling.

    Returns
    -------
    old, new : numpy.ndarray of int
        Equal-length sorted indices; the larger bank subsampled without replacement.
    """
    n = min(n_old, n_new)
    rng = np.random.default_rng([seed, n_old, n_new])
    old = np.arange(n) if n_old == n else np.sort(rng.choice(n_old, n, replace=False))
    new = np.arange(n) if n_new == n else np.sort(rng.choice(n_new, n, replace=False))
    return old, new


def drift_probabilities(
    delta_b: np.ndarray, delta_log_a: np.ndarray, threshold_b: float, threshold_log_a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior probabilities that items moved beyond the practical thresholds.

    Parameters
    ----------
    delta_b, delta_log_a : numpy.ndarray, shape ``(n_draws, n_items)``
        Paired draws of the changes of difficulty and of log discrimination.
    threshold_b, threshold_log_a : float
        The smallest changes that count.

    Returns
    -------
    p_drift, p_b, p_a : numpy.ndarray, shape ``(n_items,)``
        Shares of draws with either change beyond its threshold (the union, per draw),
        with the change of ``b`` beyond, and with the change of ``log a`` beyond.
    """
    moved_b, moved_a = np.abs(delta_b) > threshold_b, np.abs(delta_log_a) > threshold_log_a
    return (moved_b | moved_a).mean(axis=0), moved_b.mean(axis=0), moved_a.mean(axis=0)
