"""Rounds of k questions: the items a session proposes at once.

A harness (lm-eval, Inspect) pays a fixed cost per call, so a session proposes ``k``
items per round (:meth:`~fluid_bayes.adaptive.session.Session.next_items`) and takes
their answers in any order. A round is built one pick at a time by the session's own
selection rule (:mod:`fluid_bayes.adaptive.selection`: ``expected-fi``, ``mfi``, ``mpwi``
or ``random``), each pick excluded from the later ones; the joint rules differ in the
ability state and point each pick is chosen for:

``spread`` (default)
    The best item at each of ``k`` points spread over the ability posterior: its mean
    plus its SD times the standard normal quantiles of ``(t + 1/2) / k``.
``believer``
    Greedy with a fantasy update ("kriging believer"): after each pick, a copy of the
    ability state is updated with the pick's expected answer, the posterior predictive
    probability of a right answer as a fractional answer (likelihood
    ``p(theta)^y (1 - p(theta))^(1 - y)``), and the next pick is chosen for that state.
``believer-mode``
    The same with the most likely answer (1 if the predictive probability is >= 0.5,
    else 0) as the fantasy.
``top``
    The ``k`` best items of the criterion for the current state (no update).

With ``k = 1`` every rule is the session's single choice (:meth:`Session.next_item`):
the first pick of a round is chosen for the current state at the current point, and a
single spread point is the mean itself. ``random`` selection draws the same items under
every rule.

Which rule, measured (``benchmarks/rounds.py``, see ``benchmarks/README.md``): replayed
ChemBench (22 models) and MMLU-Redux (14) sessions, ``bayes`` and ``paper``, at k = 1, 5,
10, 20 with budgets of 20, 40 and 100 items. ``spread`` ranks as well as k = 1 or better
(mean Spearman with the all-items ability 0.950 / 0.953 / 0.949 at k = 5 / 10 / 20, k = 1
0.936) and loses least precision at large k (mean posterior SD +1.9% / +4.4% / +10.9%
against k = 1; at a 20-item budget +3.9% / +9.4% / +22%, where ``believer`` and ``top``
lose +3.6% / +13% / +55%), in 0.2-0.9 ms per round; the fantasy update of ``believer``
hardly moves the posterior mean, so its rounds are nearly ``top``'s, at 4-21 ms per round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import ndtri

from fluid_bayes.adaptive.options import ROUND_RULES

__all__ = ["ROUND_RULES", "plan_round", "spread_points"]


def spread_points(centre: float, sd: float, k: int) -> np.ndarray:
    """Ability points of the ``spread`` rule.

    Parameters
    ----------
    centre, sd : float
        Posterior mean (or the session's start point) and SD, ability scale.
    k : int
        Round size.

    Returns
    -------
    numpy.ndarray
        Shape ``(k,)``: ``centre + sd * z_t``, ``z_t`` the standard normal quantile of
        ``(t + 1/2) / k`` (ability scale, increasing); ``[centre]`` when ``k = 1``.
    """
    if k == 1:
        return np.array([float(centre)])
    return float(centre) + float(sd) * ndtri((np.arange(k) + 0.5) / k)


def plan_round(
    rule: str,
    k: int,
    *,
    choose: Callable[[Any, float | None, np.ndarray, int], int],
    believe: Callable[[Any, int, bool], Any],
    state: Any,
    theta: float,
    sd: float,
    unavailable: np.ndarray,
    step: int,
) -> list[int]:
    """Choose up to ``k`` distinct items for one round.

    Parameters
    ----------
    rule : {"believer", "believer-mode", "top", "spread"}
        Joint rule (module docstring).
    k : int
        Items wanted (>= 1); fewer come back when fewer are available.
    choose : callable
        ``choose(state, theta, unavailable, step)``: the session's selection rule, the
        bank index of the best item for ``state`` at ability ``theta`` (``None``: the
        state's posterior mean) among those not ``unavailable``; -1 if none is left.
        ``step`` keys the random choices.
    believe : callable
        ``believe(state, j, fractional)``: a *copy* of ``state`` updated with the
        expected answer to item ``j`` (``fractional``: the predictive probability;
        otherwise the most likely answer).
    state : GridState or MapState
        The session's ability state (never changed here).
    theta, sd : float
        Point at which the first pick is chosen (the session's) and the posterior SD.
    unavailable : numpy.ndarray
        Boolean ``(N,)``: items that may not be picked (not changed here).
    step : int
        Selection step of the first pick; pick ``t`` uses ``step + t``.

    Returns
    -------
    list of int
        Bank indices, in the order picked.
    """
    if rule not in ROUND_RULES:
        raise ValueError(f"unknown round rule {rule!r}; choose from {', '.join(ROUND_RULES)}")
    if k < 1:
        raise ValueError(f"a round needs k >= 1 items, got {k}")
    mask = np.array(unavailable, dtype=bool)
    points = spread_points(theta, sd, k) if rule == "spread" else None
    fantasy = rule in ("believer", "believer-mode")
    picks: list[int] = []
    for t in range(k):
        if points is not None:
            at = float(points[t])
        else:
            at = None if fantasy and t > 0 else theta
        j = int(choose(state, at, mask, step + t))
        if j < 0:
            break
        picks.append(j)
        mask[j] = True
        if fantasy and t < k - 1:
            state = believe(state, j, rule == "believer")
    return picks
