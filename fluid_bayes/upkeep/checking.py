"""Model checking of an item bank on the answers it was calibrated on.

:func:`check_bank` reads the calibration answers (:attr:`ItemBank.observed_data
<fluid_bayes.bank.ItemBank.observed_data>`, or ``data=``) and reports

- convergence: the fit's :class:`~fluid_bayes.calibration.diagnostics.ConvergenceReport`;
- posterior predictive checks: answers replicated from ``ppc_draws`` posterior draws of
  ``(theta, a, b)`` (missing answers stay missing) against the observed ones, per
  subject (total score; minus the log-likelihood of its answers, "person fit") and per
  item (proportion correct; item-rest correlation);
- PSIS-LOO (:func:`arviz_stats.loo`) of the log-likelihood summed per item
  (leave-one-item-out) and per subject (leave-one-subject-out), with Pareto k.

Every p-value is ``P(T(y_rep) >= T(y))`` with half the ties (mid-p) for a named
discrepancy ``T``; for person fit ``T`` is minus the log-likelihood, so a small p-value
means answers less likely than the model's own replicates (misfit).

What Pareto k says here (measured on the shipped ChemBench bank, 22 models x 2,854
items, 400 draws): the sums condition on the left-out group's own parameters
(``a_j, b_j`` or ``theta_i``), which its answers pin down far tighter than the
population does, so the importance ratios are heavy-tailed: 2,199 of 2,854 items and all
22 subjects had k above ArviZ's 0.62 (subjects k 3.6-9.5; still 3.5-9.4 with ``theta``
integrated out by Laplace, since each subject also informs every item). The PSIS elpd of
such groups is unreliable (exact leave-one-group-out needs refits); the PPC p-values
are the item and person fit to read, the item elpd ranks misfitting items.
:mod:`fluid_bayes.upkeep.advice` checks new models against
a bank and gives the keep / refit decision.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import log_expit

from fluid_bayes import irt
from fluid_bayes.calibration.diagnostics import ConvergenceReport
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.dims import CHAIN, DRAW, ITEM, SUBJECT
from fluid_bayes.exceptions import BankError, DataError
from fluid_bayes.reporting import join_ids, nan_to_none, records

if TYPE_CHECKING:
    from fluid_bayes.bank import ItemBank

__all__ = [
    "EXTREME_P",
    "LOO_DRAWS",
    "PPC_DRAWS",
    "BankCheck",
    "check_bank",
    "plot_bank_check",
    "plot_khat",
]

#: Posterior draws replicated for posterior predictive checks.
PPC_DRAWS = 200
#: At most this many draws (thinned evenly within chains) enter PSIS-LOO.
LOO_DRAWS = 1000
_MIN_LOO_DRAWS = 50
#: A posterior predictive p-value below this or above ``1 - EXTREME_P`` is extreme.
EXTREME_P = 0.025


def _mid_p(rep: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """``P(rep > obs) + P(rep == obs) / 2`` over axis 0 (NaN replicates left out)."""
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(rep)
        hits = np.where(ok, (rep > obs) + 0.5 * (rep == obs), 0.0).sum(axis=0)
        return np.where(np.isnan(obs), np.nan, hits / np.maximum(ok.sum(axis=0), 1))


# ------------------------------------------------------------------------ bank check
@dataclass(frozen=True, eq=False)
class BankCheck:
    """Model checks of a bank on its calibration answers (:func:`check_bank`).

    Attributes
    ----------
    convergence : ConvergenceReport
        The calibration fit's diagnostics (R-hat, ESS, divergences, E-BFMI).
    items : pandas.DataFrame
        Index ``item``: ``n_answered, prop_correct, ppc_p_prop`` (T = proportion
        correct), ``item_rest`` (observed item-rest correlation), ``ppc_p_item_rest``
        (T = item-rest correlation; near 1: the item separates the subjects less than
        the model predicts, e.g. a wrong answer key), ``elpd_loo`` (log score of the
        item's answers left out, nats), ``elpd_per_answer``, ``pareto_k``, ``b_mean``,
        ``a_mean``.
    subjects : pandas.DataFrame
        Index ``subject``: ``n_answered, score, ppc_p_score`` (T = number correct),
        ``person_fit_p`` (T = minus the log-likelihood), ``elpd_loo``, ``pareto_k``,
        ``theta_mean``.
    elpd_items, elpd_items_se, elpd_subjects, elpd_subjects_se : float
        PSIS-LOO totals (nats) and their standard errors.
    good_k : float
        ArviZ's Pareto k threshold for the number of draws used,
        ``min(1 - 1 / log10(S), 0.7)``.
    n_draws_ppc, n_draws_loo : int
        Posterior draws replicated, and used in PSIS-LOO.
    notes : tuple of str
        What the check noticed about its inputs.
    """

    convergence: ConvergenceReport
    items: pd.DataFrame
    subjects: pd.DataFrame
    elpd_items: float
    elpd_items_se: float
    elpd_subjects: float
    elpd_subjects_se: float
    good_k: float
    n_draws_ppc: int
    n_draws_loo: int
    notes: tuple[str, ...] = ()
    loo_items: Any = field(default=None, repr=False)
    loo_subjects: Any = field(default=None, repr=False)

    def _extreme(self, table: pd.DataFrame, col: str) -> list[str]:
        p = table[col]
        return [str(i) for i in table.index[(p < EXTREME_P) | (p > 1 - EXTREME_P)]]

    @property
    def items_ppc_extreme(self) -> list[str]:
        """Items with an extreme proportion-correct or item-rest p-value."""
        bad = set(self._extreme(self.items, "ppc_p_prop"))
        bad |= set(self._extreme(self.items, "ppc_p_item_rest"))
        return [i for i in self.items.index if i in bad]

    @property
    def items_bad_k(self) -> list[str]:
        """Items whose leave-one-item-out Pareto k exceeds ``good_k`` (worst first)."""
        k = self.items["pareto_k"]
        return [str(i) for i in k[k > self.good_k].sort_values(ascending=False).index]

    @property
    def subjects_bad_k(self) -> list[str]:
        """Subjects whose leave-one-subject-out Pareto k exceeds ``good_k``."""
        k = self.subjects["pareto_k"]
        return [str(i) for i in k[k > self.good_k].sort_values(ascending=False).index]

    @property
    def worst_items(self) -> pd.DataFrame:
        """The ten items with the lowest LOO log score per answer."""
        return self.items.sort_values("elpd_per_answer").head(10)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: diagnostics, counts, flagged items and subjects."""
        subj = self.subjects
        return {
            "convergence": {
                k: nan_to_none(v) if isinstance(v, float) else v
                for k, v in self.convergence.to_dict().items()
            },
            "n_subjects": len(subj),
            "n_items": len(self.items),
            "n_draws_ppc": self.n_draws_ppc,
            "n_draws_loo": self.n_draws_loo,
            "extreme_p": EXTREME_P,
            "n_items_ppc_extreme": len(self.items_ppc_extreme),
            "items_ppc_extreme": self.items_ppc_extreme,
            "n_subjects_score_extreme": len(self._extreme(subj, "ppc_p_score")),
            "n_subjects_person_misfit": int((subj["person_fit_p"] < EXTREME_P).sum()),
            "good_k": nan_to_none(self.good_k),
            "elpd_items": nan_to_none(self.elpd_items),
            "elpd_items_se": nan_to_none(self.elpd_items_se),
            "elpd_subjects": nan_to_none(self.elpd_subjects),
            "elpd_subjects_se": nan_to_none(self.elpd_subjects_se),
            "n_items_bad_pareto_k": len(self.items_bad_k),
            "items_bad_pareto_k": self.items_bad_k[:100],
            "n_subjects_bad_pareto_k": len(self.subjects_bad_k),
            "worst_items": records(self.worst_items),
            "subjects": records(subj),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        n_i, n_s = len(self.items), len(self.subjects)
        subj = self.subjects
        ext = self.items_ppc_extreme
        lines = [
            f"bank check: {n_s} calibration subjects x {n_i} items "
            f"({self.n_draws_ppc} draws replicated, {self.n_draws_loo} in PSIS-LOO)",
            "  " + str(self.convergence).replace("\n", "\n  "),
            f"  PPC items: {len(ext)} of {n_i} with an extreme p-value (proportion correct "
            f"or item-rest correlation, p < {EXTREME_P} or > {1 - EXTREME_P})"
            + (f": {join_ids(ext)}" if ext else ""),
            f"  PPC subjects: {len(self._extreme(subj, 'ppc_p_score'))} of {n_s} with an "
            f"extreme total-score p-value, {int((subj['person_fit_p'] < EXTREME_P).sum())} "
            f"with person-fit p < {EXTREME_P}",
            f"  LOO by item: elpd {self.elpd_items:.1f} (se {self.elpd_items_se:.1f}), "
            f"{len(self.items_bad_k)} of {n_i} items with Pareto k > {self.good_k:.2f}",
            f"  LOO by subject: elpd {self.elpd_subjects:.1f} (se {self.elpd_subjects_se:.1f}),"
            f" {len(self.subjects_bad_k)} of {n_s} subjects with Pareto k > {self.good_k:.2f}",
            "  worst items (LOO log score per answer): "
            + ", ".join(f"{i} ({r.elpd_per_answer:.2f}, k {r.pareto_k:.2f})"
                        for i, r in self.worst_items.head(5).iterrows()),
        ]  # fmt: skip
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _draw_index(n_draws: int, per_chain: int) -> np.ndarray:
    """Evenly spaced draw positions, the same in every chain."""
    return np.unique(np.linspace(0, n_draws - 1, min(per_chain, n_draws)).round().astype(int))


def _calibration(bank: ItemBank, data: ResponseMatrix | None) -> tuple[ResponseMatrix, list[str]]:
    notes = []
    if data is None:
        data = bank.observed_data
        if data is None:
            raise BankError(
                "the bank stores no calibration answers: pass data= (the answers it was "
                "fitted on) or attach them with ItemBank.with_observed(data)"
            )
    elif data.fingerprint() != bank.meta.data_fingerprint:
        notes.append(
            f"{data.report.source}: fingerprint differs from the bank's calibration data; "
            "checked against these answers anyway"
        )
    return data, notes


def check_bank(
    bank: ItemBank,
    data: ResponseMatrix | None = None,
    *,
    ppc_draws: int = PPC_DRAWS,
    loo_draws: int = LOO_DRAWS,
    seed: int = 0,
) -> BankCheck:
    """Check a bank: convergence, posterior predictive checks, PSIS-LOO by item and subject.

    Parameters
    ----------
    bank : ItemBank
        A bank with calibration abilities ``theta`` in its posterior (a joint fit, or
        a marginal fit's ability draws).
    data : ResponseMatrix, optional
        The calibration answers; default :attr:`ItemBank.observed_data`.
    ppc_draws : int
        Posterior draws replicated (a seeded random subset of the LOO draws).
    loo_draws : int
        At most this many draws, thinned evenly within chains, for PSIS-LOO (skipped,
        with a note, below 50 draws).
    seed : int
        Seed of the draw subset and of the replicated answers.

    Returns
    -------
    BankCheck

    Raises
    ------
    BankError
        No calibration answers, or no ``theta`` in the posterior.
    DataError
        Subjects of ``data`` without ability draws in the bank, or no bank item in it.
    """
    data, notes = _calibration(bank, data)
    post = bank.posterior
    if "theta" not in post:
        raise BankError("the bank has no calibration abilities (theta) to replicate answers")
    bank_subjects = [str(s) for s in post[SUBJECT].values]
    unknown = [s for s in data.subjects if s not in set(bank_subjects)]
    if unknown:
        raise DataError(
            f"{data.report.source}: {len(unknown)} subject(s) have no ability draws in the "
            f"bank: {join_ids(unknown)}"
        )
    col = {i: k for k, i in enumerate(data.items)}
    items = [i for i in bank.items if i in col]
    if not items:
        raise DataError(f"{data.report.source}: no item of the data is in the bank")
    if len(items) < bank.n_items:
        notes.append(f"{bank.n_items - len(items)} bank item(s) have no answers in the data")
    y = data.values[:, [col[i] for i in items]]
    mask = ~np.isnan(y)
    sign = np.where(y == 1.0, 1.0, -1.0)
    n_ch, n_dr = post.sizes[CHAIN], post.sizes[DRAW]
    keep = _draw_index(n_dr, -(-loo_draws // n_ch))
    a = post["a"].isel({DRAW: keep}).sel({ITEM: items}).transpose(CHAIN, DRAW, ITEM).values
    b = post["b"].isel({DRAW: keep}).sel({ITEM: items}).transpose(CHAIN, DRAW, ITEM).values
    th = post["theta"].isel({DRAW: keep}).sel({SUBJECT: list(data.subjects)})
    th = th.transpose(CHAIN, DRAW, SUBJECT).values
    n_s = n_ch * keep.size
    rng = np.random.default_rng(seed)
    ppc = set(rng.choice(n_s, min(ppc_draws, n_s), replace=False).tolist())
    n_sub, n_it = y.shape
    ll_item = np.zeros((n_ch, keep.size, n_it))
    ll_subj = np.zeros((n_ch, keep.size, n_sub))
    score_obs = np.where(mask, y, 0.0).sum(axis=1)
    n_ans = mask.sum(axis=0)
    prop_obs = np.where(mask, y, 0.0).sum(axis=0) / np.maximum(n_ans, 1)
    rest_obs = _item_rest(np.where(mask, y, 0.0), mask)
    reps: dict[str, list[np.ndarray]] = {k: [] for k in ("score", "prop", "rest", "ll", "llo")}
    for s in range(n_s):
        c, d = divmod(s, keep.size)
        x = a[c, d] * (th[c, d][:, None] - b[c, d])
        ll = np.where(mask, log_expit(sign * x), 0.0)
        ll_item[c, d] = ll.sum(axis=0)
        ll_subj[c, d] = ll.sum(axis=1)
        if s in ppc:
            yr = np.where(mask, rng.random(x.shape) < irt.expit(x), False).astype(float)
            reps["score"].append(yr.sum(axis=1))
            reps["prop"].append(yr.sum(axis=0) / np.maximum(n_ans, 1))
            reps["rest"].append(_item_rest(yr, mask))
            reps["ll"].append(-np.where(mask, log_expit((2 * yr - 1) * x), 0.0).sum(axis=1))
            reps["llo"].append(-ll_subj[c, d])
    rep = {k: np.stack(v) for k, v in reps.items()}
    if n_s >= _MIN_LOO_DRAWS:
        loo_i, loo_s = _loo(ll_item, ll_subj, items, list(data.subjects), post, keep)
    else:
        notes.append(f"PSIS-LOO skipped: {n_s} draws (needs {_MIN_LOO_DRAWS})")
        loo_i = loo_s = None
    nan = float("nan")
    point = bank.point_estimates().loc[items]
    item_table = pd.DataFrame(
        {
            "n_answered": n_ans,
            "prop_correct": prop_obs,
            "ppc_p_prop": _mid_p(rep["prop"], prop_obs),
            "item_rest": rest_obs,
            "ppc_p_item_rest": _mid_p(rep["rest"], rest_obs),
            "elpd_loo": _pointwise(loo_i, "elpd_i", n_it),
            "elpd_per_answer": _pointwise(loo_i, "elpd_i", n_it) / np.maximum(n_ans, 1),
            "pareto_k": _pointwise(loo_i, "pareto_k", n_it),
            "b_mean": point["b"].to_numpy(),
            "a_mean": point["a"].to_numpy(),
        },
        index=pd.Index(items, name=ITEM),
    )
    subj_table = pd.DataFrame(
        {
            "n_answered": mask.sum(axis=1),
            "score": score_obs,
            "ppc_p_score": _mid_p(rep["score"], score_obs),
            "person_fit_p": ((rep["ll"] > rep["llo"]) + 0.5 * (rep["ll"] == rep["llo"])).mean(
                axis=0
            ),
            "elpd_loo": _pointwise(loo_s, "elpd_i", n_sub),
            "pareto_k": _pointwise(loo_s, "pareto_k", n_sub),
            "theta_mean": th.mean(axis=(0, 1)),
        },
        index=pd.Index(list(data.subjects), name=SUBJECT),
    )
    conv = bank.convergence
    if conv.approximate:
        notes.append(f"no MCMC diagnostics: the bank's draws are {conv.sampler}")
    return BankCheck(
        convergence=conv,
        items=item_table,
        subjects=subj_table,
        elpd_items=nan if loo_i is None else float(loo_i.elpd),
        elpd_items_se=nan if loo_i is None else float(loo_i.se),
        elpd_subjects=nan if loo_s is None else float(loo_s.elpd),
        elpd_subjects_se=nan if loo_s is None else float(loo_s.se),
        good_k=nan if loo_i is None else float(loo_i.good_k),
        n_draws_ppc=len(ppc),
        n_draws_loo=0 if loo_i is None else n_s,
        notes=tuple(notes),
        loo_items=loo_i,
        loo_subjects=loo_s,
    )


def _pointwise(elpd, name: str, n: int) -> np.ndarray:
    return np.full(n, np.nan) if elpd is None else getattr(elpd, name).values


def _item_rest(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Correlation of each item's answers with the rest score, over its answerers.

    ``y`` (subjects, items) with 0 where missing; NaN for items with constant answers.
    """
    total = y.sum(axis=1)
    n = mask.sum(axis=0).astype(float)
    sx = y.sum(axis=0)
    sty = total @ y
    st, stt = total @ mask, (total**2) @ mask
    sr = st - sx  # rest score = total - own answer
    srr = stt - 2 * sty + sx
    sxr = sty - sx
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxr / n - sx * sr / n**2
        vx = sx / n - (sx / n) ** 2
        vr = srr / n - (sr / n) ** 2
        r = cov / np.sqrt(vx * vr)
    return np.where((vx > 1e-12) & (vr > 1e-12), r, np.nan)


def _loo(ll_item, ll_subj, items, subjects, post, keep):
    """PSIS-LOO of the per-item and per-subject log-likelihood sums (arviz_stats.loo)."""
    from arviz_stats import loo

    dims = (CHAIN, DRAW)
    coords = {CHAIN: post[CHAIN].values, DRAW: post[DRAW].values[keep]}
    hyper = [v for v in ("mu_b", "sigma_b", "mu_log_a", "sigma_log_a") if v in post]
    sub = post[[*hyper, "theta"]].isel({DRAW: keep}).assign_coords(coords)
    tree = xr.DataTree.from_dict(
        {
            "posterior": sub,
            "log_likelihood": xr.Dataset(
                {
                    "by_item": ((*dims, ITEM), ll_item),
                    "by_subject": ((*dims, SUBJECT), ll_subj),
                },
                coords={**coords, ITEM: items, SUBJECT: subjects},
            ),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k is reported, not warned about
        out = [loo(tree, var_name=v, pointwise=True) for v in ("by_item", "by_subject")]
    return out[0], out[1]


# ------------------------------------------------------------------------ plots
def plot_khat(check: BankCheck, *, by: Literal["item", "subject"] = "item"):
    """Pareto k of the leave-one-item-out (or -subject-out) PSIS-LOO (arviz-plots).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz_plots as azp

    elpd = check.loo_items if by == "item" else check.loo_subjects
    if elpd is None:
        raise ValueError("this check has no PSIS-LOO (too few draws)")
    pc = azp.plot_khat(elpd, threshold=check.good_k, backend="matplotlib")
    return pc.get_viz("figure")


def plot_bank_check(check: BankCheck):
    """Histograms of the item and subject PPC p-values, and k against LOO log score.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    bins = np.linspace(0, 1, 21)
    for col, label in (("ppc_p_prop", "proportion correct"), ("ppc_p_item_rest", "item-rest r")):
        axes[0].hist(check.items[col].dropna(), bins=bins, alpha=0.6, label=label)
    axes[0].set(xlabel="item PPC p-value", ylabel="items", title="items")
    axes[0].legend(fontsize=8)
    for col, label in (("ppc_p_score", "total score"), ("person_fit_p", "person fit")):
        axes[1].hist(check.subjects[col], bins=bins, alpha=0.6, label=label)
    axes[1].set(xlabel="subject PPC p-value", ylabel="subjects", title="subjects")
    axes[1].legend(fontsize=8)
    it = check.items
    axes[2].scatter(it["elpd_per_answer"], it["pareto_k"], s=5, alpha=0.5)
    axes[2].axhline(check.good_k, color="C3", ls="--", lw=0.8)
    axes[2].set(xlabel="LOO log score per answer (nats)", ylabel="Pareto k",
                title="leave-one-item-out")  # fmt: skip
    fig.tight_layout()
    return fig
