"""The hierarchical 2PL model: its specification, its PyMC graph and its fit.

``p(correct) = logistic(a_j * (theta_i - b_j))`` with

* abilities ``theta_i ~ N(0, 1)`` for identification;
* difficulties ``b_j ~ N(mu_b[g_j], sigma_b)`` and log discriminations
  ``log a_j ~ N(mu_log_a[g_j], sigma_log_a)`` (so ``a_j > 0``). A Student-t population
  for ``log a`` was measured and rejected: language-model items whose answers
  separate the models perfectly then run off to ``a -> inf`` (R-hat 1.8, 900
  divergences on ChemBench);
* optional partial pooling by an item grouping ``g`` (e.g. the MMLU subject):
  ``mu_b[g] ~ N(mu_b, tau_b)``, ``mu_log_a[g] ~ N(mu_log_a, tau_log_a)``;
  without grouping every item shares ``mu_b`` and ``mu_log_a``;
* hyperpriors are :class:`Priors` objects with documented defaults.

Two likelihoods, chosen by measurement (``benchmarks/README.md``):

``marginal``
    The population N(0, 1) of abilities is integrated out on a fixed grid of
    ``n_grid`` points on [-6, 6] (the marginal-maximum-likelihood formulation of
    Bock and Aitkin); identical answer patterns collapse to counts. Exact
    identification, no ability parameters to sample. Right when subjects answer few
    items (a subject's ability posterior is wide compared with the grid spacing),
    e.g. LSAT's 5 items. The calibration subjects' abilities are then drawn exactly
    from their grid posterior given each posterior draw of (a, b).
``joint``
    One ability per subject is sampled. Right for language-model data: few subjects
    answering thousands of items, each ability pinned to a few hundredths. The
    sampler works in the *item-anchored* frame: the sampled items at mean difficulty
    exactly 0 and geometric-mean discrimination exactly 1 (each item population split
    exactly into the items' mean and zero-sum deviations), where no posterior
    direction moves every item at once; the plain parametrization has two such
    ridges (all abilities and difficulties shifting together; the ability scale
    trading against every discrimination) that left R-hat at 1.06+
    (``shared/NOTES.md``), and anchoring on the item *population* (mean 0 up to
    ``sigma / sqrt(J)``) left them long enough to stall the population means
    (``benchmarks/README.md``). When subjects outnumber items (1,000 x 100) the roles turn:
    a hundred items pin the item population less well than a thousand abilities pin
    theirs, and the item-anchored frame mixed slowly there (R-hat 1.16 at 1,000 x
    100), so ``frame="auto"`` samples the plain frame, ``theta ~ N(0, 1)``, instead
    (R-hat 1.009, ``benchmarks/README.md``). The log-likelihood and its gradient are
    one fused loop (:mod:`fluid_bayes.calibration.loglik`).

    Results are reported on the **calibration-sample scale**: per posterior draw the
    calibration subjects' abilities are standardized to mean 0 and SD 1 and the item
    parameters are mapped alike (``b' = (b - m) / s``, ``a' = a s``). Ability 1.0 is
    one SD of the calibration models above their mean. The alternative, the
    population scale, would add the uncertainty of where 14-22 calibration models
    sit in a hypothetical N(0, 1) population (SD ~ 1/sqrt(n)) to every item and to
    every new model's ability; it is common to all and cancels in every comparison,
    but would put a floor under each ability's posterior SD and break SD-based
    stopping.

With the joint likelihood, items every calibration subject answered right (or every
one wrong) can be integrated out while sampling and drawn exactly afterwards
(``constant_items``, :mod:`fluid_bayes.calibration.constant_items`): their likelihood grows without
bound as the discrimination does, so when they are most of the items, sampled as
parameters they leave NUTS on ridges (MMLU-Redux, 3,610 constant items of 5,700:
R-hat 2.8 sampled, 1.04 integrated). ``auto`` integrates them when they are the
majority; a few (ChemBench: 134 of 2,854) sample better than they integrate.

``auto`` picks ``marginal`` for at most ``MARGINAL_MAX_ITEMS`` items, else ``joint``.
Item parameters are sampled centred or non-centred by the number of answers per
item (``parametrization``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from fluid_bayes import irt
from fluid_bayes.calibration.constant_items import ConstantItems, constant_items, constant_potential
from fluid_bayes.calibration.loglik import joint_loglik
from fluid_bayes.calibration.options import (  # re-exported: defined without PyMC
    DEFAULT_CHAINS,
    DEFAULT_DRAWS,
    DEFAULT_TUNE,
    MAX_DRAWS_FACTOR,
    SAMPLERS,
)
from fluid_bayes.calibration.priors import Gamma, HalfNormal, Normal, Prior, Priors
from fluid_bayes.data.responses import ResponseMatrix, group_codes
from fluid_bayes.dims import GROUP, ITEM, SUBJECT
from fluid_bayes.exceptions import DataError

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_TUNE",
    "Gamma",
    "HalfNormal",
    "HierarchicalTwoPL",
    "INTEGRATE_MIN_SHARE",
    "MARGINAL_MAX_ITEMS",
    "MAX_DRAWS_FACTOR",
    "Normal",
    "Priors",
    "SAMPLERS",
]

MARGINAL_MAX_ITEMS = 30
CENTERED_MIN_ANSWERS = 100
Likelihood = Literal["auto", "joint", "marginal"]
Parametrization = Literal["auto", "centered", "noncentered"]
Frame = Literal["auto", "items", "subjects"]
ConstantMode = Literal["auto", "integrate", "sample"]
#: ``constant_items="auto"`` integrates constant items out when they are more than this
#: share of the items (measured: MMLU-Redux, 63% constant, and ChemBench, 5%; see the
#: ``constant_items`` parameter)
INTEGRATE_MIN_SHARE = 0.5


@dataclass(frozen=True)
class HierarchicalTwoPL:
    """Specification of the hierarchical 2PL model; :meth:`fit` returns an item bank.

    The specification only stores settings; nothing is sampled until :meth:`fit`.

    Parameters
    ----------
    priors : Priors
        Hyperpriors (defaults documented in :class:`Priors`).
    likelihood : {"auto", "joint", "marginal"}
        How abilities enter (see the module docstring).
    group_by : str, optional
        Item metadata column for partial pooling of group means.
    n_grid : int
        Grid points on [-6, 6] for the marginal likelihood and grid posteriors
        (default 61, spacing 0.2: the trapezoid rule on these smooth integrands is
        accurate far below Monte Carlo error while a subject's ability posterior is
        wider than ~0.3, i.e. up to the ``MARGINAL_MAX_ITEMS`` items).
    parametrization : {"auto", "centered", "noncentered"}
        How item parameters are sampled. Non-centred (``b = mu + sigma * z``) mixes
        well when each item has few answers (language-model data: 14-100 models);
        centred mixes well when each item has many (LSAT: 1,000), because then the
        data pin every ``b_j`` and a non-centred ``mu_b`` can only move with all of
        them. ``auto`` centres when the median item has at least
        ``CENTERED_MIN_ANSWERS`` answers.
    frame : {"auto", "items", "subjects"}
        The sampler's frame for the joint likelihood (the reported scale is the same).
        ``items``: the item-anchored frame (the sampled items at mean difficulty 0 and
        geometric-mean discrimination 1); right when items outnumber subjects, as in
        language-model data. ``subjects``: the plain frame, abilities ~ N(0, 1); right
        when subjects outnumber items (1,000 subjects x 100 items), where 100 items pin
        the item population less well than 1,000 abilities pin theirs. ``auto`` picks
        ``subjects`` when there are more subjects than items, else ``items``.
    constant_items : {"auto", "integrate", "sample"}
        Joint likelihood only: how items that every subject answered right (or every
        one wrong) enter. ``integrate``: their parameters are integrated out while
        sampling (one quadrature term per set of such items that share subjects, sign
        and group) and drawn exactly from their conditional posterior afterwards, so
        the bank still has posterior draws for every item
        (:mod:`fluid_bayes.calibration.constant_items`). ``sample``: sampled like the other items.
        ``auto`` (default) integrates when constant items are more than
        ``INTEGRATE_MIN_SHARE`` of all items. Measured with the defaults
        (``benchmarks/README.md``): MMLU-Redux (3,610 of 5,700 constant) sampled
        reached R-hat 2.80 after 34 min, integrated R-hat 1.04 in 5 min; ChemBench
        (134 of 2,854) sampled converged in 115-123 s, integrated took 171 s and
        reached R-hat 1.014.
    """

    priors: Priors = field(default_factory=Priors)
    likelihood: Likelihood = "auto"
    group_by: str | None = None
    n_grid: int = 61
    parametrization: Parametrization = "auto"
    frame: Frame = "auto"
    constant_items: ConstantMode = "auto"

    model_type = "hierarchical-2pl"

    def __post_init__(self) -> None:
        if self.likelihood not in ("auto", "joint", "marginal"):
            raise ValueError(f"likelihood must be auto, joint or marginal, got {self.likelihood!r}")
        if self.parametrization not in ("auto", "centered", "noncentered"):
            raise ValueError(
                "parametrization must be auto, centered or noncentered, "
                f"got {self.parametrization!r}"
            )
        if self.frame not in ("auto", "items", "subjects"):
            raise ValueError(f"frame must be auto, items or subjects, got {self.frame!r}")
        if self.constant_items not in ("auto", "integrate", "sample"):
            raise ValueError(
                f"constant_items must be auto, integrate or sample, got {self.constant_items!r}"
            )

    def resolve_likelihood(self, data: ResponseMatrix) -> str:
        """The likelihood actually used for ``data`` (resolves ``auto``)."""
        if self.likelihood != "auto":
            return self.likelihood
        return "marginal" if data.n_items <= MARGINAL_MAX_ITEMS else "joint"

    def resolve_frame(self, data: ResponseMatrix) -> str:
        """The joint likelihood's sampling frame for ``data`` (resolves ``auto``)."""
        if self.frame != "auto":
            return self.frame
        return "subjects" if data.n_subjects > data.n_items else "items"

    def resolve_centered(self, data: ResponseMatrix) -> bool:
        """Whether item parameters are sampled centred for ``data`` (resolves ``auto``)."""
        if self.parametrization != "auto":
            return self.parametrization == "centered"
        return bool(np.median(data.mask.sum(axis=0)) >= CENTERED_MIN_ANSWERS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able configuration (what the config hash is computed from)."""
        return {
            "model_type": self.model_type,
            "priors": self.priors.to_dict(),
            "likelihood": self.likelihood,
            "group_by": self.group_by,
            "n_grid": self.n_grid,
            "parametrization": self.parametrization,
            "frame": self.frame,
            "constant_items": self.constant_items,
        }

    def config_hash(self) -> str:
        """SHA-256 (first 16 hex) of the canonical JSON configuration."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HierarchicalTwoPL:
        """Inverse of :meth:`to_dict`."""
        return cls(
            priors=Priors.from_dict(d.get("priors", {})),
            likelihood=d.get("likelihood", "auto"),
            group_by=d.get("group_by"),
            n_grid=int(d.get("n_grid", 61)),
            parametrization=d.get("parametrization", "auto"),
            frame=d.get("frame", "auto"),
            # banks written before the option existed sampled every item
            constant_items=d.get("constant_items", "sample"),
        )

    def integrated_items(self, data: ResponseMatrix) -> ConstantItems | None:
        """The constant items integrated out of the model for ``data``, if any.

        None unless the joint likelihood is used, some but not all items are constant,
        and ``constant_items`` is ``integrate`` (or ``auto`` with more than
        ``INTEGRATE_MIN_SHARE`` of the items constant).
        """
        if self.constant_items == "sample" or self.resolve_likelihood(data) != "joint":
            return None
        groups = group_codes(data, self.group_by)
        const = constant_items(data.values, None if groups is None else groups[0])
        if self.constant_items == "auto" and const.n_items <= INTEGRATE_MIN_SHARE * data.n_items:
            return None
        return const if 0 < const.n_items < data.n_items else None

    # ------------------------------------------------------------------ graph
    def build(self, data: ResponseMatrix) -> pm.Model:
        """Build the PyMC model for ``data`` (coords ``subject``, ``item``, ``group``).

        With integrated constant items (:meth:`integrated_items`) the ``item``
        coordinate holds the sampled items only.
        """
        likelihood = self.resolve_likelihood(data)
        groups = group_codes(data, self.group_by)
        const = self.integrated_items(data)
        centered = self.resolve_centered(data)
        if const is not None:
            kept = np.setdiff1d(np.arange(data.n_items), const.items)
            data = data.select(items=[data.items[j] for j in kept])
            if groups is not None:
                groups = (groups[0][kept], groups[1])
        coords: dict[str, Any] = {ITEM: list(data.items)}
        codes = None
        if groups is not None:
            codes, coords[GROUP] = groups
        if likelihood == "joint":
            coords[SUBJECT] = list(data.subjects)
            if data.n_subjects < 3:
                raise DataError(
                    f"the joint likelihood needs at least 3 subjects, got {data.n_subjects}"
                )
        with pm.Model(coords=coords) as model:
            if likelihood == "joint" and self.resolve_frame(data) == "subjects":
                self._joint_subjects(data, codes, const, centered=centered)
            elif likelihood == "joint":
                self._joint(data, codes, const, centered=centered)
            else:
                self._marginal(data, codes, centered=centered)
        return model

    @staticmethod
    def _items(
        suffix: str,
        loc_b: Any,
        scale_b: Any,
        loc_la: Any,
        scale_la: Any,
        *,
        centered: bool,
    ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """Difficulties and log discriminations around their population (or group) means."""
        if centered:
            b = pm.Normal(f"b{suffix}", loc_b, scale_b, dims=ITEM)
            log_a = pm.Normal(f"log_a{suffix}", loc_la, scale_la, dims=ITEM)
            return b, log_a
        zb = pm.Normal("b_raw", 0.0, 1.0, dims=ITEM)
        za = pm.Normal("log_a_raw", 0.0, 1.0, dims=ITEM)
        return loc_b + scale_b * zb, loc_la + scale_la * za

    def _marginal(self, data: ResponseMatrix, codes: np.ndarray | None, *, centered: bool) -> None:
        """Population N(0, 1) integrated out on a grid; hyperparameters on that scale."""
        p = self.priors
        mu_b, sigma_b = p.mu_b.to_pymc("mu_b"), p.sigma_b.to_pymc("sigma_b")
        mu_la, sigma_la = p.mu_log_a.to_pymc("mu_log_a"), p.sigma_log_a.to_pymc("sigma_log_a")
        loc_b, loc_la = mu_b, mu_la
        if codes is not None:
            tau_b, tau_la = p.tau_b.to_pymc("tau_b"), p.tau_log_a.to_pymc("tau_log_a")
            gb = pm.Normal("mu_b_group_raw", 0.0, 1.0, dims=GROUP)
            ga = pm.Normal("mu_log_a_group_raw", 0.0, 1.0, dims=GROUP)
            mu_b_g = pm.Deterministic("mu_b_group", mu_b + tau_b * gb, dims=GROUP)
            mu_la_g = pm.Deterministic("mu_log_a_group", mu_la + tau_la * ga, dims=GROUP)
            loc_b, loc_la = mu_b_g[codes], mu_la_g[codes]
        b, log_a = self._items("", loc_b, sigma_b, loc_la, sigma_la, centered=centered)
        if not centered:
            b = pm.Deterministic("b", b, dims=ITEM)
        a = pm.Deterministic("a", pt.exp(log_a), dims=ITEM)

        patterns, counts = irt.unique_patterns(data.values)
        nodes, logw = irt.normal_grid(self.n_grid)
        y = np.nan_to_num(patterns, nan=0.0)[:, None, :]
        mask = ~np.isnan(patterns)[:, None, :]
        x = a[None, None, :] * (nodes[None, :, None] - b[None, None, :])
        ll = y * x - pt.softplus(x)
        if not mask.all():
            ll = ll * mask
        per_node = pt.sum(ll, axis=-1) + logw[None, :]
        pm.Potential("loglik", pt.sum(counts * pt.logsumexp(per_node, axis=1)))

    def _joint(
        self,
        data: ResponseMatrix,
        codes: np.ndarray | None,
        const: ConstantItems | None,
        *,
        centered: bool,
    ) -> None:
        """Abilities sampled; the sampler works in the frame the sampled items pin.

        Model (population scale): ``theta ~ N(0, 1)``, ``b ~ N(mu_b, sigma_b)``,
        ``log a ~ N(mu_log_a, sigma_log_a)`` (around group means with grouping).
        The ``J`` sampled items' difficulties and log discriminations are split into
        their means and zero-sum deviations: ``b_j - loc_j = M + D_j`` with
        ``M ~ N(0, sigma_b / sqrt(J))`` and ``D`` zero-sum normal of scale
        ``sigma_b``, independent of ``M`` (the same distribution as independent
        normals), and alike ``log a_j - loc_j = m + e_j``. With ``k = exp(mu_log_a +
        m)`` the sampler's coordinates are ``theta_f = k (theta - mu_b - M)``,
        ``b_f = k (b - mu_b - M)``, ``a_f = a / k``: the sampled items sit at mean
        difficulty exactly 0 and geometric-mean discrimination exactly 1, so ``M``
        and ``m`` leave the likelihood. In the plain parametrization all abilities
        and difficulties shift together and the ability scale trades against every
        discrimination; anchoring on the item *population* (mean 0 and
        log-discrimination 0 up to ``sigma / sqrt(J)``) leaves those directions
        short in each coordinate but long in all of them together (of length
        ``sigma_b`` over one item's posterior SD: ~8 at 100 x 2,000, where the
        population-anchored frame mixed ``mu_b`` with bulk ESS 78 of 4,000). The
        scales ``sigma_b`` and ``tau_b`` are sampled in the frame, with their priors
        applied to ``scale / k`` (Jacobian included).

        Reported (deterministic, per draw) on the calibration-sample scale: abilities
        of the calibration subjects standardized to mean 0 and SD 1, items mapped
        alike; see the module docstring.
        """
        p = self.priors
        n = data.n_items
        mu_b = p.mu_b.to_pymc("mu_b_population")
        mu_la = p.mu_log_a.to_pymc("mu_log_a_population")
        sigma_la = p.sigma_log_a.to_pymc("sigma_log_a")
        dev_la, m_la = self._mean_and_deviations("log_a", sigma_la, n, centered)
        k = pt.exp(mu_la + m_la)

        def anchored_scale(name: str, prior: Prior) -> pt.TensorVariable:
            scale = pm.HalfFlat(f"{name}_anchor")
            pm.Potential(f"{name}_prior", pm.logp(prior.dist(), scale / k) - pt.log(k))
            return scale

        sigma_b_f = anchored_scale("sigma_b", p.sigma_b)
        dev_b, m_b = self._mean_and_deviations("b", sigma_b_f, n, centered)
        loc_b = loc_la = group_b = group_la = 0.0
        if codes is not None:
            tau_b_f = anchored_scale("tau_b", p.tau_b)
            tau_la = p.tau_log_a.to_pymc("tau_log_a")
            gb = pm.Normal("mu_b_group_raw", 0.0, 1.0, dims=GROUP)
            ga = pm.Normal("mu_log_a_group_raw", 0.0, 1.0, dims=GROUP)
            group_b, group_la = tau_b_f * gb, tau_la * ga
            loc_b, loc_la = group_b[codes], group_la[codes]
        theta_f = pm.Normal("theta_anchor", mu=-mu_b * k - m_b, sigma=k, dims=SUBJECT)
        # the item population in the frame: difficulty -M (+ group), log a -m (+ group)
        pop_b, pop_la = group_b - m_b, group_la - m_la
        groups = None
        if codes is not None:
            groups = (tau_b_f, pop_b, pop_la)
        if const is not None:
            constant_potential(theta_f, pop_b, sigma_b_f, pop_la, sigma_la, const)
        self._joint_likelihood_and_report(
            data, theta_f, loc_b + dev_b, loc_la + dev_la, -m_b, sigma_b_f, -m_la, groups
        )

    @staticmethod
    def _mean_and_deviations(
        name: str, scale: Any, n_items: int, centered: bool
    ) -> tuple[Any, Any]:
        """``n_items`` independent ``N(0, scale)`` as their mean and zero-sum deviations.

        Returns ``(deviations, mean)``; centred: both sampled on the parameter's scale
        (``{name}_anchor_dev``, ``{name}_anchor_mean``); non-centred: as multiples of
        ``scale`` (``{name}_raw``, ``{name}_raw_mean``).
        """
        root = np.sqrt(n_items)
        if centered:
            dev = pm.ZeroSumNormal(f"{name}_anchor_dev", sigma=scale, dims=ITEM)
            return dev, pm.Normal(f"{name}_anchor_mean", 0.0, scale / root)
        dev = pm.ZeroSumNormal(f"{name}_raw", sigma=1.0, dims=ITEM)
        return scale * dev, scale * pm.Normal(f"{name}_raw_mean", 0.0, 1.0 / root)

    def _joint_subjects(
        self,
        data: ResponseMatrix,
        codes: np.ndarray | None,
        const: ConstantItems | None,
        *,
        centered: bool,
    ) -> None:
        """Abilities sampled in the plain frame, ``theta ~ N(0, 1)``.

        For many subjects and few items: the abilities of hundreds of subjects pin the
        location and scale of the frame, which the item-anchored frame would leave to
        the few items. Reported on the calibration-sample scale like :meth:`_joint`.
        """
        p = self.priors
        mu_b, sigma_b = p.mu_b.to_pymc("mu_b_population"), p.sigma_b.to_pymc("sigma_b_population")
        mu_la = p.mu_log_a.to_pymc("mu_log_a_population")
        sigma_la = p.sigma_log_a.to_pymc("sigma_log_a")
        loc_b, loc_la = group_b, group_la = mu_b, mu_la
        if codes is not None:
            tau_b = p.tau_b.to_pymc("tau_b_population")
            tau_la = p.tau_log_a.to_pymc("tau_log_a")
            gb = pm.Normal("mu_b_group_raw", 0.0, 1.0, dims=GROUP)
            ga = pm.Normal("mu_log_a_group_raw", 0.0, 1.0, dims=GROUP)
            group_b, group_la = mu_b + tau_b * gb, mu_la + tau_la * ga
            loc_b, loc_la = group_b[codes], group_la[codes]
        b, log_a = self._items("_population", loc_b, sigma_b, loc_la, sigma_la, centered=centered)
        theta = pm.Normal("theta_population", 0.0, 1.0, dims=SUBJECT)
        groups = None
        if codes is not None:
            groups = (tau_b, group_b, group_la)
        if const is not None:
            constant_potential(theta, group_b, sigma_b, group_la, sigma_la, const)
        self._joint_likelihood_and_report(data, theta, b, log_a, mu_b, sigma_b, mu_la, groups)

    @staticmethod
    def _joint_likelihood_and_report(
        data: ResponseMatrix,
        theta: Any,
        b: Any,
        log_a: Any,
        mu_b: Any,
        sigma_b: Any,
        mu_la: Any,
        groups: tuple[Any, Any, Any] | None,
    ) -> None:
        """The joint likelihood, and every quantity on the calibration-sample scale.

        The arguments are in the sampler's frame: abilities, item parameters, item
        population location and scale, and (with grouping) ``(tau_b, mu_b_group,
        mu_log_a_group)``. Per draw the abilities are standardized to mean 0 and SD 1
        and everything else is mapped alike (see the module docstring).
        """
        m = pt.mean(theta)
        s = pt.sqrt(pt.mean((theta - m) ** 2))
        pm.Deterministic("theta", (theta - m) / s, dims=SUBJECT)
        pm.Deterministic("b", (b - m) / s, dims=ITEM)
        pm.Deterministic("a", pt.exp(log_a) * s, dims=ITEM)
        pm.Deterministic("mu_b", (mu_b - m) / s)
        pm.Deterministic("sigma_b", sigma_b / s)
        pm.Deterministic("mu_log_a", mu_la + pt.log(s))
        if groups is not None:
            tau_b, mu_b_group, mu_la_group = groups
            pm.Deterministic("tau_b", tau_b / s)
            pm.Deterministic("mu_b_group", (mu_b_group - m) / s, dims=GROUP)
            pm.Deterministic("mu_log_a_group", mu_la_group + pt.log(s), dims=GROUP)
        y = np.nan_to_num(data.values, nan=0.0)
        pm.Potential("loglik", joint_loglik(theta, pt.exp(log_a), b, y, data.mask))

    # -------------------------------------------------------------------- fit
    def fit(
        self,
        data: ResponseMatrix,
        *,
        sampler: str = "nutpie",
        draws: int | None = None,
        tune: int = DEFAULT_TUNE,
        chains: int = DEFAULT_CHAINS,
        seed: int = 0,
        progress: bool = False,
        target_accept: float | None = None,
        strict: bool = False,
        backend: str = "auto",
        max_draws: int | None = None,
    ):
        """Sample the posterior and return an :class:`~fluid_bayes.bank.ItemBank`.

        Parameters
        ----------
        data : ResponseMatrix
            Calibration answers.
        sampler : {"nutpie", "pymc", "numpyro", "advi"}
            NUTS implementation, or ``"advi"`` (mean-field variational inference,
            an approximation labelled as such in the bank and its diagnostics).
        draws : int, optional
            Posterior draws per chain. Default :data:`DEFAULT_DRAWS` (1,000), extended
            up to ``max_draws`` as below; a number given is sampled exactly unless
            ``max_draws`` is given too.
        tune, chains : int
            Tuning steps per chain, number of chains.
        max_draws : int, optional
            nutpie only: if the first ``draws`` draws per chain miss R-hat <= 1.01 or
            bulk ESS >= 400, the same chains go on, checked again after every
            further ``draws``, up to ``max_draws`` per chain; the bank keeps the
            draws up to the first check that passed (``meta.sampler["draws"]``),
            which are the same as those of a run of exactly that many. Default
            ``MAX_DRAWS_FACTOR`` x 1,000 (8,000) with the default ``draws``, else
            ``draws``.
        seed : int
            Seeds sampling and the ability draws of the marginal model.
        progress : bool
            Show the sampler's progress bar.
        target_accept : float, optional
            NUTS target acceptance rate; by default
            :data:`fluid_bayes.calibration.fitting.TARGET_ACCEPT` of the likelihood (0.95 for the
            marginal one; for the joint one 0.9 with non-centred items, 0.8 with
            centred ones).
        strict : bool
            Raise :class:`~fluid_bayes.exceptions.ConvergenceError` if not converged.
        backend : {"auto", "numba", "jax"}
            Compilation backend of the log density for nutpie. ``auto`` is numba:
            its kernel runs without Python, so chains sample in parallel, and the
            joint likelihood's vectorized loop costs 4-5 ns per answer (JAX: one
            Python call per gradient, which serializes the chains, ~3x slower
            with 4 chains on 2 cores; on the marginal likelihood JAX compiled for
            minutes on LSAT). ``benchmarks/README.md`` has the measurements.

        Returns
        -------
        ItemBank

        Raises
        ------
        OptionError
            An option out of range (:class:`~fluid_bayes.calibration.options.SamplerOptions`),
            or draws that would not fit in the available memory; both are checked before
            the model is built.
        """
        from fluid_bayes.calibration.fitting import run_fit

        return run_fit(
            self,
            data,
            sampler=sampler,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            progress=progress,
            target_accept=target_accept,
            strict=strict,
            backend=backend,
            max_draws=max_draws,
        )
