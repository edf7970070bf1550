"""Options of an adaptive session: :class:`SessionConfig` and the method presets.

Pure Python (no numpy, numba or PyMC), so the command line builds ``evaluate``'s flags
from the fields of :class:`SessionConfig` (their help text and allowed values are in
the field metadata) without loading the estimators. :mod:`fluid_bayes.adaptive.session`
re-exports :class:`SessionConfig` and :data:`METHODS`; :mod:`~fluid_bayes.adaptive.ability`
and :mod:`~fluid_bayes.adaptive.selection` take their vocabularies from here.

Methods (``method=``) are presets of an estimator and a selection rule:

========== ========= =============
method     estimator selection
========== ========= =============
``bayes``  bayes     epv
``paper``  map       mfi
``eap``    eap       mfi
``random`` bayes     random
========== ========= =============

``bayes`` selects by ``epv`` (expected posterior variance over the joint draws), chosen
by ``benchmarks/selection_study.py`` (issue 21): in 10 simulated studies (45-subject
nutpie calibrations of 1,000 items, 6 runs x 12 checkpoints evaluated) it was never
worse than ``paper`` beyond the 90% paired bootstrap interval on monotonicity, total
variation or rank distance at 10, 30 or 100 items, and better on total variation and
monotonicity at 10; ``expected-fi``'s mean total variation at 30 items was 4.09
against ``paper``'s 2.40 (one near-flat run; interval -0.07 to 5.11).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fluid_bayes.exceptions import OptionError
from fluid_bayes.ranges import COUNT, SEED, THRESHOLD, Range, check_fields, option

__all__ = ["ESTIMATORS", "INTEGRATIONS", "METHODS", "ROUND_RULES", "SELECTORS", "SessionConfig"]

ESTIMATORS = ("bayes", "eap", "map")
SELECTORS = ("expected-fi", "mfi", "mpwi", "random", "epv")
INTEGRATIONS = ("mixture", "weighted")
#: joint rules of a round of k items (:mod:`fluid_bayes.adaptive.rounds`)
ROUND_RULES = ("spread", "believer", "believer-mode", "top")
METHODS = {
    "bayes": ("bayes", "epv"),
    "paper": ("map", "mfi"),
    "eap": ("eap", "mfi"),
    "random": ("bayes", "random"),
}
_FINITE = Range(float)
_NONNEGATIVE = Range(int, 0, 2**31 - 1, cap=True)


@dataclass(frozen=True)
class SessionConfig:
    """Options of an adaptive session (JSON-able; stored in saved sessions).

    Attributes
    ----------
    estimator : {"bayes", "eap", "map"}
        Ability inference (:mod:`fluid_bayes.adaptive.ability`).
    select : {"expected-fi", "mfi", "mpwi", "random", "epv"}
        Selection rule (:mod:`fluid_bayes.adaptive.selection`).
    max_items, min_items : int
        Session length limits (defaults 100 and 0; ``1 <= max_items``,
        ``0 <= min_items <= max_items``).
    stop_sd : float, "auto" or None
        Stop once the posterior SD is below it (> 0); ``"auto"``: the bank's mean gap
        between rank-adjacent calibration abilities.
    start_ability : float, optional
        Ability at which the first item is chosen (default: mean calibration ability).
    prior_mean, prior_sd : float
        Normal prior of the new subject's ability (default N(0, 1), the calibration
        population on the bank's scale).
    seed : int
        Seeds random selection and randomesque choices (>= 0).
    randomesque : int
        Choose uniformly among the best ``k`` items (1 = plain argmax).
    exclude : tuple of str
        Item ids never to ask (e.g. flagged as mislabeled).
    threshold : float, optional
        Binarize scores at ``>= threshold`` (in (0, 1]; default: the bank's calibration
        threshold).
    integration : {"weighted", "mixture"}
        How the ``bayes`` estimator combines item draws (:mod:`fluid_bayes.adaptive.ability`;
        default ``weighted``, chosen by ``benchmarks/selection_study.py``).
    round_size : int
        Items proposed per round by ``Session.next_items()`` and asked per round by
        replays (>= 1; default 1, one item at a time).
    round_rule : {"spread", "believer", "believer-mode", "top"}
        How a round's items are chosen together (:mod:`fluid_bayes.adaptive.rounds`;
        default ``spread``, chosen by ``benchmarks/rounds.py``).

    Raises
    ------
    OptionError
        A ``ValueError`` naming the first option out of range.
    """

    estimator: str = option(
        "bayes",
        "ability inference (default: the method's)",
        choices=ESTIMATORS,
        what="estimator",
    )
    select: str = option(
        "epv",
        "selection rule (default: the method's)",
        choices=SELECTORS,
        what="selection rule",
    )
    max_items: int = option(100, "most items per session", range=COUNT)
    min_items: int = option(0, "fewest items before an SD stop", range=_NONNEGATIVE)
    stop_sd: float | str | None = option(
        None,
        "stop once the posterior SD < X; auto: the bank's mean gap between rank-adjacent "
        "calibration abilities",
        range=Range(float, 0.0, low_open=True, words=("auto",), optional=True),
        metavar="X|auto",
    )
    start_ability: float | None = option(
        None,
        "ability for the first item (default: mean calibration ability)",
        range=dataclasses.replace(_FINITE, optional=True),
    )
    prior_mean: float = option(0.0, "mean of the ability prior", range=_FINITE)
    prior_sd: float = option(1.0, "SD of the ability prior", range=Range(float, 0.0, low_open=True))
    seed: int = option(0, "random seed (random selection, randomesque)", range=SEED)
    randomesque: int = option(1, "pick among the best K", range=COUNT)
    exclude: tuple[str, ...] = option(
        (), "item ids never to ask (evaluate: a text file, one id per line)"
    )
    threshold: float | None = option(
        None, "binarize continuous scores at >= X", range=THRESHOLD, metavar="X"
    )
    integration: str = option(
        "weighted",
        "how bayes combines item draws (see fluid_bayes.adaptive.ability)",
        choices=INTEGRATIONS,
    )
    round_size: int = option(1, "items proposed per round (replay: asked per round)", range=COUNT)
    round_rule: str = option(
        "spread",
        "how a round's items are chosen together (see fluid_bayes.adaptive.rounds)",
        choices=ROUND_RULES,
        what="round rule",
    )

    def __post_init__(self) -> None:
        if isinstance(self.exclude, str):
            raise OptionError(f"exclude must be a sequence of item ids, got {self.exclude!r}")
        object.__setattr__(self, "exclude", tuple(str(i) for i in self.exclude))
        check_fields(self)
        if self.min_items > self.max_items:
            raise OptionError(f"min_items ({self.min_items}) exceeds max_items ({self.max_items})")

    @classmethod
    def for_method(cls, method: str = "bayes", **options: Any) -> SessionConfig:
        """The preset of ``method`` (see the module docstring), with overrides.

        ``estimator`` and ``select`` given as ``None`` take the preset's.
        """
        if method not in METHODS:
            raise OptionError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        estimator, select = METHODS[method]
        if options.get("estimator") is None:
            options["estimator"] = estimator
        if options.get("select") is None:
            options["select"] = select
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["exclude"] = list(self.exclude)
        return d
