"""Simulated answer matrices from the 2PL, for parameter recovery and methods research.

Real item-level data of many models is scarce (8-22 models in the shipped sets), so
size and known truth come from here. Answers are drawn from the 2PL itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from fluid_bayes import irt
from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.data.responses import ResponseMatrix, from_array

__all__ = [
    "SimulatedData",
    "SimulatedRuns",
    "simulate_2pl",
    "simulate_bank",
    "simulate_training_runs",
    "to_sample_scale",
    "training_curve",
]


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


# -- banks and pretraining runs for methods research ----------------------------------


def simulate_bank(
    n_items: int,
    *,
    like=None,
    seed: int,
    chains: int = 2,
    draws: int = 100,
    mu_log_a: float = 0.0,
    sigma_log_a: float = 0.5,
    mu_b: float = 0.0,
    sigma_b: float = 1.0,
    sd_log_a: float = 0.2,
    sd_b: float = 0.3,
    prefix: str = "sim",
):
    """An item bank with posterior draws, shaped like a fitted bank or by given parameters.

    Each item gets a posterior *centre* and a posterior *shape*:

    - with ``like`` (a fitted :class:`~fluid_bayes.bank.ItemBank`): centres
      ``(log a, b)`` are drawn from a bivariate normal with the mean and covariance of
      the fitted bank's posterior means; each item borrows the posterior deviations
      ``draw - mean`` (in ``log a`` and ``b``, jointly, so banana shapes and the
      ``a``-``b`` correlation survive) of a randomly chosen fitted item, thinned to
      ``chains x draws``;
    - without: centres ``log a ~ N(mu_log_a, sigma_log_a)``, ``b ~ N(mu_b, sigma_b)``,
      deviations normal with SDs ``sd_log_a`` and ``sd_b``.

    The truth for simulated answers is then one posterior draw (see
    :func:`simulate_training_runs`), so the bank's posterior is, by construction, the
    right uncertainty about the item parameters that generated the answers.

    Parameters
    ----------
    n_items : int
        Items in the bank.
    like : ItemBank, optional
        Fitted bank to resemble.
    seed : int
        Seed (same seed, same bank).
    chains, draws : int
        Posterior size of the new bank (``draws`` per chain; at most the fitted bank's).
    mu_log_a, sigma_log_a, mu_b, sigma_b, sd_log_a, sd_b : float
        Populations and posterior SDs without ``like`` (ability scale).
    prefix : str
        Item ids are ``f"{prefix}_{k:05d}"``.

    Returns
    -------
    ItemBank
        ``kind="synthetic"``; calibration abilities N(0, 1) at 200 quantiles, so sessions
        start at 0 and the ``auto`` stopping threshold is defined.
    """
    from fluid_bayes.bank import ItemBank  # here: bank imports modules that import this one

    rng = np.random.default_rng(seed)
    if like is not None:
        la = np.log(like.a.transpose("chain", "draw", "item").values)
        bb = like.b.transpose("chain", "draw", "item").values
        if chains > la.shape[0]:
            raise ValueError(f"chains={chains} exceeds the fitted bank's {la.shape[0]}")
        if draws > la.shape[1]:
            raise ValueError(f"draws={draws} exceeds the fitted bank's {la.shape[1]} per chain")
        keep = np.linspace(0, la.shape[1] - 1, draws).round().astype(int)
        la, bb = la[:chains, keep], bb[:chains, keep]
        centre = np.stack([la.mean(axis=(0, 1)), bb.mean(axis=(0, 1))], axis=1)
        new = rng.multivariate_normal(centre.mean(axis=0), np.cov(centre.T), size=n_items)
        pick = rng.integers(0, centre.shape[0], size=n_items)
        log_a = new[:, 0] + (la[..., pick] - centre[pick, 0])
        b = new[:, 1] + (bb[..., pick] - centre[pick, 1])
        source = f"simulate_bank(like={like.config_hash}, seed={seed})"
    else:
        shape = (chains, draws, n_items)
        log_a = rng.normal(mu_log_a, sigma_log_a, n_items) + rng.normal(0, sd_log_a, shape)
        b = rng.normal(mu_b, sigma_b, n_items) + rng.normal(0, sd_b, shape)
        source = f"simulate_bank(seed={seed})"
    items = [f"{prefix}_{k:05d}" for k in range(n_items)]
    calib = pd.Series(norm.ppf((np.arange(200) + 0.5) / 200),
                      index=[f"calib{k:03d}" for k in range(200)])  # fmt: skip
    return ItemBank.from_draws(np.exp(log_a), b, items=items, source=source,
                               calibration_theta=calib)  # fmt: skip


@dataclass(frozen=True)
class SimulatedRuns:
    """Pretraining runs evaluated at checkpoints, with the truth behind them.

    Attributes
    ----------
    responses : ResponseMatrix
        Full answers, one subject per checkpoint (``f"{run}@step{step}"``); its
        ``subject_meta`` has ``run`` and ``step``.
    truth : pandas.DataFrame
        Per subject: ``run, step, theta`` (true ability, bank scale), ``draw`` (the
        bank posterior draw that generated the run's answers) and ``reference`` (the
        accuracy on a paired benchmark, for validity).
    """

    responses: ResponseMatrix
    truth: pd.DataFrame

    @property
    def reference(self) -> pd.Series:
        """The paired-benchmark accuracy per subject."""
        return self.truth["reference"]


def training_curve(step: np.ndarray, start: float, end: float, rate: float) -> np.ndarray:
    """Saturating ability curve ``end - (end - start) * exp(-rate * step / step.max())``."""
    frac = np.asarray(step, dtype=float) / float(np.max(step))
    return end - (end - start) * np.exp(-rate * frac)


def simulate_training_runs(
    bank,
    *,
    runs: int = 6,
    checkpoints: int = 80,
    seed: int,
    start: tuple[float, float] = (-2.5, 0.3),
    end: tuple[float, float] = (0.5, 0.8),
    rate: tuple[float, float] = (4.0, 1.0),
    noise_sd: float = 0.05,
    step_size: int = 1000,
    reference_items: int = 1000,
    reference_shift_sd: float = 0.3,
    reference_noise_sd: float = 0.1,
) -> SimulatedRuns:
    """Pretraining runs whose ability rises along a saturating curve, answering ``bank``.

    Run ``r`` has ability ``theta_r(t) = training_curve(t, s_r, e_r, k_r) + eps_t`` at its
    checkpoints ``t = step_size, 2 step_size, ...``, with ``s_r ~ N(*start)``,
    ``e_r ~ N(*end)`` (sorted so that ``e_r > s_r + 0.5``), ``k_r ~ N(*rate)`` (at least
    0.5) and checkpoint noise ``eps_t ~ N(0, noise_sd)``. Each run answers every item
    from the 2PL at one posterior draw of the bank (drawn per run), not at the point
    estimates: the bank's own uncertainty is part of the simulation.

    The reference for validity is a paired benchmark measuring a related ability:
    ``theta + u_r + v_t`` (``u_r ~ N(0, reference_shift_sd)`` per run,
    ``v_t ~ N(0, reference_noise_sd)`` per checkpoint) answered on ``reference_items``
    fresh items from the bank's point-estimate population; its accuracy is the reference.

    Parameters
    ----------
    bank : ItemBank
        The bank answered (e.g. from :func:`simulate_bank`).
    runs, checkpoints : int
        Number of runs and checkpoints per run.
    seed : int
        Seed (same seed, same runs).
    start, end, rate : tuple of float
        ``(mean, sd)`` of each run's initial ability, final ability and curve rate.
    noise_sd : float
        Checkpoint-to-checkpoint ability noise.
    step_size : int
        Training steps between checkpoints.
    reference_items, reference_shift_sd, reference_noise_sd
        The paired benchmark (see above).

    Returns
    -------
    SimulatedRuns
    """
    if runs < 1 or checkpoints < 1:
        raise ValueError(f"runs and checkpoints must be >= 1, got {runs} and {checkpoints}")
    rng = np.random.default_rng(seed)
    draws = BankArrays.from_bank(bank)  # (draw, item), chains flattened
    av, bv = draws.a, draws.b
    la_pt, b_pt = np.log(av).mean(axis=0), bv.mean(axis=0)
    ref_la = rng.normal(la_pt.mean(), la_pt.std(), reference_items)
    ref_b = rng.normal(b_pt.mean(), b_pt.std(), reference_items)
    steps = step_size * np.arange(1, checkpoints + 1)
    values, subjects, rows = [], [], []
    for r in range(runs):
        s0 = rng.normal(*start)
        e0 = max(rng.normal(*end), s0 + 0.5)
        k = max(rng.normal(*rate), 0.5)
        theta = training_curve(steps, s0, e0, k) + rng.normal(0.0, noise_sd, checkpoints)
        d = int(rng.integers(av.shape[0]))
        p = irt.icc(theta[:, None], av[d][None, :], bv[d][None, :])
        values.append((rng.random(p.shape) < p).astype(float))
        u = rng.normal(0.0, reference_shift_sd)
        th_ref = theta + u + rng.normal(0.0, reference_noise_sd, checkpoints)
        p_ref = irt.icc(th_ref[:, None], np.exp(ref_la)[None, :], ref_b[None, :])
        ref = (rng.random(p_ref.shape) < p_ref).mean(axis=1)
        for t in range(checkpoints):
            sid = f"run{r}@step{int(steps[t])}"
            subjects.append(sid)
            rows.append({"subject": sid, "run": f"run{r}", "step": float(steps[t]),
                         "theta": theta[t], "draw": d, "reference": ref[t]})  # fmt: skip
    truth = pd.DataFrame(rows).set_index("subject")
    data = from_array(
        np.concatenate(values), subjects=subjects, items=list(bank.items),
        subject_meta=truth[["run", "step"]],
        source=f"simulate_training_runs(seed={seed})",
    )  # fmt: skip
    return SimulatedRuns(responses=data, truth=truth)
