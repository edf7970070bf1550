"""Pure numpy functions for the two-parameter logistic (2PL) model.

All functions broadcast over leading axes (e.g. ``(chain, draw)``) and work in log
space where it matters. Units: ``theta`` and ``b`` are on the ability (logit) scale,
``a`` is a slope per unit of ability; probabilities are of a correct answer.

    p(correct | theta) = logistic(a * (theta - b))
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, logsumexp

__all__ = [
    "expit",
    "fisher_information",
    "grid_log_posterior",
    "icc",
    "log_likelihood_cells",
    "normal_grid",
    "unique_patterns",
]


def icc(theta: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Item characteristic curve: probability of a correct answer.

    Parameters
    ----------
    theta, a, b : array_like
        Ability, discrimination and difficulty; broadcast together.

    Returns
    -------
    numpy.ndarray
        ``logistic(a * (theta - b))`` in [0, 1], computed stably.
    """
    return expit(np.multiply(a, np.subtract(theta, b)))


def fisher_information(theta: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fisher information of a 2PL item at ``theta``: ``a**2 * p * (1 - p)``.

    Returns
    -------
    numpy.ndarray
        Information in units of 1 / ability**2 (never negative).
    """
    x = np.multiply(a, np.subtract(theta, b))
    # p (1 - p) as expit(x) * expit(-x): both factors accurate for large |x|
    return np.square(a) * expit(x) * expit(-x)


def log_likelihood_cells(
    y: np.ndarray, theta: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Log-likelihood of each 0/1 answer; missing answers (NaN) contribute 0.

    Returns
    -------
    numpy.ndarray
        ``y * log p + (1 - y) * log(1 - p)`` per cell, broadcast shape of the inputs.
    """
    x = np.multiply(a, np.subtract(theta, b))
    y = np.asarray(y, dtype=float)
    out = np.where(y == 1.0, log_expit(x), log_expit(-x))
    return np.where(np.isnan(y), 0.0, out)


def normal_grid(n_points: int = 121, half_width: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Equally spaced ability grid with log weights of the standard normal.

    Parameters
    ----------
    n_points : int
        Number of grid points (odd keeps 0 on the grid).
    half_width : float
        The grid spans ``[-half_width, half_width]`` on the ability scale.

    Returns
    -------
    nodes : numpy.ndarray
        Grid points, shape ``(n_points,)``.
    log_weights : numpy.ndarray
        Log of normalized N(0, 1) weights at the nodes (they sum to 1).
    """
    nodes = np.linspace(-half_width, half_width, n_points)
    logw = -0.5 * nodes**2
    return nodes, logw - logsumexp(logw)


def grid_log_posterior(
    responses: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    nodes: np.ndarray,
    log_prior: np.ndarray,
) -> np.ndarray:
    """Normalized log posterior of ability on a grid, for several answer patterns.

    Parameters
    ----------
    responses : numpy.ndarray
        Answers, shape ``(n_patterns, n_items)``; NaN = not asked.
    a, b : numpy.ndarray
        Item parameters, shape ``(..., n_items)`` (leading axes e.g. draws).
    nodes, log_prior : numpy.ndarray
        Grid and its log prior weights, shape ``(n_grid,)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n_patterns, n_grid)``; each row sums to 1 after ``exp``.
    """
    # (..., 1, 1, items) against (patterns, 1, items) and (grid, 1)
    x = a[..., None, None, :] * (nodes[:, None] - b[..., None, None, :])
    y = responses[:, None, :]
    ll = np.where(y == 1.0, log_expit(x), log_expit(-x))
    ll = np.where(np.isnan(y), 0.0, ll).sum(axis=-1) + log_prior
    return ll - logsumexp(ll, axis=-1, keepdims=True)


def unique_patterns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse identical answer rows (NaN-aware) into patterns and counts.

    Returns
    -------
    patterns : numpy.ndarray
        Shape ``(n_patterns, n_items)``, NaN kept.
    counts : numpy.ndarray
        How many rows share each pattern (float64).
    """
    coded = np.where(np.isnan(values), -1, values).astype(np.int8)
    uniq, counts = np.unique(coded, axis=0, return_counts=True)
    patterns = np.where(uniq < 0, np.nan, uniq.astype(float))
    return patterns, counts.astype(float)
