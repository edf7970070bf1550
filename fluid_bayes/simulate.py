"""Simulated answer matrices from the 2PL, for parameter recovery and methods research.

Real item-level data of many models is scarce (8-22 models in the shipped sets), so
size and known truth come from here. Answers are drawn from the 2PL itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import irt
from .responses import ResponseMatrix, from_array

__all__ = ["SimulatedData", "simulate_2pl", "to_sample_scale"]


@dataclass(frozen=True)
class SimulatedData:
    """Answers with the true parameters that generated them.

    Attributes
    ----------
    responses : ResponseMatrix
        The simulated 0/1 answers.
    theta, a, b : numpy.ndarray
        True abilities (per subject), discriminations and difficulties (per item).
    """

    responses: ResponseMatrix
    theta: np.ndarray
    a: np.ndarray
    b: np.ndarray


def simulate_2pl(
    n_subjects: int,
    n_items: int,
    *,
    seed: int,
    mu_b: float = 0.0,
    sigma_b: float = 1.0,
    mu_log_a: float = 0.0,
    sigma_log_a: float = 0.3,
    missing: float = 0.0,
) -> SimulatedData:
    """Draw abilities ~ N(0, 1), item parameters from their populations, and answers.

    Parameters
    ----------
    n_subjects, n_items : int
        Matrix size.
    seed : int
        Seed of the generator (same seed, same data).
    mu_b, sigma_b, mu_log_a, sigma_log_a : float
        Item populations: ``b ~ N(mu_b, sigma_b)``, ``log a ~ N(mu_log_a, sigma_log_a)``.
    missing : float
        Probability that a cell is missing (at random).

    Returns
    -------
    SimulatedData
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n_subjects)
    b = rng.normal(mu_b, sigma_b, size=n_items)
    a = np.exp(rng.normal(mu_log_a, sigma_log_a, size=n_items))
    p = irt.icc(theta[:, None], a[None, :], b[None, :])
    y = (rng.random(p.shape) < p).astype(float)
    if missing > 0:
        y[rng.random(y.shape) < missing] = np.nan
    data = from_array(
        y,
        subjects=[f"s{i:04d}" for i in range(n_subjects)],
        items=[f"i{j:05d}" for j in range(n_items)],
        source=f"simulate_2pl(seed={seed})",
    )
    return SimulatedData(responses=data, theta=theta, a=a, b=b)


def to_sample_scale(sim: SimulatedData) -> SimulatedData:
    """Express the true parameters on the scale of the sample's own abilities.

    The joint likelihood defines the ability scale by the calibration subjects
    (their abilities have mean 0 and SD 1); this maps the truth onto that scale:
    ``theta' = (theta - m) / s``, ``b' = (b - m) / s``, ``a' = a * s``.
    """
    m, s = sim.theta.mean(), sim.theta.std()
    return SimulatedData(
        responses=sim.responses,
        theta=(sim.theta - m) / s,
        a=sim.a * s,
        b=(sim.b - m) / s,
    )
