"""The paper's MAP in a session without a pass over the answers at every step.

Around a centre ``c`` the score of the log posterior is a power series in
``d = theta - c``::

    T(c + d) = sum_i a_i y_i - sum_m C_m d^m / m! - (c + d - mu0) prec0,
    C_m = sum_i a_i^(m+1) sigma^(m)(a_i (c - b_i)),

with ``sigma^(m)`` the m-th derivative of the logistic function, a polynomial of
degree ``m + 1`` in ``p = sigma`` (:data:`SIGMA_POLY`). A session keeps ``C_0 ..
C_{K+1}`` at its centre: a new answer adds its terms in O(K) (one ``exp``), and the
next MAP is the root of the degree-``K`` polynomial, found by Newton's method in O(K)
per iteration. Taylor's theorem bounds what the truncation leaves out,
``|R| <= S_{K+1} sum_i a_i^(K+2) |d|^(K+1) / (K+1)!`` with ``S_n = sup |sigma^(n)|``
(:data:`SIGMA_SUP`); the root is accepted when that bound moves it by less than
``ROOT_TOL``, and the abilities agree with :func:`fluid_bayes.adaptive.kernels.map_newton` to
that tolerance. Otherwise the session re-centres at its best guess (one pass over the
answers); at a bound of the ability range, or if the series still cannot vouch for the
root, :func:`~fluid_bayes.adaptive.kernels.map_newton` decides. Late in a session, when the
estimate moves by hundredths, most steps need no pass at all.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fluid_bayes.adaptive.kernels import expit, map_newton, mfi_argmax_ranked
from fluid_bayes.adaptive.stopping import GO_ON, stop_code

__all__ = [
    "ORDER",
    "ROOT_TOL",
    "SIGMA_POLY",
    "SIGMA_SUP",
    "replay_paper",
    "series_map_step",
    "series_state",
]

#: degree ``K`` of the score polynomial
ORDER = 8
#: largest change of the MAP that the neglected terms may cause
ROOT_TOL = 1e-12


def _sigma_polynomials(n: int) -> np.ndarray:
    """Coefficients (n + 1, n + 2): ``sigma^(m)(z) = sum_k P[m, k] p^k``, ``p = sigma(z)``.

    ``d/dz f(p) = f'(p) p (1 - p)``, so ``k c_k p^(k-1)`` moves to ``p^k`` and, with
    the opposite sign, to ``p^(k+1)``.
    """
    poly = np.zeros((n + 1, n + 2))
    poly[0, 1] = 1.0
    for m in range(1, n + 1):
        for k in range(1, m + 1):
            poly[m, k] += k * poly[m - 1, k]
            poly[m, k + 1] -= k * poly[m - 1, k]
    return poly


def _sup_abs(poly: np.ndarray) -> np.ndarray:
    """``sup_p |P_m(p)|`` over (0, 1) on a fine grid, widened by 5% for safety."""
    p = np.linspace(0.0, 1.0, 200_001)
    powers = p[None, :] ** np.arange(poly.shape[1])[:, None]
    return 1.05 * np.abs(poly @ powers).max(axis=1)


#: logistic derivatives ``0 .. ORDER + 2`` as polynomials in ``p``
SIGMA_POLY = _sigma_polynomials(ORDER + 2)
#: ``sup_z |sigma^(n)(z)|`` for ``n = 0 .. ORDER + 2`` (5% safety margin)
SIGMA_SUP = _sup_abs(SIGMA_POLY)
_FACTORIALS = np.array([math.factorial(m) for m in range(ORDER + 3)], dtype=np.float64)

# layout of a session's state vector
_CENTRE, _AY, _APOW, _C0 = 0, 1, 2, 3
_STATE_SIZE = _C0 + ORDER + 2


def series_state(centre: float = 0.0) -> np.ndarray:
    """An empty state (no answers) centred at ``centre``."""
    st = np.zeros(_STATE_SIZE)
    st[_CENTRE] = centre
    return st


@njit(cache=True, inline="always")
def _add(st, a, b, y):
    """Add one answer's terms at the state's centre (one ``exp``)."""
    p = expit(a * (st[_CENTRE] - b))
    n_m = st.size - _C0  # C_0 .. C_{K+1}
    ap = a
    for m in range(n_m):
        v = 0.0
        for k in range(m + 1, 0, -1):  # Horner; sigma^(m) has no constant term
            v = (v + SIGMA_POLY[m, k]) * p
        st[_C0 + m] += ap * v
        if m < n_m - 1:
            ap *= a
    st[_AY] += a * y
    st[_APOW] += ap * a  # a^(K+2), for the truncation bound


@njit(cache=True)
def _recentre(st, a, b, y, k, centre):
    """Recompute the state of the first ``k`` answers at a new centre (one pass)."""
    st[:] = 0.0
    st[_CENTRE] = centre
    for i in range(k):
        _add(st, a[i], b[i], y[i])


@njit(cache=True, inline="always")
def _score_series(st, mu0, prec0, d):
    """Score ``T`` (to degree ``K``) and ``H = -T'`` (with the ``C_{K+1}`` term) at ``d``."""
    c = st[_CENTRE]
    t = st[_AY] - (c + d - mu0) * prec0
    h = prec0
    dm = 1.0  # d^m / m!
    for m in range(ORDER + 1):
        t -= st[_C0 + m] * dm
        h += st[_C0 + m + 1] * dm
        dm *= d / (m + 1)
    return t, h


@njit(cache=True)
def _solve(st, mu0, prec0, d0):
    """Root ``d`` of the score polynomial from ``d0``; ``(d, H(d), ok)``.

    ``ok`` is False when Newton's method did not settle or lost the decreasing shape
    of the score.
    """
    c = st[_CENTRE]
    d = d0
    for _ in range(40):
        t, h = _score_series(st, mu0, prec0, d)
        if not h > 0.0:
            return d, h, False
        step = t / h
        d += step
        if abs(step) <= 1e-15 * (1.0 + abs(c + d)):
            h = _score_series(st, mu0, prec0, d)[1]
            return d, h, h > 0.0
    return d, 0.0, False


@njit(cache=True, inline="always")
def _vouched(st, d, h):
    """Whether the truncation bound at ``d`` moves the root by at most ``ROOT_TOL``."""
    bound = SIGMA_SUP[ORDER + 1] * st[_APOW] * abs(d) ** (ORDER + 1) / _FACTORIALS[ORDER + 1]
    return bound <= 0.5 * h * ROOT_TOL


@njit(cache=True)
def series_map_step(st, a, b, y, k, mu0, prec0, lo, hi, guess):
    """Add answer ``k - 1`` to the state and return the MAP of the first ``k`` and ``H``.

    ``guess`` starts the search (the previous MAP). Same result as ``map_newton`` to
    ``ROOT_TOL``; at a bound of ``[lo, hi]`` it is ``map_newton``'s.
    """
    _add(st, a[k - 1], b[k - 1], y[k - 1])
    c = st[_CENTRE]
    d, h, ok = _solve(st, mu0, prec0, guess - c)
    theta = c + d
    if ok and lo < theta < hi:
        if _vouched(st, d, h):
            return theta, h
        _recentre(st, a, b, y, k, theta)  # one pass, then the series is exact
        d, h, ok = _solve(st, mu0, prec0, 0.0)
        if ok and lo < theta + d < hi and _vouched(st, d, h):
            return theta + d, h
    theta, h = map_newton(a, b, y, k, mu0, prec0, lo, hi, min(max(guess, lo), hi))
    _recentre(st, a, b, y, k, theta)
    return theta, h


@njit(cache=True, parallel=True)
def replay_paper(
    answers,
    a,
    b,
    order,
    ranking,
    excluded,
    start,
    n_max,
    min_items,
    sd_stop,
    mu0,
    prec0,
    lo,
    hi,
):
    """The paper's adaptive procedure for many subjects at once (one thread per subject).

    Items by :func:`~fluid_bayes.adaptive.kernels.mfi_argmax_ranked`, abilities by
    :func:`series_map_step`.

    Parameters
    ----------
    answers : float64 (n_subjects, n_items)
        0/1 answers in bank item order, NaN where a subject has no answer (such items
        are unavailable to that subject: it gets the next best item it answered).
    a, b : float64 (n_items,)
        Point estimates.
    order : int64 (n_items,)
        Item indices by decreasing ``a``.
    ranking : tuple
        ``(ranked, ranked_info, g_lo, g_step, a_max)`` of :func:`mfi_argmax_ranked`.
    excluded : bool (n_items,)
        Items no session may use.
    start : float64 (n_subjects,)
        Ability at which the first item is chosen.
    n_max, min_items, sd_stop : int, int, float
        The stop rule, :meth:`~fluid_bayes.adaptive.stopping.StopRule.kernel_args`:
        each session stops where :func:`~fluid_bayes.adaptive.stopping.stop_code` says,
        the standard error ``1 / sqrt(H)`` standing for the posterior SD.
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
    ranked, ranked_info, g_lo, g_step, a_max = ranking
    items = np.full((n_subj, n_max), -1, dtype=np.int64)
    theta_out = np.full((n_subj, n_max), np.nan)
    se_out = np.full((n_subj, n_max), np.nan)
    for s in prange(n_subj):
        unavailable = excluded.copy()
        n_left = 0
        for j in range(n_items):
            if math.isnan(answers[s, j]):
                unavailable[j] = True
            if not unavailable[j]:
                n_left += 1
        ka = np.empty(n_max)
        kb = np.empty(n_max)
        ky = np.empty(n_max)
        theta = start[s]
        h = prec0
        first = np.zeros(ranked.shape[0], dtype=np.int64)
        st = np.zeros(_STATE_SIZE)
        st[_CENTRE] = theta
        for t in range(n_max):
            j = mfi_argmax_ranked(
                theta, a, b, order, unavailable, ranked, ranked_info, g_lo, g_step, a_max, first
            )
            if j < 0:
                break
            unavailable[j] = True
            n_left -= 1
            ka[t] = a[j]
            kb[t] = b[j]
            ky[t] = answers[s, j]
            theta, h = series_map_step(st, ka, kb, ky, t + 1, mu0, prec0, lo, hi, theta)
            items[s, t] = j
            theta_out[s, t] = theta
            se = 1.0 / math.sqrt(h)
            se_out[s, t] = se
            if stop_code(t + 1, se, n_left, n_max, min_items, sd_stop) != GO_ON:
                break
    return items, theta_out, se_out
