"""Compiled (numba) kernels of the paper's procedure: MAP ability and MFI selection.

The paper's estimator is the MAP of ``sum_j log p(y_j | theta) + log N(theta; mu0,
sigma0)`` over ``[lo, hi]`` with ``p = logistic(a (theta - b))`` (D = 1). Its score
``T(theta)`` is strictly decreasing, so the constrained maximum is the root of ``T``
clipped to the range. :func:`map_newton` finds it by Newton's method safeguarded by a
bracket (Halley steps: the curvature comes with the same ``exp``); when the root lies
beyond a bound it evaluates ``T`` at that bound once and returns the bound (the reference
instead spends all its Newton iterations there). In a session,
:mod:`fluid_bayes.adaptive.paper_kernels` finds most roots without a pass over the answers and
falls back on :func:`map_newton`.

:func:`mfi_argmax` is the exact argmax of Fisher information ``a^2 p (1 - p)`` over the
available items with ties to the lowest index. It visits items in order of decreasing
``a`` and stops once ``a^2 / 4`` (an item's largest possible information) falls below
the best value found; an item whose bound ``a^2 / (4 + x^2)`` (``x = a (theta - b)``)
is below it is skipped without evaluating the logistic. :func:`mfi_argmax_ranked` gets
the same answer from precomputed per-node rankings, usually after a handful of items.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "expit",
    "expit_pair",
    "expected_information",
    "grid_summaries",
    "top_candidates",
    "top_point_information",
    "grid_loglik_sum",
    "map_newton",
    "mean_icc",
    "mfi_argmax",
    "mfi_argmax_ranked",
    "sorted_weighted_hdi",
    "expected_tables",
]

# a^2 p q can exceed a^2 / 4 by rounding; the pruning bound is widened by this factor
_BOUND_SLACK = 1.0 + 1e-12
# fast-math flags that reorder sums and fuse multiply-adds, but keep NaN/inf semantics
_FAST_SUMS = {"reassoc", "contract", "arcp", "nsz"}


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


@njit(cache=True, parallel=True)
def expected_tables(a, b, nodes):
    """The bank's tables on the ability grid, in two compiled passes over every cell.

    Parameters
    ----------
    a, b : float64 (S, N)
        Item draws (item-major: one item's draws contiguous).
    nodes : float64 (G,)
        Ability grid.

    Returns
    -------
    info : float64 (G, N)
        Posterior-expected Fisher information ``mean_s a^2 p q`` per node and item.
    acc : float64 (S, G)
        Expected accuracy ``mean_j p`` over the items per draw and node.

    Each cell's ``p`` and ``q = 1 - p`` come from one ``exp(-|x|)`` (the stable logistic);
    the sums run in a fixed order (draws, then items), so the tables do not depend on
    the number of threads.
    """
    n_s, n_j = a.shape
    n_g = nodes.size
    info = np.zeros((n_g, n_j))
    for j in prange(n_j):  # an item's column: no other thread writes it
        for s in range(n_s):
            aj = a[s, j]
            bj = b[s, j]
            a2 = aj * aj
            for g in range(n_g):
                x = aj * (nodes[g] - bj)
                e = math.exp(-abs(x))
                info[g, j] += a2 * e / ((1.0 + e) * (1.0 + e))  # p q = e / (1 + e)^2
        for g in range(n_g):
            info[g, j] /= n_s
    acc = np.zeros((n_s, n_g))
    for s in prange(n_s):  # a draw's row
        for j in range(n_j):
            aj = a[s, j]
            bj = b[s, j]
            for g in range(n_g):
                x = aj * (nodes[g] - bj)
                e = math.exp(-abs(x))
                acc[s, g] += (1.0 if x >= 0.0 else e) / (1.0 + e)
        for g in range(n_g):
            acc[s, g] /= n_j
    return info, acc


@njit(cache=True)
def sorted_weighted_hdi(values_sorted, order, weights, prob):
    """Shortest ``prob`` interval of a weighted discrete distribution, presorted.

    ``order`` is the stable argsort of the values (flattened) and ``values_sorted`` the
    values in that order; ``weights`` is flat, aligned with the unsorted values, so a
    table sorted once (the bank's accuracy cells) serves every posterior over it
    (:func:`fluid_bayes.adaptive.ability.weighted_hdi` sorts per call). Weights of
    1e-15 or less are left out; over the rest, for each start the first end whose
    cumulative weight reaches ``prob`` of the total (less 1e-12) is found by a pointer
    that only moves forward, and the narrowest such interval is returned (the first of
    equal widths).

    Returns
    -------
    (float, float)
    """
    n = order.size
    v = np.empty(n)
    w = np.empty(n)
    m = 0
    for k in range(n):
        x = weights[order[k]]
        if x > 1e-15:
            v[m] = values_sorted[k]
            w[m] = x
            m += 1
    if m == 0:
        return np.nan, np.nan
    cum = np.empty(m + 1)
    cum[0] = 0.0
    for k in range(m):
        cum[k + 1] = cum[k] + w[k]
    mass = prob * cum[m]
    p = 0
    best_i, best_end, best = -1, -1, np.inf
    for i in range(m):
        target = cum[i] + mass - 1e-12
        while p <= m and cum[p] < target:
            p += 1
        end = p - 1
        if end >= m:
            break  # later starts need at least as far
        width = v[end] - v[i]
        if width < best:
            best_i, best_end, best = i, end, width
    if best_i < 0:
        return v[0], v[m - 1]
    return v[best_i], v[best_end]


@njit(cache=True)
def grid_summaries(nodes, weights, prob, n_starts):
    """Mean, SD and shortest-``prob`` interval of grid posteriors (rows of ``weights``).

    The density is piecewise constant, one cell of width ``h`` per node; the interval
    is the shortest among those starting at ``n_starts`` equally spaced lower tail
    masses in ``[0, 1 - prob]`` (ends by linear interpolation of the CDF, as
    ``numpy.interp``). Returns four (B,) arrays.
    """
    n_b, n_g = weights.shape
    if n_g < 2 or nodes.size != n_g:
        raise ValueError("grid summaries need at least 2 nodes, one per weight")
    h = nodes[1] - nodes[0]
    edges = np.empty(n_g + 1)
    edges[:n_g] = nodes - h / 2
    edges[n_g] = nodes[n_g - 1] + h / 2
    q_low = np.linspace(0.0, 1.0 - prob, n_starts)
    mean = np.empty(n_b)
    sd = np.empty(n_b)
    low = np.empty(n_b)
    high = np.empty(n_b)
    cdf = np.empty(n_g + 1)
    for r in range(n_b):
        m1 = 0.0
        m2 = 0.0
        cdf[0] = 0.0
        for g in range(n_g):
            wg = weights[r, g]
            m1 += wg * nodes[g]
            m2 += wg * nodes[g] * nodes[g]
            cdf[g + 1] = cdf[g] + wg
        cdf[n_g] = 1.0
        mean[r] = m1
        sd[r] = math.sqrt(max(m2 - m1 * m1, 0.0))
        lo = np.interp(q_low, cdf, edges)
        hi = np.interp(q_low + prob, cdf, edges)
        k = np.argmin(hi - lo)
        low[r] = lo[k]
        high[r] = hi[k]
    return mean, sd, low, high


@njit(cache=True, inline="always")
def _keep_top(vals, idx, count, v, j):
    """Insert score ``v`` of item ``j`` into the decreasing top list; the new count.

    Among equal scores the item inserted first (the lower index) stays ahead.
    """
    m = vals.size
    if count == m and not v > vals[m - 1]:
        return count
    p = min(count, m - 1)
    while p > 0 and vals[p - 1] < v:
        vals[p] = vals[p - 1]
        idx[p] = idx[p - 1]
        p -= 1
    vals[p] = v
    idx[p] = j
    return min(count + 1, m)


@njit(cache=True)
def top_candidates(table, nodes, theta, unavailable, m):
    """The ``m`` available items of largest interpolated score, per session.

    ``table`` (G, N) scores items at ``nodes``; each session's row is interpolated
    linearly at its ``theta`` (B,) (clipped to the nodes). ``unavailable`` (B, N).
    Returns (B, m) item indices in increasing order, padded with -1 when fewer than
    ``m`` items are available; among equal scores the lower index is kept.
    """
    n_b = theta.size
    n_g, n = table.shape
    out = np.full((n_b, m), -1, dtype=np.int64)
    vals = np.empty(m)
    idx = np.empty(m, dtype=np.int64)
    for i in range(n_b):
        t = min(max(theta[i], nodes[0]), nodes[n_g - 1])
        k = min(max(np.searchsorted(nodes, t) - 1, 0), n_g - 2)
        w = (t - nodes[k]) / (nodes[k + 1] - nodes[k])
        count = 0
        for j in range(n):
            if not unavailable[i, j]:
                v = (1.0 - w) * table[k, j] + w * table[k + 1, j]
                count = _keep_top(vals, idx, count, v, j)
        out[i, :count] = np.sort(idx[:count])
    return out


@njit(cache=True)
def top_point_information(theta, a, b, unavailable, m):
    """The ``m`` available items of largest point Fisher information at ``theta``.

    ``a, b`` (N,) point parameters; the information ``a^2 p (1 - p)``,
    ``p = logistic(a (theta - b))``, as :func:`fluid_bayes.irt.fisher_information`;
    ``unavailable`` (N,). Returns (m,) item indices in increasing order, padded with
    -1 when fewer than ``m`` items are available; among equal scores the lower index is
    kept.
    """
    out = np.full(m, -1, dtype=np.int64)
    vals = np.empty(m)
    idx = np.empty(m, dtype=np.int64)
    count = 0
    for j in range(a.size):
        if not unavailable[j]:
            e = math.exp(-abs(a[j] * (theta - b[j])))
            q = 1.0 + e
            count = _keep_top(vals, idx, count, a[j] * a[j] * e / (q * q), j)
    out[:count] = np.sort(idx[:count])
    return out


@njit(cache=True, parallel=True)
def mean_icc(theta, a, b):
    """Mean over items of ``logistic(a (theta_i - b))`` for each ``theta`` (M,): (M,)."""
    out = np.empty(theta.size)
    for i in prange(theta.size):
        acc = 0.0
        for j in range(a.size):
            acc += expit(a[j] * (theta[i] - b[j]))
        out[i] = acc / a.size
    return out


@njit(cache=True)
def expected_information(a, b, theta, items):
    """Information of ``items`` (B, K) at ``theta`` (B,), averaged over draws ``a, b`` (S, N)."""
    n_s = a.shape[0]
    n_b, n_k = items.shape
    out = np.empty((n_b, n_k))
    for i in range(n_b):
        for k in range(n_k):
            j = items[i, k]
            if j < 0:
                out[i, k] = -np.inf
                continue
            acc = 0.0
            for s in range(n_s):
                asj = a[s, j]
                p, q = expit_pair(asj * (theta[i] - b[s, j]))
                acc += asj * asj * p * q
            out[i, k] = acc / n_s
    return out


@njit(cache=True, parallel=True)
def grid_loglik_sum(a, b, y, nodes):
    """Log-likelihood of all answers ``y`` (K,) per (draw, node): (S, G).

    ``a, b`` are (S, K) draws of the answered items; a ``y`` strictly between 0 and 1
    counts as ``y log logistic(x) + (1 - y) log logistic(-x)`` (see
    :func:`fluid_bayes.adaptive.grid_kernels.grid_weight_step`).
    """
    n_s, n_k = a.shape
    n_g = nodes.size
    out = np.zeros((n_s, n_g))
    for k in prange(n_s * n_g):
        s = k // n_g
        g = k % n_g
        acc = 0.0
        for j in range(n_k):
            yj = y[j]
            if yj == 0.0 or yj == 1.0:
                sign = 1.0 if yj == 1.0 else -1.0
                acc += log_expit(sign * a[s, j] * (nodes[g] - b[s, j]))
            else:
                x = a[s, j] * (nodes[g] - b[s, j])
                acc += yj * log_expit(x) + (1.0 - yj) * log_expit(-x)
        out[s, g] = acc
    return out


@njit(cache=True, fastmath=_FAST_SUMS)
def _score_info_curvature(a, b, y, k, mu0, prec0, theta):
    """``T``, ``H = -T'`` and ``T''`` of the log posterior in one pass (one exp per item).

    The sums may be reassociated (``_FAST_SUMS``): a few ulp, ~20% faster.
    """
    t = (mu0 - theta) * prec0
    h = prec0
    c = 0.0
    for i in range(k):
        p, q = expit_pair(a[i] * (theta - b[i]))
        ai = a[i]
        t += ai * (y[i] - p)
        w = ai * ai * p * q
        h += w
        c -= ai * w * (q - p)
    return t, h, c


@njit(cache=True)
def map_newton(a, b, y, k, mu0, prec0, lo, hi, theta0):
    """MAP ability on ``[lo, hi]`` from the first ``k`` answers (see module docstring).

    Halley's method (Newton's when the curvature term is not small) safeguarded by a
    bracket. It stops once the last step ``s`` bounds the error of the new point by
    ``a_max^2 |s|^3 <= 1e-12`` (Halley's error is cubic in the previous one, with a
    constant below ``a_max^2``), about one pass over the answers per call when
    warm-started near the root.

    Returns
    -------
    (float, float)
        The MAP and the posterior information ``H`` there (prior precision included;
        carried from the last point evaluated by its derivative).
    """
    theta = min(max(theta0, lo), hi)
    a_max = 0.0
    for i in range(k):
        a_max = max(a_max, a[i])
    s_tol = (1e-12 / max(a_max * a_max, 1.0)) ** (1.0 / 3.0)
    left, right = lo, hi
    lo_checked = False
    hi_checked = False
    h = prec0
    for _ in range(200):
        t, h, c = _score_info_curvature(a, b, y, k, mu0, prec0, theta)
        if t == 0.0:
            return theta, h
        if t > 0.0:
            left = theta
        else:
            right = theta
        step = t / h
        den = 2.0 * h * h - t * c
        if abs(t * c) < h * h and den > 0.0:
            step = 2.0 * t * h / den
        new = theta + step
        if new >= right or new <= left:
            if new >= hi and not hi_checked:
                hi_checked = True
                th, hh, _ = _score_info_curvature(a, b, y, k, mu0, prec0, hi)
                if th >= 0.0:
                    return hi, hh
            if new <= lo and not lo_checked:
                lo_checked = True
                tl, hl, _ = _score_info_curvature(a, b, y, k, mu0, prec0, lo)
                if tl <= 0.0:
                    return lo, hl
            new = 0.5 * (left + right)
        elif abs(step) <= s_tol:
            return new, h - c * step  # H moved to the new point (dH/dtheta = -T'')
        if abs(new - theta) <= 1e-13 * (1.0 + abs(theta)):
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


@njit(cache=True)
def mfi_argmax_ranked(
    theta, a, b, order, unavailable, ranked, ranked_info, g_lo, g_step, a_max, first=None
):
    """:func:`mfi_argmax` through per-node rankings of the items (same result).

    ``ranked[g]`` lists the items (its first ``M``) by decreasing information at node
    ``g_lo + g g_step``, ``ranked_info[g]`` their information there. Since
    ``|d log I_j / d theta| <= a_j``, an item's information at ``theta`` is at most
    ``exp(a_max |theta - node|)`` times its value at the nearest node, so the scan of
    that node's ranking stops once this bound falls below the best value found. If
    the ``M`` ranked items do not settle it, the full scan decides.

    ``first`` (int64 (G,), optional) holds per node the position before which every
    ranked item is known to be unavailable; a session whose items only ever become
    unavailable passes the same array at every step, so used items at the top of a
    ranking are skipped once instead of at every step.
    """
    n_g, m = ranked.shape
    g = int(round((theta - g_lo) / g_step))
    g = min(max(g, 0), n_g - 1)
    factor = math.exp(a_max * abs(theta - (g_lo + g * g_step))) * _BOUND_SLACK
    best = -1.0
    best_j = -1
    start = 0
    if first is not None:
        start = first[g]
        while start < m and unavailable[ranked[g, start]]:
            start += 1
        first[g] = start
    for idx in range(start, m):
        if ranked_info[g, idx] * factor < best:
            return best_j
        j = ranked[g, idx]
        if unavailable[j]:
            continue
        p, q = expit_pair(a[j] * (theta - b[j]))
        info = a[j] * a[j] * p * q
        if info > best or (info == best and j < best_j):
            best = info
            best_j = j
    if m == a.size:  # every item was ranked: the scan was complete
        return best_j
    return mfi_argmax(theta, a, b, order, unavailable)
