"""When to refit: the keep / refit decision from the bank's check and the new models.

:func:`advise` turns a :class:`~fluid_bayes.upkeep.checking.BankCheck` (optional) and a
:class:`~fluid_bayes.upkeep.newmodels.NewModelsCheck` (optional; one of the two is needed) into
:class:`RefitAdvice`; :func:`diagnose` runs both checks and advises. ``refit`` when any
trigger of :class:`RefitThresholds` fires:

1. more new models at the ceiling than the bank's own population would put there (the
   bank no longer resolves them: their posteriors widen and they cannot be ranked
   against each other);
2. the calibration fit did not converge (max R-hat above ``max_rhat`` or more than
   ``max_divergences`` divergent transitions): the bank itself is not trustworthy;
3. at least ``beyond_share`` of the new models (and at least ``min_beyond``) lie above
   every calibration subject with probability ``beyond_prob``, more than the bank's own
   population would put there: the new generation has moved past the range the bank
   was calibrated on, where its item parameters are extrapolations (and the ``auto``
   stopping gap is undefined), even if the bank still has information there;
4. optionally (off by default), a share of at least ``misfit_share`` of the new models
   misfit (person-fit p-value below ``misfit_p``), more than chance.

The triggers that count new models (1, 3, 4) compare the count with its **reference
distribution**: the counts of sets of as many models simulated from the bank's own
ability population and posterior (:mod:`fluid_bayes.upkeep.reference`; for 4 the
binomial of ``misfit_p``). A trigger fires when its count reaches its minimum size and
``P(count >= observed)`` under the reference is at most ``alpha / k``, ``k`` the
number of counting triggers switched on (Bonferroni): new models from the calibration
population then say ``refit`` with probability at most ``alpha`` (0.05) whatever their
number. A single-model rule's false alarms grew with the number of new models (1 of 100
at the ceiling is expected from the population itself).

Item misfit and Pareto k of the bank check are reported as notes, not triggers: a refit
on more data does not repair a misfitting item (that needs the item or the model
changed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from fluid_bayes.calibration.diagnostics import ESS_MIN, RHAT_MAX
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.exceptions import OptionError
from fluid_bayes.ranges import Range
from fluid_bayes.reporting import join_ids, nan_to_none, plain
from fluid_bayes.upkeep.checking import BankCheck
from fluid_bayes.upkeep.newmodels import (
    CEILING_PROB,
    HARD_ACCURACY,
    NewModelsCheck,
    check_new_models,
)
from fluid_bayes.upkeep.reference import (
    REFERENCE_SETS,
    CountTest,
    binomial_test,
    check_reference_options,
    count_test,
)

if TYPE_CHECKING:
    from fluid_bayes.bank import ItemBank

__all__ = ["RefitAdvice", "RefitThresholds", "advise", "diagnose"]


# ----------------------------------------------------------------------- advice
@dataclass(frozen=True)
class RefitThresholds:
    """When :func:`advise` says ``refit``; every field has a documented default.

    Attributes
    ----------
    ceiling_prob : float, default 0.9
        A new model is at the ceiling when ``P(ability > theta_info_high)`` is at least
        this (confidently above the bank's half-information point; with 0.5, 3 of 200
        models drawn from the calibration population of a synthetic 300-item bank
        qualified, with 0.9 one, at 3 SD) ...
    hard_accuracy : float, default 0.5
        ... and it answered at least this share of the hardest decile right (more
        right than wrong on the items that should resolve it).
    min_at_ceiling : int, default 1
        The least count at the ceiling that can fire; it fires only when the count is
        also improbable for the bank's own population (at most ``alpha / k`` under the
        reference). Without a reference, one model the bank cannot resolve is enough.
    beyond_prob : float, default 0.9
        A new model is beyond the calibrated range when ``P(ability > the best
        calibration subject's posterior mean ability)`` is at least this ...
    beyond_share : float or None, default 0.5
        ... and refit when at least this share of the new models (and at least
        ``min_beyond``) are, and that count is improbable under the reference.
        ``None`` turns the trigger off. One new model at the top of the leaderboard is a
        note, not a refit: each release is expected to be the best. By rank alone, 3 of 5
        new models above all of 14 calibration models drawn from the same population has
        chance (5/19)(4/18)(3/17) = 1%; the reference accounts for this and for the
        estimation noise.
    min_beyond : int, default 2
        See ``beyond_share``.
    max_rhat : float, default 1.01
        Refit when the calibration's max R-hat exceeds this (the package's convergence
        criterion, :data:`fluid_bayes.calibration.diagnostics.RHAT_MAX`) ...
    max_divergences : int, default 0
        ... or it had more divergent transitions than this.
    misfit_p : float, default 0.01
        A new model misfits when its person-fit ``ppc_p`` is below this.
    alpha : float, default 0.05
        The false-alarm rate of the counting triggers together: each of the ``k`` on is
        tested at ``alpha / k``. With the default 199 reference sets, p-values come in
        steps of 1/200, so the least level that can fire is 0.005.
    misfit_share : float or None, default None
        Refit when at least this share of the new models (and at least two) misfit.
        Off by default: real language models misfit a 2PL in both directions. Measured
        on ChemBench: against the shipped held-out bank, 2 of 4 held-out models had
        p < 0.001; against a bank of 14 weaker models (``benchmarks/saturation.py``),
        the 3 held-out models of the same population had p = 1.000, 0.000, 1.000 and
        the 5 strongest 0.99-1.000. Synthetic models drawn from the bank's own 2PL
        give roughly uniform p-values (1.5% below 0.01).
    """

    ceiling_prob: float = CEILING_PROB
    hard_accuracy: float = HARD_ACCURACY
    min_at_ceiling: int = 1
    beyond_prob: float = 0.9
    beyond_share: float | None = 0.5
    min_beyond: int = 2
    max_rhat: float = RHAT_MAX
    max_divergences: int = 0
    misfit_p: float = 0.01
    misfit_share: float | None = None
    alpha: float = 0.05

    def __post_init__(self):
        # a probability threshold above 1 is allowed: nobody qualifies
        prob, share = Range(float, 0.0), Range(float, 0.0, 1.0, low_open=True, optional=True)
        open01 = Range(float, 0.0, 1.0, low_open=True, high_open=True)
        checks = {"ceiling_prob": prob, "hard_accuracy": prob, "beyond_prob": prob,
                  "misfit_p": open01, "beyond_share": share, "misfit_share": share,
                  "min_at_ceiling": Range(int, 1), "min_beyond": Range(int, 1),
                  "max_rhat": Range(float, 1.0), "max_divergences": Range(int, 0),
                  "alpha": open01}  # fmt: skip
        for name, rng in checks.items():
            rng.check(getattr(self, name), name=f"thresholds.{name}")


@dataclass(frozen=True)
class RefitAdvice:
    """Keep the bank or refit it, with the evidence (:func:`advise`).

    Attributes
    ----------
    decision : {"keep", "refit"}
        The advice.
    reasons : tuple of str
        Each trigger checked, with its numbers (the ones that fired first).
    notes : tuple of str
        Other findings that do not decide (item misfit, Pareto k, extrapolation).
    max_rhat, divergences : float or None, int or None
        Of the calibration fit (None without a bank check or MCMC diagnostics).
    n_items_bad_pareto_k, n_items_ppc_extreme : int or None
        From the bank check (None without one).
    n_new_models, n_new_models_at_ceiling, n_new_models_misfit, n_new_models_beyond : int
        Counts over the new models (``beyond``: above every calibration subject with
        probability ``beyond_prob``).
    new_models : tuple of dict
        Per new model: ``subject, theta_mean, theta_sd, at_ceiling, ppc_p`` and the
        evidence behind ``at_ceiling``.
    thresholds : RefitThresholds
        The thresholds applied.
    reference_tests : tuple of dict
        Per counting trigger (:class:`~fluid_bayes.upkeep.reference.CountTest`): the
        observed count, its minimum, the reference distribution (mean, quantiles, number
        of sets), ``P(count >= observed)``, the level and whether it fired.
    reference : dict or None
        How the reference sets were made (number, size, population, seed); None without
        new models or without a reference.
    """

    decision: Literal["keep", "refit"]
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    max_rhat: float | None
    divergences: int | None
    n_items_bad_pareto_k: int | None
    n_items_ppc_extreme: int | None
    n_new_models: int
    n_new_models_at_ceiling: int
    n_new_models_misfit: int
    n_new_models_beyond: int
    new_models: tuple[dict[str, Any], ...]
    thresholds: RefitThresholds = field(default_factory=RefitThresholds)
    reference_tests: tuple[dict[str, Any], ...] = ()
    reference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        d = dataclasses.asdict(self)
        d["reasons"], d["notes"] = list(self.reasons), list(self.notes)
        d["new_models"] = [dict(m) for m in self.new_models]
        d["reference_tests"] = [dict(r) for r in self.reference_tests]
        return d

    def __str__(self) -> str:
        lines = [f"decision: {self.decision.upper()}"]
        lines += [f"  - {r}" for r in self.reasons]
        lines += [f"  note: {n}" for n in self.notes]
        if self.reference is not None:
            r = self.reference
            lines.append(f"  reference: {r['n_sets']} sets of {r['set_size']} model(s) from the "
                         f"bank's {r['population']} population (seed {r['seed']})")  # fmt: skip
            for t in self.reference_tests:
                q = t["quantiles"]
                lines.append(
                    f"    {t['trigger']:<8} observed {t['observed']} (fires from "
                    f"{t['needed']}); reference mean {t['mean']:.2f}, 50/95/99% "
                    f"{q['0.5']:g}/{q['0.95']:g}/{q['0.99']:g}, max {q['max']:g}; P(>= "
                    f"observed) {t['tail_probability']:.4f}, level {t['level']:g}: "
                    + ("FIRED" if t["fired"] else "no")
                )
        return "\n".join(lines)


_SHOW = 10  # models named in a reason
_MODEL_KEYS = ("theta_mean", "theta_sd", "theta_hdi_low", "theta_hdi_high", "at_ceiling",
               "ppc_p", "ppc_p_hard", "p_above_info", "hard_accuracy", "info_ratio",
               "sd_ratio", "p_above_calibration", "accuracy", "n_answered")  # fmt: skip


def advise(
    check: BankCheck | None,
    new: NewModelsCheck | None,
    *,
    thresholds: RefitThresholds | None = None,
) -> RefitAdvice:
    """Keep the bank, or refit it on the new models too.

    Parameters
    ----------
    check : BankCheck or None
        The bank's own check (:func:`~fluid_bayes.upkeep.checking.check_bank`); without it
        only the new models decide.
    new : NewModelsCheck or None
        The new models (:func:`check_new_models`); ``at_ceiling`` is re-derived here
        with ``thresholds``. Without them only the bank's own check decides.
    thresholds : RefitThresholds, optional
        Defaults as documented there.

    Returns
    -------
    RefitAdvice
    """
    th = thresholds or RefitThresholds()
    if check is None and new is None:
        raise ValueError("nothing to advise on: give a bank check, new models, or both")
    fired: list[str] = []
    passed: list[str] = []
    notes: list[str] = []
    tests: list[CountTest] = []
    if new is None:
        t = pd.DataFrame(columns=["at_ceiling", "ppc_p", "p_above_calibration", *_MODEL_KEYS])
        ceil = t
        notes.append("no new models given: only the bank's own fit was checked")
    else:
        level = th.alpha / _n_counting(new, th)
        if new.reference is not None and new.reference.set_size != len(new.table):
            notes.append(f"the reference was made for sets of {new.reference.set_size}, not "
                         f"{len(new.table)}: not used")  # fmt: skip
            new = dataclasses.replace(new, reference=None)
        if new.reference is None:
            notes.append("no reference distribution (reference_sets=None): the counts are "
                         "judged bare, without control of false alarms")  # fmt: skip
        t, ceil = _ceiling(new, th, level, tests, fired, passed)
    max_rhat = divergences = n_bad_k = n_ext = None
    if check is not None:
        conv = check.convergence
        n_bad_k, n_ext = len(check.items_bad_k), len(check.items_ppc_extreme)
        if conv.approximate:
            notes.append(f"convergence not checked: the bank's draws are {conv.sampler}")
        else:
            max_rhat, divergences = nan_to_none(conv.max_rhat), int(conv.divergences)
            bad = []
            if max_rhat is not None and max_rhat > th.max_rhat:
                bad.append(f"max R-hat {max_rhat:.3f} > {th.max_rhat}")
            if divergences > th.max_divergences:
                bad.append(f"{divergences} divergent transitions > {th.max_divergences}")
            msg = f"calibration fit: max R-hat {conv.max_rhat:.4f}, {divergences} divergences"
            if bad:
                fired.append(f"{msg}; not converged ({', '.join(bad)}): re-run the calibration")
            else:
                passed.append(f"{msg} (thresholds {th.max_rhat}, {th.max_divergences})")
            if conv.min_ess_bulk < ESS_MIN:
                notes.append(f"min bulk ESS {conv.min_ess_bulk:.0f} < {ESS_MIN:.0f}: more draws "
                             "would sharpen the bank (not a refit trigger)")  # fmt: skip
        n_i = len(check.items)
        notes.append(
            f"bank check: {n_ext} of {n_i} items with an extreme PPC p-value, "
            f"{n_bad_k} of {n_i} items and {len(check.subjects_bad_k)} of "
            f"{len(check.subjects)} subjects with Pareto k > {check.good_k:.2f} (reported, "
            "not a refit trigger)"
        )
    mis = beyond = t.iloc[:0]
    if new is not None:
        beyond = _beyond(new, t, th, level, tests, fired, passed, notes)
        mis = _misfit(new, t, th, level, tests, fired, passed, notes)
    models = tuple(
        {"subject": str(s), **{k: plain(r[k]) for k in _MODEL_KEYS}} for s, r in t.iterrows()
    )
    reference = None if new is None or new.reference is None else new.reference.to_dict()
    return RefitAdvice(
        decision="refit" if fired else "keep",
        reasons=tuple(fired + passed),
        notes=tuple(notes),
        max_rhat=max_rhat,
        divergences=divergences,
        n_items_bad_pareto_k=n_bad_k,
        n_items_ppc_extreme=n_ext,
        n_new_models=len(t),
        n_new_models_at_ceiling=len(ceil),
        n_new_models_misfit=len(mis),
        n_new_models_beyond=len(beyond),
        new_models=models,
        thresholds=th,
        reference_tests=tuple(x.to_dict() for x in tests),
        reference=reference,
    )


def _n_counting(new, th) -> int:
    """The counting triggers switched on (the Bonferroni divisor of ``alpha``)."""
    beyond_on = th.beyond_share is not None and not new.table["p_above_calibration"].isna().all()
    return 1 + int(beyond_on) + int(th.misfit_share is not None)


def _judge(new, trigger, observed, needed, level, flags, tests):
    """Whether a counting trigger fires, and its reference's words (empty without one)."""
    if new.reference is None:
        return observed >= needed, ""
    test = count_test(trigger, observed, needed, level, new.reference.counts(flags))
    tests.append(test)
    verdict = "improbable" if test.tail_probability <= level else "expected"
    return test.fired, (f" [{verdict} for sets of {len(new.table)} from the bank's own "
                        f"population: {test.describe()}]")  # fmt: skip


def _ceiling(new, th, level, tests, fired, passed):
    """The ceiling trigger of :func:`advise`; returns the table and its at-ceiling rows."""
    t = new.table.copy()
    t["at_ceiling"] = (t["p_above_info"] >= th.ceiling_prob) & (
        t["hard_accuracy"] >= th.hard_accuracy
    )
    ceil = t[t["at_ceiling"]]
    top = t.sort_values("p_above_info", ascending=False).iloc[0]
    where = f"ability {new.theta_info_high:+.2f}, where test information falls to half"
    ref = new.reference
    flags = None
    if ref is not None:
        with np.errstate(invalid="ignore"):
            flags = (ref.p_above_info >= th.ceiling_prob) & (ref.hard_accuracy >= th.hard_accuracy)
    fire, words = _judge(new, "ceiling", len(ceil), th.min_at_ceiling, level, flags, tests)
    if len(ceil):
        shown = ceil.iloc[:_SHOW]
        msg = (
            f"{len(ceil)} of {len(t)} new model(s) at the ceiling of the bank (P above {where} "
            f">= {th.ceiling_prob}, hardest-decile accuracy >= {th.hard_accuracy}): "
            + "; ".join(
                f"{s} (theta {r.theta_mean:+.2f} +- {r.theta_sd:.2f}, P above "
                f"{r.p_above_info:.2f}, hard accuracy {r.hard_accuracy:.2f}, "
                f"posterior SD x{r.sd_ratio:.1f} the calibration median)"
                for s, r in shown.iterrows()
            )  # fmt: skip
            + (f"; ... and {len(ceil) - _SHOW} more" if len(ceil) > _SHOW else "")
            + words
        )
        (fired if fire else passed).append(msg)
    else:
        passed.append(
            f"0 of {len(t)} new model(s) at the ceiling: the highest P(above {where}) is "
            f"{top.p_above_info:.2f} ({top.name}), the best hardest-decile accuracy "
            f"{t['hard_accuracy'].max():.2f} (thresholds {th.ceiling_prob}, "
            f"{th.hard_accuracy}){words}"
        )
    return t, ceil


def _beyond(new, t, th, level, tests, fired, passed, notes):
    """The beyond-the-calibrated-range trigger of :func:`advise`; returns its rows."""
    p = t["p_above_calibration"]
    beyond = t[p >= th.beyond_prob]
    msg = (f"{len(beyond)} of {len(t)} new model(s) above every calibration subject (P "
           f"above the best one's ability, {new.calibration_theta_max:+.2f}, >= "
           f"{th.beyond_prob})")  # fmt: skip
    if len(beyond):
        msg += ": " + "; ".join(
            f"{s} (theta {r.theta_mean:+.2f} +- {r.theta_sd:.2f}, P {r.p_above_calibration:.2f})"
            for s, r in beyond.iloc[:_SHOW].iterrows()
        )
        if len(beyond) > _SHOW:
            msg += f"; ... and {len(beyond) - _SHOW} more"
    likely = t[(p > 0.5) & (p < th.beyond_prob)]
    if len(likely):
        notes.append(f"{len(likely)} more new model(s) probably (P > 0.5) above the best "
                     f"calibration subject: {join_ids(likely.index)}")  # fmt: skip
    if p.isna().all():
        notes.append("the bank has no calibration abilities: the calibrated range is unknown")
    elif th.beyond_share is None:
        notes.append(msg + " (not a trigger: beyond_share is off)")
    else:
        need = max(th.min_beyond, math.ceil(th.beyond_share * len(t)))
        ref = new.reference
        flags = None if ref is None else ref.p_above_calibration >= th.beyond_prob
        fire, words = _judge(new, "beyond", len(beyond), need, level, flags, tests)
        if fire:
            fired.append(f"{msg}; at least {need} needed: the new models have moved past the "
                         f"range the bank was calibrated on, where its item parameters are "
                         f"extrapolated{words}")  # fmt: skip
        else:
            passed.append(f"{msg}; {need} needed (beyond_share {th.beyond_share}, min_beyond "
                          f"{th.min_beyond}){words}")  # fmt: skip
    return beyond


def _misfit(new, t, th, level, tests, fired, passed, notes):
    """The person-fit trigger and the new-model notes of :func:`advise`.

    Its reference is ``Binomial(n, misfit_p)``: a person-fit p-value of a model of the
    population is close to uniform (1.5% below 0.01 on a synthetic bank), so this one is
    an approximation (and the trigger is off by default).
    """
    mis = t[t["ppc_p"] < th.misfit_p]
    mis_msg = (f"{len(mis)} of {len(t)} new model(s) misfit (person-fit p < {th.misfit_p})"
               + (f": {join_ids(mis.index)}" if len(mis) else ""))  # fmt: skip
    if t["ppc_p"].isna().all():
        notes.append("person fit not computed (person_fit=False): no misfit count")
    elif th.misfit_share is None:
        notes.append(mis_msg + " (not a trigger: misfit_share is off)")
    else:
        need = max(2, math.ceil(th.misfit_share * len(t)))
        if new.reference is None:
            fire, words = len(mis) >= need, ""
        else:
            test = binomial_test("misfit", len(mis), need, level, len(t), th.misfit_p)
            tests.append(test)
            fire, words = test.fired, f" [{test.describe()}]"
        (fired if fire else passed).append(mis_msg + words)
    if new.extra_items:
        notes.append(f"{len(new.extra_items)} item(s) of the new data are not in the bank "
                     "(a refit could add them)")  # fmt: skip
    if new.skipped_subjects:
        notes.append(f"left out, already in the bank: {join_ids(new.skipped_subjects)}")
    return mis


def diagnose(
    bank: ItemBank,
    new_data: ResponseMatrix | None = None,
    *,
    thresholds: RefitThresholds | dict[str, Any] | None = None,
    seed: int = 0,
    calibration_subjects: Literal["error", "skip"] = "error",
    reference_sets: int | None = REFERENCE_SETS,
    population: Literal["calibration", "normal"] = "calibration",
) -> RefitAdvice:
    """Check the bank (when it stores its calibration answers) and the new models; advise.

    Parameters
    ----------
    bank : ItemBank
        The bank.
    new_data : ResponseMatrix, optional
        Answers of new models.
    thresholds : RefitThresholds or dict, optional
        Thresholds, or overrides of the defaults by field name.
    seed : int
        Seeds the posterior predictive draws.
    calibration_subjects : {"error", "skip"}
        New subjects that are calibration subjects of the bank.
    reference_sets : int or None
        Simulated new-model sets of the counts' reference (default 199; see
        :func:`~fluid_bayes.upkeep.newmodels.check_new_models`).
    population : {"calibration", "normal"}
        The reference's ability population (see
        :mod:`fluid_bayes.upkeep.reference`).

    Returns
    -------
    RefitAdvice

    Raises
    ------
    OptionError
        A threshold, ``reference_sets``, ``population`` or ``seed`` out of range (before
        any work).
    """
    from fluid_bayes.upkeep.checking import check_bank

    if isinstance(thresholds, dict):
        known = [f.name for f in dataclasses.fields(RefitThresholds)]
        unknown = sorted(set(thresholds) - set(known))
        if unknown:
            raise OptionError(f"unknown threshold(s) {unknown}; known: {', '.join(known)}")
        thresholds = RefitThresholds(**thresholds)
    if reference_sets is not None:
        check_reference_options(reference_sets, population, seed)
    check = check_bank(bank, seed=seed) if bank.observed_data is not None else None
    new = None
    if new_data is not None:
        new = check_new_models(bank, new_data, seed=seed, calibration_subjects=calibration_subjects,
                               reference_sets=reference_sets, population=population)  # fmt: skip
    advice = advise(check, new, thresholds=thresholds)
    if check is None:
        note = ("the bank does not store its calibration answers: no posterior predictive or "
                "PSIS-LOO check of the bank itself")  # fmt: skip
        advice = dataclasses.replace(advice, notes=(*advice.notes, note))
    return advice
