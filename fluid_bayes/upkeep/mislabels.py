"""Suspected mislabeled items, from the bank's posterior alone (no labels).

An item whose answer key is wrong does not measure ability the way the others do: the
better models pick the (truly) right answer and are scored wrong, so the item is either
flat (its answers do not follow ability: low discrimination) or beyond every model (even
the strongest calibration model is more likely wrong than right). The 2PL here keeps
``a > 0``, so an inverted item shows up as one of these two.

Score (higher = more suspect): the posterior probability that the item does not
function on the calibration population, per joint posterior draw ``s``:

    nonfunctioning_js = [log a_js < mu_log_a_s + z_tail * sigma_log_a_s]
                        or [b_js > max_i theta_is]

i.e. its discrimination lies in the lower ``tail`` (default 5%) of the fitted item
population, or its difficulty lies above the strongest calibration subject; the score is
the mean over draws. Items are flagged at ``score >= flag_prob`` (default 0.5: more
likely non-functioning than not). Banks without population hyperparameters or
calibration abilities (imported point banks, simulated banks) use the bank's own
discrimination quantile and, for the second part, nothing (reported in ``notes``).

The second part cannot tell a wrongly keyed item from one that is simply harder than
every calibration model: on a benchmark the calibration models are far from saturating,
many items are flagged for it (ChemBench: 784 of 2,854, mostly items no model solved).
The table keeps both parts (``p_low_a``, ``p_beyond_top``) so they can be read apart.

The detector was designed before looking at the MMLU-Redux annotations; the annotations
are only used by :func:`evaluate_detector` and never by :func:`detect_mislabels`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from fluid_bayes.dims import CHAIN, DRAW, ITEM, SUBJECT
from fluid_bayes.exceptions import DataError
from fluid_bayes.reporting import plain, records

__all__ = [
    "CLEAN_LABELS",
    "KEY_ERRORS",
    "MislabelReport",
    "detect_mislabels",
    "evaluate_detector",
    "read_item_labels",
]

CLEAN_LABELS = frozenset({"ok"})
UNKNOWN_LABELS = frozenset({"", "unlabeled", "unknown", "na", "nan"})
KEY_ERRORS = frozenset({"wrong_groundtruth", "no_correct_answer", "multiple_correct_answers"})


@dataclass(frozen=True)
class MislabelReport:
    """Per-item suspicion scores and, with labels, how well they find mislabels.

    Attributes
    ----------
    table : pandas.DataFrame
        Index ``item``; ``score`` (posterior probability of non-functioning),
        ``flagged``, evidence ``p_low_a``, ``p_beyond_top``, ``a_mean``, ``b_mean``,
        ``expected_accuracy`` (mean posterior predictive accuracy of the calibration
        subjects on the item); with labels also ``label`` (1, 0, NaN = unknown).
        Sorted by ``score`` descending.
    flag_prob, tail : float
        The flagging rule.
    evaluation : dict or None
        From :func:`evaluate_detector` when labels were given.
    notes : tuple of str
        What the detector could not use.
    """

    table: pd.DataFrame
    flag_prob: float
    tail: float
    evaluation: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def flagged_items(self) -> tuple[str, ...]:
        """Flagged item ids, most suspect first."""
        return tuple(self.table.index[self.table["flagged"]])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"items": [...], "n_flagged", "rule", "evaluation", "notes"}``."""
        ev = self.evaluation
        return {
            "items": records(self.table),
            "n_items": len(self.table),
            "n_flagged": int(self.table["flagged"].sum()),
            "rule": {"flag_prob": self.flag_prob, "tail": self.tail},
            "evaluation": None if ev is None else {k: plain(v) for k, v in ev.items()},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [
            f"{len(self.table)} items, {int(self.table['flagged'].sum())} flagged as suspected "
            f"mislabeled (score >= {self.flag_prob}; score = P(discrimination in the lowest "
            f"{self.tail:.0%} of the item population or difficulty above the strongest "
            "calibration subject))"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        ev = self.evaluation
        if ev:
            lines.append(
                f"against {ev['n_labeled']} labeled items ({ev['n_positive']} mislabeled; "
                f"groups: {', '.join(ev['groups']) if ev['groups'] else 'n/a'}):"
            )
            lines.append(
                f"  AUROC {ev['auroc']:.3f}, average precision {ev['average_precision']:.3f} "
                f"(base rate {ev['base_rate']:.3f}); flagged: precision "
                f"{ev['precision_flagged']:.3f}, recall {ev['recall_flagged']:.3f}"
            )
        top = self.table.head(10)
        lines.append("most suspect:")
        for item, row in top.iterrows():
            lines.append(f"  {str(item)[:40]:<40} score {row['score']:.3f}  a {row['a_mean']:.2f}"
                         f"  b {row['b_mean']:+.2f}"
                         f"  expected acc {row['expected_accuracy']:.2f}")  # fmt: skip
        return "\n".join(lines)


def _draws(da, dims) -> np.ndarray:
    return np.asarray(da.transpose(*dims).values, dtype=np.float64)


def detect_mislabels(
    bank, *, flag_prob: float = 0.5, tail: float = 0.05, labels: pd.Series | None = None,
    groups: pd.Series | None = None,
) -> MislabelReport:  # fmt: skip
    """Score every item of ``bank`` by the posterior probability that it does not function.

    Parameters
    ----------
    bank : ItemBank
        A calibrated bank (posterior draws of ``a``, ``b``; ideally the population
        hyperparameters ``mu_log_a``, ``sigma_log_a`` and calibration ``theta`` draws).
    flag_prob : float
        Flag items with ``score >= flag_prob``.
    tail : float
        Lower tail of the discrimination population counted as "flat".
    labels : pandas.Series, optional
        Per item: 1 (mislabeled), 0 (clean), NaN (unknown); only for the evaluation.
    groups : pandas.Series, optional
        Per item group (e.g. MMLU subject) named in the evaluation.

    Returns
    -------
    MislabelReport
    """
    if not 0 < flag_prob <= 1 or not 0 < tail < 1:
        raise ValueError(f"need 0 < flag_prob <= 1 and 0 < tail < 1, got {flag_prob}, {tail}")
    post = bank.posterior
    la = np.log(_draws(bank.a, (CHAIN, DRAW, ITEM)))
    b = _draws(bank.b, (CHAIN, DRAW, ITEM))
    notes = []
    if {"mu_log_a", "sigma_log_a"} <= set(post.data_vars):
        mu = _draws(post["mu_log_a"], (CHAIN, DRAW))[..., None]
        sd = _draws(post["sigma_log_a"], (CHAIN, DRAW))[..., None]
        cut = mu + stats.norm.ppf(tail) * sd
    else:
        cut = np.quantile(la, tail, axis=2, keepdims=True)
        notes.append("no population hyperparameters: the discrimination cut is the bank's "
                     f"own {tail:.0%} quantile per draw")  # fmt: skip
    low_a = la < cut
    if "theta" in post.data_vars:
        theta = _draws(post["theta"], (CHAIN, DRAW, SUBJECT))
        beyond = b > theta.max(axis=2, keepdims=True)
        expected = np.zeros(la.shape[2])
        n_draws = la.shape[0] * la.shape[1]
        flat_la, flat_b = la.reshape(n_draws, -1), b.reshape(n_draws, -1)
        flat_th = theta.reshape(n_draws, -1)
        step = max(1, int(2**24 // (flat_th.shape[1] * la.shape[2])))  # ~128 MiB blocks
        for k in range(0, n_draws, step):
            sl = slice(k, k + step)
            x = np.exp(flat_la[sl])[:, None, :] * (flat_th[sl][..., None] - flat_b[sl][:, None, :])
            expected += special.expit(x).sum(axis=(0, 1)) / (n_draws * flat_th.shape[1])
    else:
        beyond = np.zeros_like(low_a)
        expected = np.full(la.shape[2], np.nan)
        notes.append("no calibration ability draws: the 'beyond the strongest subject' part "
                     "and expected accuracy are not available")  # fmt: skip
    score = (low_a | beyond).mean(axis=(0, 1))
    table = pd.DataFrame({
        "score": score, "flagged": score >= flag_prob,
        "p_low_a": low_a.mean(axis=(0, 1)), "p_beyond_top": beyond.mean(axis=(0, 1)),
        "a_mean": np.exp(la).mean(axis=(0, 1)), "b_mean": b.mean(axis=(0, 1)),
        "expected_accuracy": expected,
    }, index=pd.Index(bank.items, name="item"))  # fmt: skip
    evaluation = None
    if labels is not None:
        lab = labels.reindex(table.index).astype(float)
        table["label"] = lab
        evaluation = evaluate_detector(table["score"], lab, flagged=table["flagged"],
                                       groups=groups)  # fmt: skip
        extra = sorted(set(labels.index) - set(table.index))
        if extra:
            notes.append(
                f"{len(extra)} labeled item(s) are not in the bank: {', '.join(extra[:5])}"
            )
    table = table.sort_values("score", ascending=False, kind="stable")
    return MislabelReport(table, flag_prob, tail, evaluation, tuple(notes))


def evaluate_detector(
    score: pd.Series, labels: pd.Series, *, flagged: pd.Series | None = None,
    groups: pd.Series | None = None,
) -> dict[str, Any]:  # fmt: skip
    """AUROC and average precision of ``score`` against the known labels.

    Items with an unknown label (NaN) are left out; the groups (e.g. MMLU subjects)
    whose items were scored are listed.

    Returns
    -------
    dict
        ``auroc`` (ties count one half; Mann-Whitney U / (n_pos n_neg)),
        ``average_precision`` (``sum_k (R_k - R_{k-1}) P_k`` over the distinct score
        thresholds, so tied items enter together), ``base_rate``, ``n_labeled``,
        ``n_positive``, ``precision_flagged``, ``recall_flagged``, ``groups``.
    """
    lab = labels.reindex(score.index).astype(float)
    known = lab.notna()
    if not known.any():
        raise DataError("no item of the bank has a known label: nothing to evaluate against")
    s, y = score[known].to_numpy(float), lab[known].to_numpy(float)
    pos, neg = y == 1.0, y == 0.0
    if not pos.any() or not neg.any():
        raise DataError(f"labels need both classes; got {int(pos.sum())} mislabeled and "
                        f"{int(neg.sum())} clean item(s)")  # fmt: skip
    u = stats.mannwhitneyu(s[pos], s[neg], alternative="two-sided").statistic
    # average precision over distinct score thresholds (tied items enter together, so
    # the value does not depend on the item order): sum (R_k - R_{k-1}) P_k
    thresholds, inverse = np.unique(-s, return_inverse=True)
    tp = np.cumsum(np.bincount(inverse, weights=pos.astype(float), minlength=thresholds.size))
    n_at = np.cumsum(np.bincount(inverse, minlength=thresholds.size))
    recall = tp / pos.sum()
    ap = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * tp / n_at))
    out: dict[str, Any] = {
        "auroc": float(u / (pos.sum() * neg.sum())),
        "average_precision": ap,
        "base_rate": float(pos.mean()),
        "n_labeled": int(known.sum()),
        "n_positive": int(pos.sum()),
    }
    if flagged is not None:
        f = flagged.reindex(score.index)[known].to_numpy(bool)
        out["n_flagged_labeled"] = int(f.sum())
        out["precision_flagged"] = float((f & pos).sum() / f.sum()) if f.any() else float("nan")
        out["recall_flagged"] = float((f & pos).sum() / pos.sum())
    g = [] if groups is None else sorted(set(groups.reindex(score.index)[known].dropna()))
    out["groups"] = [str(x) for x in g]
    return out


def read_item_labels(
    path: str | Path, *, positive: str = "any"
) -> tuple[pd.Series, pd.Series | None]:
    """Read item labels: ``item_id`` and ``mislabeled`` (0/1/empty) or ``error_type``.

    Parameters
    ----------
    path : str or Path
        CSV with an ``item_id`` (or ``item``) column and either ``mislabeled`` (1, 0,
        empty = unknown) or ``error_type`` (MMLU-Redux annotations: ``ok`` = clean,
        ``unlabeled``/empty = unknown, anything else = an error). An optional
        ``subject`` column names each item's group.
    positive : {"any", "key"}
        For ``error_type``: which errors count as mislabeled: ``any`` annotated error,
        or ``key`` only answer-key errors (wrong ground truth, no correct answer,
        multiple correct answers; other errors then count as unknown).

    Returns
    -------
    labels : pandas.Series
        Index item id; 1.0, 0.0 or NaN.
    groups : pandas.Series or None
        The ``subject`` column, if present.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    if positive not in ("any", "key"):
        raise ValueError(f"positive must be 'any' or 'key', got {positive!r}")
    frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    cols = {c.lower(): c for c in frame.columns}
    idcol = cols.get("item_id") or cols.get("item")
    if idcol is None:
        raise DataError(f"{path}: no item_id column")
    dup = frame[idcol][frame[idcol].duplicated()]
    if len(dup):
        raise DataError(f"{path}: item {dup.iloc[0]!r} appears more than once")
    index = pd.Index(frame[idcol].astype(str), name="item")
    if "mislabeled" in cols:
        raw = frame[cols["mislabeled"]].str.strip().str.lower()
        table = {"1": 1.0, "1.0": 1.0, "true": 1.0, "0": 0.0, "0.0": 0.0, "false": 0.0}
        bad = ~raw.isin(list(table) + list(UNKNOWN_LABELS))
        if bad.any():
            k = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{path}, line {k + 2} (item {index[k]!r}): mislabeled "
                            f"{frame[cols['mislabeled']].iloc[k]!r} is not 0/1/empty")  # fmt: skip
        values = raw.map(table).astype(float)
    elif "error_type" in cols:
        raw = frame[cols["error_type"]].str.strip().str.lower()
        unknown = raw.isin(UNKNOWN_LABELS)
        clean = raw.isin(CLEAN_LABELS)
        error = ~unknown & ~clean
        if positive == "key":
            values = np.where(clean, 0.0, np.where(raw.isin(KEY_ERRORS), 1.0, np.nan))
        else:
            values = np.where(clean, 0.0, np.where(error, 1.0, np.nan))
        values = pd.Series(values, dtype=float)
    else:
        raise DataError(f"{path}: needs a 'mislabeled' or an 'error_type' column")
    labels = pd.Series(values.to_numpy(float), index=index, name="mislabeled")
    groups = None
    if "subject" in cols:
        groups = pd.Series(frame[cols["subject"]].to_numpy(str), index=index, name="group")
    return labels, groups
