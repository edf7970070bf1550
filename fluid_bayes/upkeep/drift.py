"""Linking a refitted bank onto an old bank's scale, and item-parameter drift.

The ability scale of a bank is set by its own calibration sample (abilities of mean 0
and SD 1), so a refit on old plus new models lands on another scale. With
``theta_old = A * theta_new + B`` the new bank's items on the old scale are
``b_linked = A * b_new + B`` and ``a_linked = a_new / A``.

Draw pairing: the constants are computed *per posterior draw*. The flattened
``(chain, draw)`` draws of the two banks are paired in order; when the counts differ,
the larger bank is subsampled without replacement to the smaller count by a seeded
generator. ``A`` and ``B`` thus have posterior draws, and drift probabilities carry
the linking uncertainty.

Methods: ``"mean-sigma"``, ``A = sd(b_old) / sd(b_new)`` and ``B = mean(b_old) - A
mean(b_new)`` over the anchors. ``"stocking-lord"``, per draw, ``(log A, B)`` minimizing
the squared gap of the test characteristic curves (expected number correct on the
anchors) at 41 abilities in [-4, 4] of the old scale weighted by the N(0, 1) density,
by :func:`scipy.optimize.least_squares` from the mean-sigma values. Per draw rather
than on posterior means so that both methods report the same kind of uncertainty.

Purification: drifted items would pull the link towards themselves. The link is
computed on all anchor candidates, each is tested with the drift rule, the flagged
ones are dropped and the link recomputed on the rest, until the flagged set repeats
(at most ``max_rounds``; a dropped item may come back). Fewer than five anchors left
is an error. The test is the report's own rule (FDR or ``prob``, below). It matters
most for wrong keys: a flipped item's slope collapses and its difficulty runs off,
which stretches the mean-sigma ``A``; unpurified, 28 % of the unchanged items were
then flagged in ``benchmarks/drift_fdr.py``, purified 0.2 %.

Drift rule: per common item and paired draw, ``delta_b = b_linked - b_old`` (ability
SD of the old scale) and ``delta_log_a = log a_linked - log a_old``; the item's drift
probability is ``P_j = P(|delta_b| > threshold_b or |delta_log_a| > threshold_log_a)``,
the share of draws in which either change passes its threshold. The union is taken per
draw because a flag of item ``j`` is false exactly when *neither* parameter moved beyond
its threshold, whose posterior probability is ``1 - P_j``; ``max(P(b), P(a))`` would
understate ``P_j`` and a sum would overstate it. ``P(b)`` and ``P(a)`` are reported too.

Flags (Bayesian false-discovery rate, the default): the items are ranked by ``P_j`` and
the largest top set whose mean ``1 - P_j`` (the posterior expected proportion of false
flags among the flagged) is at most ``fdr`` is flagged; ``fdr = 0.05`` by default. The
mean of the sorted ``1 - P_j`` can only grow down the ranking, so the largest admissible
set is the longest admissible top set (see :func:`~fluid_bayes.upkeep.linking.fdr_flags`).
The report gives the expected number of false flags (the sum of ``1 - P_j`` over the
flagged) and the smallest ``P_j`` flagged. With no item clearly moved the rule asks
``P_j >= 1 - fdr`` of the first flag; beside many certain flags it admits a few less
certain ones, as long as the expected share of false ones stays at most ``fdr``. The
alternative ``prob`` flags every item with ``P_j > prob``, one item at a time, with no
control of the number of false flags across items.

Thresholds: ``threshold_b = 0.5`` (half an ability SD, between the "moderate" 0.43 and
"large" 0.64 logit ETS DIF bands at ``a = 1``) and ``threshold_log_a = log 1.5``
(slope changed by half). The rule's recall and false flags on real fits are measured by
``benchmarks/drift_fdr.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fluid_bayes.bank import ItemBank, bank_hash
from fluid_bayes.dims import CHAIN, DRAW, ITEM
from fluid_bayes.exceptions import BankError
from fluid_bayes.ranges import Range
from fluid_bayes.upkeep.drift_report import (
    DEFAULT_FDR,
    INTERVAL_PROB,
    DriftReport,
    Linking,
    draw_summary,
)
from fluid_bayes.upkeep.linking import (
    drift_probabilities,
    fdr_flags,
    mean_sigma,
    pair_draws,
    stocking_lord,
)

__all__ = [
    "DEFAULT_FDR",
    "DEFAULT_THRESHOLD_B",
    "DEFAULT_THRESHOLD_LOG_A",
    "INTERVAL_PROB",
    "MIN_ANCHORS",
    "DriftReport",
    "Linking",
    "apply_linking",
    "drift",
    "fdr_flags",
    "link",
    "mean_sigma",
    "stocking_lord",
]

#: Drift threshold on difficulty (ability SD of the old scale).
DEFAULT_THRESHOLD_B = 0.5
#: Drift threshold on log discrimination (a 50 % change of slope).
DEFAULT_THRESHOLD_LOG_A = math.log(1.5)
#: Accepted ``fdr`` and ``prob`` values.
FDR_RANGE = Range(float, 0.0, 1.0, low_open=True, high_open=True)
#: Fewest anchor items a link is computed from.
MIN_ANCHORS = 5
METHODS = ("mean-sigma", "stocking-lord")


@dataclass(frozen=True)
class _Paired:
    """Common items' draws of both banks, paired draw by draw, shape ``(S, k)``."""

    items: tuple[str, ...]
    a_old: np.ndarray
    b_old: np.ndarray
    a_new: np.ndarray
    b_new: np.ndarray


def _flat(da: xr.DataArray, items: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    arr = da.transpose(CHAIN, DRAW, ITEM).sel({ITEM: list(items)}).values
    return arr.reshape(-1, len(items))[rows]


def _common(old: ItemBank, new: ItemBank) -> tuple[str, ...]:
    in_new = set(new.items)
    common = tuple(i for i in old.items if i in in_new)
    names = (f"old bank {old.config_hash} ({old.meta.source}) and new bank "
             f"{new.config_hash} ({new.meta.source})")  # fmt: skip
    if not common:
        raise BankError(f"no common items between the {names}: items are matched by id")
    if len(common) < MIN_ANCHORS:
        raise BankError(
            f"only {len(common)} common item(s) between the {names} ({list(common)}); "
            f"linking needs at least {MIN_ANCHORS}"
        )
    return common


def _paired(old: ItemBank, new: ItemBank, old_rows: np.ndarray, new_rows: np.ndarray) -> _Paired:
    items = _common(old, new)
    old_ab = [_flat(v, items, old_rows) for v in (old.a, old.b)]
    return _Paired(items, *old_ab, *(_flat(v, items, new_rows) for v in (new.a, new.b)))


def _deltas(A: np.ndarray, B: np.ndarray, p: _Paired) -> tuple[np.ndarray, np.ndarray]:
    """Draws of ``b_linked - b_old`` and ``log a_linked - log a_old``, shape ``(S, k)``."""
    delta_b = A[:, None] * p.b_new + B[:, None] - p.b_old
    delta_log_a = np.log(p.a_new) - np.log(A)[:, None] - np.log(p.a_old)
    return delta_b, delta_log_a


def _check_rule(threshold_b: float, threshold_log_a: float, fdr: float, prob: float | None):
    positive = Range(float, 0.0, low_open=True)
    positive.check(threshold_b, name="threshold_b")
    positive.check(threshold_log_a, name="threshold_log_a")
    FDR_RANGE.check(fdr, name="fdr")
    if prob is not None:
        FDR_RANGE.check(prob, name="prob")


def _flags(p: np.ndarray, fdr: float, prob: float | None) -> np.ndarray:
    """The flagged items: the FDR rule, or ``p > prob`` when ``prob`` is given."""
    return p > prob if prob is not None else fdr_flags(p, fdr)


def _constants(method: str, p: _Paired, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if method == "mean-sigma":
        return mean_sigma(p.b_old[:, cols], p.b_new[:, cols])
    return stocking_lord(p.a_old[:, cols], p.b_old[:, cols], p.a_new[:, cols], p.b_new[:, cols])


# --------------------------------------------------------------- public API
def link(
    old: ItemBank,
    new: ItemBank,
    *,
    method: str = "mean-sigma",
    anchors: list[str] | tuple[str, ...] | None = None,
    purify: bool = True,
    threshold_b: float = DEFAULT_THRESHOLD_B,
    threshold_log_a: float = DEFAULT_THRESHOLD_LOG_A,
    fdr: float = DEFAULT_FDR,
    prob: float | None = None,
    max_rounds: int = 10,
    seed: int = 0,
) -> Linking:
    """Constants that put ``new`` on the scale of ``old``, from their common items.

    Parameters
    ----------
    old, new : ItemBank
        The reference bank and the refitted bank; items are matched by id.
    method : {"mean-sigma", "stocking-lord"}
        Linking method (see the module docstring).
    anchors : sequence of str, optional
        Anchor candidates (common item ids); default every common item.
    purify : bool
        Iteratively drop drifted anchors and re-link until the flagged set is stable.
    threshold_b, threshold_log_a, fdr : float
        The drift rule of the purification (see :func:`drift`).
    prob : float, optional
        Purify by the per-item rule ``p_drift > prob`` instead (see :func:`drift`).
    max_rounds : int
        Most linking rounds of the purification.
    seed : int
        Seed of the draw pairing when the banks hold different numbers of draws.

    Returns
    -------
    Linking
        Draws of ``A`` and ``B`` with ``theta_old = A theta_new + B``.

    Raises
    ------
    BankError
        No common items, fewer than five anchors (before or after purification), or
        anchor ids not common to both banks.
    """
    if method not in METHODS or max_rounds < 1:
        raise ValueError(f"method must be one of {METHODS} and max_rounds >= 1, got "
                         f"{method!r}, {max_rounds}")  # fmt: skip
    _check_rule(threshold_b, threshold_log_a, fdr, prob)
    old_rows, new_rows = pair_draws(old.n_draws, new.n_draws, seed)
    p = _paired(old, new, old_rows, new_rows)
    pos = {item: j for j, item in enumerate(p.items)}
    if anchors is None:
        pool = np.arange(len(p.items))
    else:
        unknown = [str(i) for i in anchors if i not in pos]
        if unknown:
            raise BankError(f"anchor item(s) not in both banks: {unknown[:10]}")
        pool = np.array(sorted({pos[i] for i in anchors}), dtype=int)
    excluded = np.zeros(len(pool), dtype=bool)
    rounds, stable = 0, True
    while True:
        use = pool[~excluded]
        if len(use) < MIN_ANCHORS:
            raise BankError(
                f"{len(use)} of {len(pool)} anchor candidates left after purification "
                f"(round {rounds}); linking needs at least {MIN_ANCHORS} items that did "
                "not drift: check that the banks measure the same thing, or pass anchors"
            )
        A, B = _constants(method, p, use)
        rounds += 1
        if not purify:
            break
        delta_b, delta_log_a = (d[:, pool] for d in _deltas(A, B, p))
        p_drift = drift_probabilities(delta_b, delta_log_a, threshold_b, threshold_log_a)[0]
        flagged = _flags(p_drift, fdr, prob)
        if np.array_equal(flagged, excluded):
            break
        if rounds >= max_rounds:
            stable = False
            break
        excluded = flagged
    purification = (
        {"rounds": rounds, "stable": stable, "max_rounds": max_rounds,
         "threshold_b": threshold_b, "threshold_log_a": threshold_log_a,
         "fdr": None if prob is not None else fdr, "prob": prob}
        if purify else {}
    )  # fmt: skip
    items = np.array(p.items, dtype=object)
    return Linking(A, B, method, len(p.items), tuple(items[pool[~excluded]]),
                   tuple(items[pool[excluded]]), purification, old.config_hash,
                   new.config_hash, old_rows, new_rows)  # fmt: skip


def apply_linking(new: ItemBank, linking: Linking) -> ItemBank:
    """The bank ``new`` expressed on the old bank's ability scale.

    Every draw is mapped with its own constants (``b, theta, mu_b -> A x + B``;
    ``sigma_b, tau_b -> A x``; ``a -> a / A``; ``mu_log_a -> mu_log_a - log A``;
    ``sigma_log_a`` unchanged). Draws of ``new`` left out of the pairing (when it held
    more draws than the old bank) get constants resampled from the pairs with a fixed
    seed. The ``subjects`` summaries are mapped by the posterior-mean constants.

    Parameters
    ----------
    new : ItemBank
        The bank the linking was computed for (checked by ``config_hash``).
    linking : Linking
        From :func:`link`.

    Returns
    -------
    ItemBank
        Same groups and metadata, except the mapped draws, ``meta.lineage`` (parent
        bank, method, constants with 95 % intervals, anchors) and a new ``config_hash``
        so that results on the two scales are never confused.
    """
    if new.config_hash != linking.new_bank:
        raise BankError(f"the linking was computed for bank {linking.new_bank}, not "
                        f"{new.config_hash}")  # fmt: skip
    n, pick = new.n_draws, np.arange(len(linking.A))
    if len(pick) < n:  # constants for unpaired draws: resampled pairs, seeded
        pick = np.random.default_rng([n, len(pick)]).integers(len(pick), size=n)
        pick[linking.new_draws] = np.arange(len(linking.A))
    shape = (new.posterior.sizes[CHAIN], new.posterior.sizes[DRAW])
    A = xr.DataArray(linking.A[pick].reshape(shape), dims=(CHAIN, DRAW))
    B = xr.DataArray(linking.B[pick].reshape(shape), dims=(CHAIN, DRAW))
    maps = {"a": (1 / A, 0), "sigma_b": (A, 0), "tau_b": (A, 0),
            **dict.fromkeys(("mu_log_a", "mu_log_a_group"), (1, -np.log(A))),
            **dict.fromkeys(("b", "theta", "mu_b", "mu_b_group"), (A, B))}  # fmt: skip
    groups = {name: node.to_dataset() for name, node in new.tree.children.items()}
    post = groups["posterior"].copy()
    for name, (m, c) in maps.items():
        if name in post:
            post[name] = (m * post[name] + c).transpose(*post[name].dims)
    groups["posterior"] = post
    if "subjects" in groups:  # summaries: mapped by the posterior-mean constants
        subj, am, bm = groups["subjects"].copy(), linking.A_mean, linking.B_mean
        for name in {"theta_mean", "theta_hdi_low", "theta_hdi_high", "theta_sd"} & set(subj):
            subj[name] = am * subj[name] + (0 if name == "theta_sd" else bm)
        groups["subjects"] = subj
    lineage: dict[str, Any] = {
        "parent_config_hash": linking.old_bank,
        "unlinked_config_hash": new.config_hash,
        "method": linking.method,
        "A": draw_summary(linking.A),
        "B": draw_summary(linking.B),
        "interval_prob": INTERVAL_PROB,
        "n_anchors": len(linking.anchors),
        "n_common": linking.n_common,
        "excluded": list(linking.excluded),
    }
    if new.meta.lineage:
        lineage["previous"] = new.meta.lineage
    meta = dataclasses.replace(
        new.meta,
        lineage=lineage,
        config_hash=bank_hash({**new.meta.config, "lineage": lineage}, new.meta.data_fingerprint),
    )
    return ItemBank(tree=xr.DataTree.from_dict(groups), meta=meta)


def drift(
    old: ItemBank,
    new: ItemBank,
    *,
    threshold_b: float = DEFAULT_THRESHOLD_B,
    threshold_log_a: float = DEFAULT_THRESHOLD_LOG_A,
    fdr: float = DEFAULT_FDR,
    prob: float | None = None,
    linking: Linking | None = None,
    seed: int = 0,
) -> DriftReport:
    """Which common items changed between ``old`` and the refitted ``new`` bank.

    Parameters
    ----------
    old, new : ItemBank
        Reference and refitted bank (``new`` on its own, unlinked scale).
    threshold_b : float
        Smallest difficulty change that counts, in ability SD of the old scale.
    threshold_log_a : float
        Smallest change of log discrimination that counts.
    fdr : float
        Flag the largest set of the most probably drifted items whose posterior
        expected share of false flags, ``mean(1 - p_drift)``, is at most ``fdr``
        (default 0.05; see the module docstring).
    prob : float, optional
        Instead of ``fdr``: flag each item with ``p_drift > prob``, with no control of
        the false flags across items (``fdr`` is then not used).
    linking : Linking, optional
        Constants from :func:`link`; default a purified mean-sigma link with this rule.
    seed : int
        Seed of the draw pairing (when ``linking`` is computed here).

    Returns
    -------
    DriftReport
        Per-item changes on the old scale, ranked by drift probability.

    Raises
    ------
    OptionError
        A threshold not > 0, or ``fdr`` or ``prob`` outside (0, 1).
    BankError
        Too few common items, or a ``linking`` of other banks.
    """
    _check_rule(threshold_b, threshold_log_a, fdr, prob)
    if linking is None:
        linking = link(old, new, threshold_b=threshold_b, threshold_log_a=threshold_log_a,
                       fdr=fdr, prob=prob, seed=seed)  # fmt: skip
    elif (linking.old_bank, linking.new_bank) != (old.config_hash, new.config_hash):
        raise BankError(
            f"the linking is of bank {linking.new_bank} onto {linking.old_bank}, not of "
            f"{new.config_hash} onto {old.config_hash}"
        )
    p = _paired(old, new, linking.old_draws, linking.new_draws)
    delta_b, delta_log_a = _deltas(linking.A, linking.B, p)
    delta_a = p.a_new / linking.A[:, None] - p.a_old
    p_any, p_b, p_a = drift_probabilities(delta_b, delta_log_a, threshold_b, threshold_log_a)
    q = [(1 - INTERVAL_PROB) / 2, (1 + INTERVAL_PROB) / 2]
    qb, qa = np.quantile(delta_b, q, axis=0), np.quantile(delta_log_a, q, axis=0)
    table = pd.DataFrame({
        "item": list(p.items), "delta_a_mean": delta_a.mean(0), "delta_b_mean": delta_b.mean(0),
        "delta_log_a_mean": delta_log_a.mean(0), "p_drift": p_any, "p_drift_a": p_a,
        "p_drift_b": p_b, "delta_b_low": qb[0], "delta_b_high": qb[1],
        "delta_log_a_low": qa[0], "delta_log_a_high": qa[1],
    })  # fmt: skip
    order = np.lexsort((np.arange(len(p.items)), -np.abs(table["delta_b_mean"].to_numpy()),
                        -np.maximum(p_a, p_b), -p_any))  # fmt: skip
    table = table.iloc[order].reset_index(drop=True)
    false = np.cumsum(1.0 - table["p_drift"].to_numpy())
    table.insert(7, "drifted", _flags(table["p_drift"].to_numpy(), fdr, prob))
    table.insert(8, "expected_false", false)
    table.insert(9, "expected_fdp", false / np.arange(1, len(table) + 1))
    in_old, in_new = set(old.items), set(new.items)
    return DriftReport(
        linking, table, tuple(i for i in old.items if i not in in_new),
        tuple(i for i in new.items if i not in in_old), threshold_b, threshold_log_a, prob,
        None if prob is not None else fdr,
    )  # fmt: skip
