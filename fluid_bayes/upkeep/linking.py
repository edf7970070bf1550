"""Linking constants from paired anchor draws: the array core of :mod:`fluid_bayes.upkeep.drift`.

Pure functions on numpy arrays, one row per posterior draw; :mod:`fluid_bayes.upkeep.drift`
pairs the banks' draws, purifies the anchors and reports. ``theta_old = A theta_new + B``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from fluid_bayes.exceptions import BankError

__all__ = ["mean_sigma", "stocking_lord"]

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
