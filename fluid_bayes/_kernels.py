"""Compiled (numba) kernels of the paper's procedure: MAP ability and MFI selection.

The paper's estimator is the MAP of ``sum_j log p(y_j | theta) + log N(theta; mu0,
sigma0)`` over ``[lo, hi]`` with ``p = logistic(a (theta - b))`` (D = 1). Its score
``T(theta)`` is strictly decreasing, so the constrained maximum is the root of ``T``
clipped to the range. :func:`map_newton` finds it by Newton's method safeguarded by a
bracket; when the root lies beyond a bound it evaluates ``T`` at that bound once and
returns the bound (the reference instead spends all its Newton iterations there).

:func:`mfi_argmax` is the exact argmax of Fisher information ``a^2 p (1 - p)`` over the
available items with ties to the lowest index. It visits items in order of decreasing
``a`` and stops once ``a^2 / 4`` (an item's largest possible information) falls below
the best value found; an item whose bound ``a^2 / (4 + x^2)`` (``x = a (theta - b)``)
is below it is skipped without evaluating the logistic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "expit",
    "expit_pair",
    "grid_loglik_add",
    "grid_loglik_sum",
    "map_newton",
    "mfi_argmax",
    "replay_paper",
    "score_and_information",
]

# a^2 p q can exceed a^2 / 4 by rounding; the pruning bound is widened by this factor
_BOUND_SLACK = 1.0 + 1e-12


@njit(cache=True, inline="always")
def expit(x: float) -> float:
    """Stable logistic function."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@njit(cache=True, inline="always")
def expit_pair(x: float):
    """``(logistic(x), logistic(-x))`` with one ``exp``, both accurate in the tails."""
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    if x >= 0.0:
        return r, e * r
    return e * r, r


@njit(cache=True, inline="always")
def log_expit(x: float) -> float:
    """Stable ``log(logistic(x))``."""
    if x >= 0.0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


@njit(cache=True)
def grid_loglik_add(out, a, b, y, nodes):
    """Add one answer per session to grid log-likelihoods, in place.

    ``out`` (B, S, G) += log p(y_i | nodes, a[i, s], b[i, s]) for sessions ``i``;
    ``a, b`` are (B, S) draws of each session's new item, ``y`` (B,) its answers.
    Serial: one step's work (draws x a window of nodes) is too small for threads.
    """
    n_b, n_s, n_g = out.shape
    for i in range(n_b):
        sign = 1.0 if y[i] == 1.0 else -1.0
        for s in range(n_s):
            for g in range(n_g):
                out[i, s, g] += log_expit(sign * a[i, s] * (nodes[g] - b[i, s]))


@njit(cache=True, parallel=True)
def grid_loglik_sum(a, b, y, nodes):
    """Log-likelihood of all answers ``y`` (K,) per (draw, node): (S, G).

    ``a, b`` are (S, K) draws of the answered items.
    """
    n_s, n_k = a.shape
    n_g = nodes.size
    out = np.zeros((n_s, n_g))
    for k in prange(n_s * n_g):
        s = k // n_g
        g = k % n_g
        acc = 0.0
        for j in range(n_k):
            sign = 1.0 if y[j] == 1.0 else -1.0
            acc += log_expit(sign * a[s, j] * (nodes[g] - b[s, j]))
        out[s, g] = acc
    return out


@njit(cache=True)
def score_and_information(a, b, y, k, mu0, prec0, theta):
    """Score ``T`` and information ``H = -T'`` of the log posterior, first ``k`` items."""
    t = (mu0 - theta) * prec0
    h = prec0
    for i in range(k):
        p, q = expit_pair(a[i] * (theta - b[i]))
        t += a[i] * (y[i] - p)
        h += a[i] * a[i] * p * q
    return t, h


@njit(cache=True)
def map_newton(a, b, y, k, mu0, prec0, lo, hi, theta0):
    """MAP ability on ``[lo, hi]`` from the first ``k`` answers (see module docstring).

    Returns
    -------
    (float, float)
        The MAP and the posterior information ``H`` there (prior precision included).
    """
    theta = min(max(theta0, lo), hi)
    left, right = lo, hi
    lo_checked = False
    hi_checked = False
    h = prec0
    for _ in range(200):
        t, h = score_and_information(a, b, y, k, mu0, prec0, theta)
        if t == 0.0:
            return theta, h
        if t > 0.0:
            left = theta
        else:
            right = theta
        new = theta + t / h
        if new >= right or new <= left:
            if new >= hi and not hi_checked:
                hi_checked = True
                th, hh = score_and_information(a, b, y, k, mu0, prec0, hi)
                if th >= 0.0:
                    return hi, hh
            if new <= lo and not lo_checked:
                lo_checked = True
                tl, hl = score_and_information(a, b, y, k, mu0, prec0, lo)
                if tl <= 0.0:
                    return lo, hl
            new = 0.5 * (left + right)
        # Newton converges quadratically: after a step below 1e-7 the error of ``new``
        # is of order 1e-14 (H is smooth and bounded below by the prior precision)
        if abs(new - theta) <= 1e-7 * (1.0 + abs(theta)):
            return new, h
        theta = new
    return theta, h


@njit(cache=True)
def mfi_argmax(theta, a, b, order, unavailable):
    """Index of the available item of largest Fisher information at ``theta``.

    ``order`` lists item indices by decreasing ``a``. Ties go to the lowest index;
    returns -1 when no item is available.
    """
    best = -1.0
    best_j = -1
    for idx in range(order.size):
        j = order[idx]
        a2 = a[j] * a[j]
        if 0.25 * a2 * _BOUND_SLACK < best:
            break
        if unavailable[j]:
            continue
        x = a[j] * (theta - b[j])
        # p q = 1 / (2 + 2 cosh x) <= 1 / (4 + x^2): skip without an exp
        if a2 / (4.0 + x * x) * _BOUND_SLACK < best:
            continue
        p, q = expit_pair(x)
        info = a2 * p * q
        if info > best or (info == best and j < best_j):
            best = info
            best_j = j
    return best_j


@njit(cache=True, parallel=True)
def replay_paper(
    answers, a, b, order, excluded, start, n_max, min_items, sd_stop, mu0, prec0, lo, hi
):
    """The paper's adaptive procedure for many subjects at once (one thread per subject).

    Parameters
    ----------
    answers : float64 (n_subjects, n_items)
        0/1 answers in bank item order, NaN where a subject has no answer (such items
        are unavailable to that subject: it gets the next best item it answered).
    a, b : float64 (n_items,)
        Point estimates.
    order : int64 (n_items,)
        Item indices by decreasing ``a``.
    excluded : bool (n_items,)
        Items no session may use.
    start : float64 (n_subjects,)
        Ability at which the first item is chosen.
    n_max, min_items : int
        Most and least items per session.
    sd_stop : float
        Stop once the standard error ``1 / sqrt(H)`` falls below it (0 disables).
    mu0, prec0, lo, hi : float
        Prior mean and precision, ability range.

    Returns
    -------
    items : int64 (n_subjects, n_max)
        Administered item indices in order, -1 after a session stopped.
    theta, se : float64 (n_subjects, n_max)
        Provisional MAP and its standard error after each item (NaN after stopping).
    """
    n_subj = answers.shape[0]
    n_items = a.size
    items = np.full((n_subj, n_max), -1, dtype=np.int64)
    theta_out = np.full((n_subj, n_max), np.nan)
    se_out = np.full((n_subj, n_max), np.nan)
    for s in prange(n_subj):
        unavailable = excluded.copy()
        for j in range(n_items):
            if math.isnan(answers[s, j]):
                unavailable[j] = True
        ka = np.empty(n_max)
        kb = np.empty(n_max)
        ky = np.empty(n_max)
        theta = start[s]
        for t in range(n_max):
            j = mfi_argmax(theta, a, b, order, unavailable)
            if j < 0:
                break
            unavailable[j] = True
            ka[t] = a[j]
            kb[t] = b[j]
            ky[t] = answers[s, j]
            theta, h = map_newton(ka, kb, ky, t + 1, mu0, prec0, lo, hi, theta)
            items[s, t] = j
            theta_out[s, t] = theta
            se = 1.0 / math.sqrt(h)
            se_out[s, t] = se
            if sd_stop > 0.0 and t + 1 >= min_items and se < sd_stop:
                break
    return items, theta_out, se_out
