"""Compiled (numba) kernel of the ``epv`` selection rule: expected posterior variance.

For an item ``j`` and the ability posterior as weights ``w[s, g]`` over the joint
(draw, node) cells (:class:`~fluid_bayes.adaptive.ability.GridState`), a right answer
has predictive probability ``P = sum_sg w_sg p_jsg`` (``p_jsg = logistic(a_sj (theta_g
- b_sj))``) and the posterior after the answer ``y`` has weights ``w_sg p_jsg / P``
(``y = 1``) or ``w_sg (1 - p_jsg) / (1 - P)`` (``y = 0``). The expected posterior
variance of ability is ``P Var_1 + (1 - P) Var_0``; by the law of total variance it is
``Var - R`` with the *expected reduction*

    R_j = Var(E[theta | y_j]) = C_j^2 / (P_j (1 - P_j)),   C_j = sum_sg w_sg (theta_g - mu) p_jsg,

so :func:`variance_reduction` needs one pass over the cells per item, accumulating
``P`` and ``C``. On equally spaced nodes ``z = exp(-x)`` moves by a constant factor
from node to node, so it is carried by one multiplication (recomputed exactly every
16 nodes, and wherever it leaves ``(1e-300, 1e300)``) and ``p = 1 / (1 + z)``.

An item whose draws disagree (an uncertain ``a`` or ``b``) has a flatter ``p`` over
the cells that matter, hence a smaller covariance with ability: its answer is worth
correspondingly less.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["draw_ranges", "variance_reduction"]


@njit(cache=True)
def draw_ranges(w, rel):
    """Per draw, the node range ``[lo_s, hi_s)`` whose weights exceed ``rel * max(w)``.

    ``w`` (S, W) are joint weights; a draw with no such cell gets ``lo_s = hi_s = 0``.
    Returns two int64 (S,) arrays.
    """
    n_s, n_w = w.shape
    top = 0.0
    for s in range(n_s):
        for g in range(n_w):
            top = max(top, w[s, g])
    cut = rel * top
    lo = np.zeros(n_s, dtype=np.int64)
    hi = np.zeros(n_s, dtype=np.int64)
    for s in range(n_s):
        first = -1
        last = -1
        for g in range(n_w):
            if w[s, g] > cut:
                if first < 0:
                    first = g
                last = g
        if first >= 0:
            lo[s] = first
            hi[s] = last + 1
    return lo, hi


@njit(cache=True)
def variance_reduction(w, nodes, a, b, draws, items, lo, hi, step):
    """Expected reduction of the ability posterior's variance by each item's answer.

    Parameters
    ----------
    w : float64 (S', W)
        Joint posterior weights of the draws used (rows) and the window nodes
        (columns); normalized by the kernel (their total need not be 1).
    nodes : float64 (W,)
        The window's ability nodes.
    a, b : float64 (S, N)
        Item draws of the bank; row ``draws[r]`` belongs to row ``r`` of ``w``.
    draws : int64 (S',)
        Bank draw of each row of ``w``.
    items : int64 (K,)
        Candidate items (-1: none; scored ``-inf``).
    lo, hi : int64 (S',)
        Per row, the node range that carries weight (:func:`draw_ranges`).
    step : float
        The node spacing when equal (``exp`` carried from node to node), else 0.

    Returns
    -------
    float64 (K,)
        ``R_j = C_j^2 / (P_j (1 - P_j))`` (see the module docstring), 0 where the
        predictive probability is 0 or 1.
    """
    n_r = w.shape[0]
    total = 0.0
    m1 = 0.0
    for r in range(n_r):
        for g in range(lo[r], hi[r]):
            total += w[r, g]
            m1 += w[r, g] * nodes[g]
    mu = m1 / total
    out = np.empty(items.size)
    for k in range(items.size):
        j = items[k]
        if j < 0:
            out[k] = -np.inf
            continue
        p1 = 0.0
        c1 = 0.0
        for r in range(n_r):
            s = draws[r]
            asj = a[s, j]
            bsj = b[s, j]
            down = math.exp(-asj * step) if step > 0.0 else 1.0
            z = 0.0
            for g in range(lo[r], hi[r]):
                if step == 0.0 or (g - lo[r]) % 16 == 0 or not 1e-300 < z < 1e300:
                    z = math.exp(min(-asj * (nodes[g] - bsj), 700.0))
                else:
                    z *= down
                wp = w[r, g] / (1.0 + z)
                p1 += wp
                c1 += wp * (nodes[g] - mu)
        p1 /= total
        c1 /= total
        den = p1 * (1.0 - p1)
        out[k] = c1 * c1 / den if den > 0.0 else 0.0
    return out
