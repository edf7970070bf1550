"""New models against an existing bank: where they sit, whether they fit, the ceiling.

:func:`check_new_models` places new models (answers to bank items) on the bank's scale:
each one's ability posterior (grid over ability, mixture over item-parameter draws,
N(0, 1) prior on the calibration-sample scale, as :mod:`fluid_bayes.adaptive.ability`'s
``bayes``), two posterior predictive p-values of its answers, the bank's test
information where it sits, and whether it is **at the ceiling**: at least
``ceiling_prob`` of its posterior above ``theta_info_high`` (where the bank's test
information, above its peak, has fallen to half its maximum) *and* at least
``hard_accuracy`` of the hardest decile of items (by posterior mean difficulty)
answered right. Either alone is weaker evidence: a model can sit above the information
peak by luck of the prior, or solve hard items that the bank still resolves.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy.special import log_expit

from fluid_bayes import irt
from fluid_bayes.adaptive import kernels
from fluid_bayes.adaptive.ability import grid_summary, joint_weights, normal_log_prior
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.dims import CHAIN, DRAW, ITEM, SUBJECT
from fluid_bayes.exceptions import DataError, OptionError
from fluid_bayes.reporting import join_ids, nan_to_none, records
from fluid_bayes.upkeep.checking import PPC_DRAWS
from fluid_bayes.upkeep.reference import (
    REFERENCE_SETS,
    PosteriorScorer,
    Reference,
    check_reference_options,
    simulate_reference,
)

if TYPE_CHECKING:
    from fluid_bayes.bank import ItemBank

__all__ = [
    "CEILING_PROB",
    "HARD_ACCURACY",
    "HARD_QUANTILE",
    "NewModelsCheck",
    "check_new_models",
    "plot_new_models",
]

#: The hardest ``1 - HARD_QUANTILE`` of the bank's items (by posterior mean b).
HARD_QUANTILE = 0.9
#: at_ceiling: P(ability above the bank's upper half-information point) at least this...
CEILING_PROB = 0.9
#: ... and at least this share of the answered hardest-decile items right.
HARD_ACCURACY = 0.5
_GRID = np.linspace(-8.0, 8.0, 161)  # ability grid of information curves, coarse posteriors
_INFO_DRAWS = 50
_LOCATE_DRAWS = 10


# ------------------------------------------------------------------- new models
@dataclass(frozen=True, eq=False)
class NewModelsCheck:
    """New models on the bank's scale (:func:`check_new_models`).

    Attributes
    ----------
    table : pandas.DataFrame
        Index ``subject``: ``theta_mean, theta_sd, theta_hdi_low, theta_hdi_high``
        (ability scale), ``n_answered, accuracy, hard_accuracy`` (share right of the
        answered hardest-decile items), ``p_above_info`` (posterior P(ability >
        ``theta_info_high``)), ``p_above_calibration`` (P(ability > the best
        calibration subject's mean)); these two by
        :class:`~fluid_bayes.upkeep.reference.PosteriorScorer`, as for the reference
        sets, on a grid finer than the posterior SD), ``info_ratio`` (posterior mean of
        the bank's test information at its ability / the maximum), ``sd_ratio`` (its posterior SD /
        the calibration subjects' median), ``ppc_p`` (T = minus the log-likelihood of
        its answers given an (ability, item draw) pair of its posterior: small =
        misfit), ``ppc_p_hard`` (T = number right on the hardest decile: small = better
        there than its ability predicts), ``at_ceiling``. The replicates are drawn
        with another item draw than the one T is evaluated with, as the new answers
        did not inform the item posterior (the observed answers, too, come from items
        other than the evaluating draw).
    theta_info_max, theta_info_high : float
        Ability of the bank's maximum test information, and the ability above it
        where the information falls to half the maximum.
    info_max : float
        The maximum (1 / ability**2).
    hard_b : float
        Difficulty (posterior mean) above which items count as the hardest decile.
    calibration_theta_max : float
        The best calibration subject's ability (NaN if the bank has none).
    ceiling_prob, hard_accuracy_min : float
        Thresholds of ``at_ceiling``: ``p_above_info >= ceiling_prob`` and
        ``hard_accuracy >= hard_accuracy_min``.
    source : str
        Where the new answers came from.
    n_items_used : int
        Bank items with answers in the new data.
    extra_items : tuple of str
        Items of the new data not in the bank (ignored).
    skipped_subjects : tuple of str
        Calibration subjects found in the new data and left out.
    n_draws : int
        Item-parameter draws integrated over.
    info_curve : pandas.Series
        The bank's test information (index: ability grid).
    reference : Reference or None
        The same statistics for simulated sets of as many models from the bank's own
        population (:mod:`fluid_bayes.upkeep.reference`), against which
        :func:`~fluid_bayes.upkeep.advice.advise` judges the counts; None when not made.
    """

    table: pd.DataFrame
    theta_info_max: float
    theta_info_high: float
    info_max: float
    hard_b: float
    calibration_theta_max: float
    ceiling_prob: float
    hard_accuracy_min: float
    source: str
    n_items_used: int
    extra_items: tuple[str, ...]
    skipped_subjects: tuple[str, ...]
    n_draws: int
    info_curve: pd.Series = field(repr=False, default=None)  # type: ignore[assignment]
    reference: Reference | None = field(repr=False, default=None)

    @property
    def n_at_ceiling(self) -> int:
        """New models at the ceiling."""
        return int(self.table["at_ceiling"].sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the scale's landmarks and one record per new model."""
        return {
            "source": self.source,
            "n_new_models": len(self.table),
            "n_at_ceiling": self.n_at_ceiling,
            "theta_info_max": self.theta_info_max,
            "theta_info_high": self.theta_info_high,
            "info_max": self.info_max,
            "hard_b": self.hard_b,
            "calibration_theta_max": nan_to_none(self.calibration_theta_max),
            "ceiling_prob": self.ceiling_prob,
            "hard_accuracy_min": self.hard_accuracy_min,
            "n_items_used": self.n_items_used,
            "n_extra_items": len(self.extra_items),
            "extra_items": list(self.extra_items[:100]),
            "skipped_subjects": list(self.skipped_subjects),
            "n_draws": self.n_draws,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "new_models": records(self.table),
        }

    def __str__(self) -> str:
        lines = [
            f"{len(self.table)} new model(s) from {self.source} on {self.n_items_used} bank "
            f"items; test information peaks at ability {self.theta_info_max:+.2f}, half of "
            f"it at {self.theta_info_high:+.2f}; hardest decile b >= {self.hard_b:+.2f}; "
            f"best calibration subject {self.calibration_theta_max:+.2f}",
            f"  {'subject':<28} {'theta':>7} {'sd':>6} {'P>half':>7} {'hardacc':>7} "
            f"{'info':>5} {'ppc_p':>6} ceiling",
        ]
        for s, r in self.table.iterrows():
            lines.append(
                f"  {str(s)[:28]:<28} {r.theta_mean:+7.3f} {r.theta_sd:6.3f} "
                f"{r.p_above_info:7.3f} {r.hard_accuracy:7.3f} {r.info_ratio:5.2f} "
                f"{r.ppc_p:6.3f} {'YES' if r.at_ceiling else 'no'}"
            )
        if self.extra_items:
            lines.append(f"  {len(self.extra_items)} item(s) not in the bank ignored: "
                         f"{join_ids(self.extra_items)}")  # fmt: skip
        if self.skipped_subjects:
            lines.append("  calibration subjects left out (already in the bank): "
                         + join_ids(self.skipped_subjects))  # fmt: skip
        return "\n".join(lines)


def _calibration_ids(bank: ItemBank) -> set[str]:
    ids = {str(s) for s in bank.subjects.index}
    post = bank.posterior
    if SUBJECT in post.dims:
        ids |= {str(s) for s in post[SUBJECT].values}
    return ids


def _information_curve(a: np.ndarray, b: np.ndarray, nodes: np.ndarray = _GRID) -> np.ndarray:
    """Posterior-expected test information of all items on ``nodes``, ``(G,)``.

    ``a, b`` are ``(draws, items)``; information in 1 / ability**2.
    """
    out = np.zeros(nodes.size)
    for s in range(a.shape[0]):
        out += irt.fisher_information(nodes[:, None], a[s], b[s]).sum(axis=1)
    return out / a.shape[0]


def check_new_models(
    bank: ItemBank,
    new_data: ResponseMatrix,
    *,
    draws: int = PPC_DRAWS,
    seed: int = 0,
    calibration_subjects: Literal["error", "skip"] = "error",
    ceiling_prob: float = CEILING_PROB,
    hard_accuracy: float = HARD_ACCURACY,
    reference_sets: int | None = REFERENCE_SETS,
    population: Literal["calibration", "normal"] = "calibration",
    person_fit: bool = True,
    reference: Reference | None = None,
) -> NewModelsCheck:
    """Place new models on the bank's scale and say which are at its ceiling.

    Parameters
    ----------
    bank : ItemBank
        The bank.
    new_data : ResponseMatrix
        Answers of the new models; items matched to the bank by id.
    draws : int
        Item-parameter draws (a seeded random subset) integrated over, and replicates
        of each model's answers.
    seed : int
        Seed of the draw subset and the replicates.
    calibration_subjects : {"error", "skip"}
        What to do with calibration subjects found in ``new_data`` (their answers
        were fitted, so they are no test): raise, or leave them out and report them.
    ceiling_prob, hard_accuracy : float
        ``at_ceiling`` thresholds (see :class:`NewModelsCheck`).
    reference_sets : int or None
        Sets of as many models simulated from the bank's own population and posterior
        (:func:`~fluid_bayes.upkeep.reference.simulate_reference`), the reference of the
        refit advice's counts; default 199 (p-values in steps of 1/200). ``None``: none
        (the advice then falls back on the bare counts, and says so). Each set's true
        items are a posterior draw outside the ``draws`` that score (a scoring draw as
        the truth sharpens the mixture posterior: more models flagged than real answers
        give); a bank with fewer than 50 draws left over uses all its draws, which errs
        towards ``keep``.
    population : {"calibration", "normal"}
        The reference's ability population: the calibration subjects' abilities,
        kernel-smoothed (default), or the model's ``N(0, 1)`` on the calibration scale
        (see :mod:`fluid_bayes.upkeep.reference`).
    person_fit : bool
        Compute each model's posterior on its own grid, its HDI, ``info_ratio`` and the
        person-fit p-values (about 1 s a model on ChemBench's 2,854 items). ``False``:
        only what the refit counts need (mean and SD from the shared scorer; HDI,
        ``info_ratio`` and the p-values NaN), for large sets.
    reference : Reference, optional
        A reference made by an earlier call for as many models with the same answered
        items, bank, ``draws`` and ``seed`` (reused instead of simulated again).

    Returns
    -------
    NewModelsCheck

    Raises
    ------
    DataError
        No item of ``new_data`` is in the bank; calibration subjects in it (with
        ``"error"``); no subject left.
    """
    if reference_sets is not None:
        check_reference_options(reference_sets, population, seed)
    src = new_data.report.source
    col = {i: k for k, i in enumerate(new_data.items)}
    bank_items = bank.items
    used = [j for j, i in enumerate(bank_items) if i in col]
    if not used:
        raise DataError(
            f"{src}: none of its {new_data.n_items} items is in the bank ({bank.n_items} "
            f"items, e.g. {join_ids(bank_items[:3])}); wrong bank or wrong item ids?"
        )
    bank_set = set(bank_items)
    extra = tuple(i for i in new_data.items if i not in bank_set)
    calib = _calibration_ids(bank)
    repeated = [s for s in new_data.subjects if s in calib]
    if repeated and calibration_subjects == "error":
        raise DataError(
            f"{src}: {len(repeated)} subject(s) were calibration subjects of the bank (their "
            f"answers were fitted, so they test nothing): {join_ids(repeated)}; drop them or "
            "pass calibration_subjects='skip'"
        )
    subjects = [s for s in new_data.subjects if s not in calib]
    if not subjects:
        raise DataError(f"{src}: every subject is a calibration subject of the bank")
    rows = [new_data.subjects.index(s) for s in subjects]
    y_all = np.full((len(rows), bank.n_items), np.nan)
    y_all[:, used] = new_data.values[np.ix_(rows, [col[bank_items[j]] for j in used])]
    rng = np.random.default_rng(seed)
    a_all = bank.a.transpose(CHAIN, DRAW, ITEM).values.reshape(-1, bank.n_items)
    b_all = bank.b.transpose(CHAIN, DRAW, ITEM).values.reshape(-1, bank.n_items)
    pick = np.sort(rng.choice(a_all.shape[0], min(draws, a_all.shape[0]), replace=False))
    a_s, b_s = a_all[pick], b_all[pick]
    info, scorer = _tables(a_s, b_s)
    top = int(np.argmax(info))
    below = np.flatnonzero(info[top:] < 0.5 * info[top])
    theta_high = float(_GRID[top + below[0]]) if below.size else float(_GRID[-1])
    b_mean = b_all.mean(axis=0)
    hard = b_mean >= np.quantile(b_mean, HARD_QUANTILE)
    cal, nan = bank.subjects, float("nan")
    cal_max = float(cal["theta_mean"].max()) if "theta_mean" in cal and len(cal) else nan
    cal_sd = float(cal["theta_sd"].median()) if "theta_sd" in cal and len(cal) else nan
    answered = ~np.isnan(y_all)
    digest = hashlib.sha1(np.packbits(answered).tobytes()).hexdigest()[:16]
    key = f"{bank.config_hash}:{seed}:{len(pick)}:{digest}"
    if reference is not None and reference.key != key:
        raise OptionError(
            f"reference: made for another bank, seed, draws or set of answered items "
            f"({reference.set_size} models); leave it out to simulate one"
        )
    # the counted statistics, computed as for the reference sets (the same scorer)
    above = scorer.score(y_all, np.array([theta_high, 0.0 if math.isnan(cal_max) else cal_max]))
    table_rows = []
    for k, s in enumerate(subjects):
        if person_fit:
            rec = _score_one(y_all[k], a_s, b_s, hard, rng)
            nodes, w = rec.pop("_nodes"), rec.pop("_w")
            rec["info_ratio"] = float(w @ np.interp(nodes, _GRID, info) / info[top])
        else:
            rec = _counts_only(y_all[k], hard, above["theta_mean"][k], above["theta_sd"][k])
        rec["sd_ratio"] = rec["theta_sd"] / cal_sd
        table_rows.append({"subject": s, **rec})
    table = pd.DataFrame(table_rows).set_index("subject")
    table["p_above_info"] = above["above"][:, 0]
    table["p_above_calibration"] = nan if math.isnan(cal_max) else above["above"][:, 1]
    table["at_ceiling"] = (table["p_above_info"] >= ceiling_prob) & (
        table["hard_accuracy"] >= hard_accuracy
    )
    if reference is None and reference_sets is not None:
        rest = np.setdiff1d(np.arange(a_all.shape[0]), pick)
        worlds = rest if rest.size >= 50 else np.arange(a_all.shape[0])
        post = bank.posterior
        cal_theta = None
        if "theta" in post and SUBJECT in post["theta"].dims:
            th_all = post["theta"].transpose(CHAIN, DRAW, SUBJECT).values
            cal_theta = th_all.reshape(-1, th_all.shape[-1])[worlds]
        reference = simulate_reference(
            scorer, a_true=a_all[worlds], b_true=b_all[worlds], answered=answered, hard=hard,
            theta_info_high=theta_high, calibration_theta_max=cal_max,
            calibration_theta=cal_theta, n_sets=reference_sets, population=population,
            seed=seed, key=key,
        )  # fmt: skip
    return NewModelsCheck(
        table=table,
        theta_info_max=float(_GRID[top]),
        theta_info_high=theta_high,
        info_max=float(info[top]),
        hard_b=float(b_mean[hard].min()),
        calibration_theta_max=cal_max,
        ceiling_prob=ceiling_prob,
        hard_accuracy_min=hard_accuracy,
        source=src,
        n_items_used=len(used),
        extra_items=extra,
        skipped_subjects=tuple(repeated),
        n_draws=len(pick),
        info_curve=pd.Series(info, index=pd.Index(_GRID, name="theta"), name="information"),
        reference=reference,
    )


# the last few draws' information curves and scorers (they take seconds on a large bank)
_TABLES: dict[str, tuple[np.ndarray, PosteriorScorer]] = {}


def _tables(a_s: np.ndarray, b_s: np.ndarray) -> tuple[np.ndarray, PosteriorScorer]:
    """The test information on ``_GRID`` and a :class:`PosteriorScorer` of these draws."""
    h = hashlib.sha1(a_s.tobytes())
    h.update(b_s.tobytes())
    key = h.hexdigest()
    if key not in _TABLES:
        while len(_TABLES) >= 4:
            _TABLES.pop(next(iter(_TABLES)))
        info = _information_curve(a_s[:_INFO_DRAWS], b_s[:_INFO_DRAWS])
        _TABLES[key] = info, PosteriorScorer(a_s, b_s, float(info.max()))
    return _TABLES[key]


def _counts_only(y, hard, mean, sd) -> dict[str, Any]:
    """The table row of a model without its own posterior and person fit."""
    m = ~np.isnan(y)
    hm = hard & m
    nan = float("nan")
    return {"theta_mean": float(mean), "theta_sd": float(sd), "theta_hdi_low": nan,
            "theta_hdi_high": nan, "n_answered": int(m.sum()), "accuracy": float(y[m].mean()),
            "n_hard_answered": int(hm.sum()),
            "hard_accuracy": float(y[hm].mean()) if hm.any() else nan,
            "ppc_p": nan, "ppc_p_hard": nan, "info_ratio": nan}  # fmt: skip


def _score_one(y, a_s, b_s, hard, rng) -> dict[str, Any]:
    """Ability posterior (mixture over draws), hard-item accuracy and PPC of one model."""
    m = ~np.isnan(y)
    a, b, yy = np.ascontiguousarray(a_s[:, m]), np.ascontiguousarray(b_s[:, m]), y[m]
    # locate the posterior on the coarse grid with a few draws, then integrate over
    # all draws on 81 nodes spanning +-10 posterior SDs (at least +-0.5)
    few = slice(None, None, max(1, a.shape[0] // _LOCATE_DRAWS))
    ll = kernels.grid_loglik_sum(a[few], b[few], yy, _GRID)
    w = joint_weights(ll, normal_log_prior(_GRID), "mixture")
    est = grid_summary(_GRID, w.sum(axis=0)[None, :])[0]
    half = max(10 * est.sd, 0.5)
    nodes = np.linspace(est.mean - half, est.mean + half, 81)
    ll = kernels.grid_loglik_sum(a, b, yy, nodes)
    w = joint_weights(ll, normal_log_prior(nodes), "mixture")
    est = grid_summary(nodes, w.sum(axis=0)[None, :])[0]
    # posterior predictive: (draw, ability) pairs from the joint weights. The new
    # answers did not inform the item draws, so the replicates come from *another*
    # draw than the one the discrepancy is evaluated with, as the observed answers
    # come from the unknown true items (same-draw replicates made p-values of true-model
    # answers too small: 26% below 0.1 on 300 items, 10% with this)
    flat = w.ravel() / w.sum()
    idx = rng.choice(flat.size, size=a.shape[0], p=flat)
    si, gi = np.divmod(idx, nodes.size)
    other = (si + rng.integers(1, a.shape[0], si.size)) % a.shape[0] if a.shape[0] > 1 else si
    h = nodes[1] - nodes[0]
    th = nodes[gi] + rng.uniform(-h / 2, h / 2, gi.size)
    x = a[si] * (th[:, None] - b[si])
    x_true = a[other] * (th[:, None] - b[other])
    yrep = (rng.random(x.shape) < irt.expit(x_true)).astype(float)
    dev_obs = -np.where(yy == 1.0, log_expit(x), log_expit(-x)).sum(axis=1)
    dev_rep = -np.where(yrep == 1.0, log_expit(x), log_expit(-x)).sum(axis=1)
    hm = hard[m]
    hard_obs = yy[hm].sum()
    hard_rep = yrep[:, hm].sum(axis=1)
    return {
        "theta_mean": est.mean,
        "theta_sd": est.sd,
        "theta_hdi_low": est.hdi_low,
        "theta_hdi_high": est.hdi_high,
        "n_answered": int(m.sum()),
        "accuracy": float(yy.mean()),
        "n_hard_answered": int(hm.sum()),
        "hard_accuracy": float(yy[hm].mean()) if hm.any() else float("nan"),
        "ppc_p": float(np.mean((dev_rep > dev_obs) + 0.5 * (dev_rep == dev_obs))),
        "ppc_p_hard": float(np.mean((hard_rep > hard_obs) + 0.5 * (hard_rep == hard_obs))),
        "_nodes": nodes,
        "_w": w.sum(axis=0),
    }


def plot_new_models(new: NewModelsCheck, ax=None):
    """The bank's test information with the new models' 94% HDIs and ceiling landmarks.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    curve = new.info_curve
    ax.plot(curve.index, curve.values, color="0.3", label="test information")
    ax.axvline(new.theta_info_high, color="C3", ls="--", lw=0.8, label="half information")
    ax.axvline(new.hard_b, color="C1", ls=":", lw=0.8, label="hardest decile b")
    t = new.table.sort_values("theta_mean")
    ys = np.linspace(0.1, 0.9, len(t)) * new.info_max
    for y, (s, r) in zip(ys, t.iterrows(), strict=True):
        color = "C3" if r.at_ceiling else "C0"
        ax.plot([r.theta_hdi_low, r.theta_hdi_high], [y, y], color=color, lw=2)
        ax.plot(r.theta_mean, y, "o", color=color, ms=4)
        ax.annotate(str(s)[:24], (r.theta_hdi_high, y), fontsize=7, xytext=(3, -2),
                    textcoords="offset points")  # fmt: skip
    ax.set(xlabel="ability (bank scale)", ylabel="information (1 / ability²)")
    ax.legend(fontsize=8, loc="upper left")
    return ax.figure
